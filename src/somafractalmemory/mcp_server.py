"""MCP tools over a running SomaFractalMemory: remember, recall, get_context, get_memory,
forget, link, neighbors, history, remember_messages (pinned to one end user with ``SOMA_USER_ID``).

``somafractalmemory mcp`` serves them over stdio (an MCP client such as Claude Desktop launches
the command) or streamable HTTP (``--transport http``, endpoint ``/mcp``). The tools hold no
state of their own: each is one call of :class:`~somafractalmemory.client.AsyncSFMClient` to
the SFM server at ``SOMA_URL`` with the key ``SOMA_API_KEY``, so everything an agent stores
lands in that key's tenant. Built on the official ``mcp`` SDK's high-level server
(``MCPServer``, called ``FastMCP`` before mcp 2); install it with
``pip install "somafractalmemory[mcp]"``.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from somafractalmemory import __version__
from somafractalmemory.client import AsyncSFMClient, SFMClientError
from somafractalmemory.context_schemas import (
    CONTEXT_MIN_SCORE,
    MAX_BUDGET_TOKENS,
    MIN_BUDGET_TOKENS,
    ContextResponse,
)
from somafractalmemory.history_schemas import HistoryResponse
from somafractalmemory.mcp_scopes import (
    SessionArg,
    UserArg,
    add_message_tool,
    check_owner,
    scope_body,
    scoped_user,
)
from somafractalmemory.schemas import (
    MAX_TOP_K,
    DeleteResponse,
    LinkPublic,
    MemoryPublic,
    MemoryWritten,
    NeighborsResponse,
    SearchResponse,
)

Transport = Literal["stdio", "http"]
DEFAULT_HTTP_PORT = 9596
HTTP_PATH = "/mcp"

# The tools' context: the lifespan's client is the request context's lifespan state.
ToolContext = Context[AsyncSFMClient, Any]

Coord = Annotated[
    str,
    Field(
        description="A memory's coordinate: 2 to 16 comma-separated numbers, e.g. '1,2,3' "
        "('1.0, 2, 3' is the same coordinate).",
        max_length=1024,
    ),
]
MemoryKind = Literal["episodic", "semantic"]
MinScoreArg = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=1.0,
        description="Only records at least this relevant (scores are 0 to 1, one scale for "
        "every query; 0.3 leaves out most off-topic matches); null: no threshold.",
    ),
]
FilterValue = str | int | float | bool

INSTRUCTIONS = """\
Long-term memory. Use `remember` to store something worth keeping (a fact about the user, a
decision, an event) as text, optionally with extra fields; use `recall` to find memories by
meaning before answering, or `get_context` for a dated block of them that fits a token budget;
`get_memory` reads one by coordinate, `forget` deletes one, `link` connects two related
memories and `neighbors` follows those links. When a new fact replaces an
old one (the user moved, changed their mind), `remember` it with `supersedes` naming the old
memory's coordinate: recall then returns only the new one, and `history` shows both."""


@dataclass(frozen=True)
class MCPConfig:
    """Where the SFM server is and the key to use, from ``SOMA_URL`` and ``SOMA_API_KEY``."""

    url: str
    api_key: str
    timeout: float = 30.0
    # The end user every tool call is pinned to (SOMA_USER_ID or --user-id); None: unpinned.
    user_id: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MCPConfig:
        """Read the configuration; ValueError names what is missing or wrong."""
        env = os.environ if environ is None else environ
        url = env.get("SOMA_URL", "").strip()
        key = env.get("SOMA_API_KEY", "").strip()
        missing = [name for name, value in (("SOMA_URL", url), ("SOMA_API_KEY", key)) if not value]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} not set: the MCP server needs the URL of a running "
                "SFM (e.g. http://127.0.0.1:9595) and an API key from "
                "`somafractalmemory keys create`"
            )
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"SOMA_URL must be an http(s) URL, got {url!r}")
        timeout = env.get("SOMA_TIMEOUT", "").strip()
        try:
            seconds = float(timeout) if timeout else cls.timeout
        except ValueError:
            raise ValueError(f"SOMA_TIMEOUT must be a number of seconds, got {timeout!r}") from None
        user_id = env.get("SOMA_USER_ID", "").strip() or None
        return cls(url=url, api_key=key, timeout=seconds, user_id=user_id)


def new_coord() -> str:
    """A fresh coordinate for a memory stored without one: the Unix time in seconds
    (microsecond precision) and a random number, so that two memories stored in the same
    microsecond still do not replace each other."""
    return f"{time.time():.6f},{secrets.randbelow(1_000_000_000)}"


# What each tool does to the memories, as MCP tool annotations tell the model.
READS = ToolAnnotations(read_only_hint=True)
ADDS = ToolAnnotations(read_only_hint=False, destructive_hint=False)
UPDATES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True)
DELETES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)


@contextmanager
def _as_tool_error() -> Iterator[None]:
    """Turn a client error into a ToolError, whose message the model gets to read."""
    try:
        yield
    except SFMClientError as exc:
        raise ToolError(str(exc)) from exc


def _client(ctx: ToolContext) -> AsyncSFMClient:
    """The HTTP client to SFM that the server's lifespan opened."""
    return ctx.request_context.lifespan_context


def create_mcp_server(config: MCPConfig) -> MCPServer[AsyncSFMClient]:
    """The MCP server with the nine tools; its lifespan owns the HTTP client to SFM. Pinned
    to ``config.user_id`` when set (see :mod:`somafractalmemory.mcp_scopes`)."""
    pinned = config.user_id

    @asynccontextmanager
    async def lifespan(_server: MCPServer[AsyncSFMClient]) -> AsyncIterator[AsyncSFMClient]:
        async with AsyncSFMClient(config.url, config.api_key, timeout=config.timeout) as client:
            yield client

    server: MCPServer[AsyncSFMClient] = MCPServer(
        "somafractalmemory",
        title="SomaFractalMemory",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
    )

    @server.tool(annotations=ADDS)
    async def remember(
        ctx: ToolContext,
        text: Annotated[
            str,
            Field(
                min_length=1,
                description="What to remember, as a self-contained sentence or paragraph; "
                "this is the text recall searches by meaning.",
            ),
        ],
        coord: Annotated[
            str | None,
            Field(
                description="Where to store it. Leave empty to get a fresh coordinate; an "
                "existing coordinate is replaced.",
                max_length=1024,
            ),
        ] = None,
        memory_type: Annotated[
            MemoryKind,
            Field(description="'episodic' for an event, 'semantic' for a general fact."),
        ] = "episodic",
        importance: Annotated[
            float, Field(ge=0.0, le=1.0, description="How much it matters, 0 to 1.")
        ] = 0.5,
        fields: Annotated[
            dict[str, Any] | None,
            Field(
                description="Extra top-level payload fields (e.g. {'topic': 'travel'}); "
                "recall can filter on string, number and boolean fields."
            ),
        ] = None,
        supersedes: Annotated[
            list[str] | None,
            Field(
                description="Coordinates of memories this one replaces (e.g. the old address "
                "when the user moved): they stop being recalled but keep their history.",
                max_length=100,
            ),
        ] = None,
        user_id: UserArg = None,
        session_id: SessionArg = None,
    ) -> MemoryWritten:
        """Store a memory in long-term memory and return it with its coordinate, what the
        write did (status) and any memories with the same or nearly the same text."""
        payload = {**(fields or {}), "text": text}
        scope = scope_body(scoped_user(pinned, user_id), session_id)
        if coord is not None:
            await check_owner(_client(ctx), pinned, coord, missing_ok=True)
        for target in supersedes or []:
            await check_owner(_client(ctx), pinned, target)
        with _as_tool_error():
            return await _client(ctx).store(
                coord or new_coord(),
                payload,
                memory_type,
                importance,
                supersedes=supersedes,
                **scope,
            )

    @server.tool(annotations=READS)
    async def recall(
        ctx: ToolContext,
        query: Annotated[
            str, Field(min_length=1, description="What to look for, in natural language.")
        ],
        top_k: Annotated[
            int, Field(ge=1, le=MAX_TOP_K, description="How many memories at most.")
        ] = 5,
        memory_type: Annotated[
            MemoryKind | None, Field(description="Only 'episodic' or only 'semantic' memories.")
        ] = None,
        filters: Annotated[
            dict[str, FilterValue] | None,
            Field(description="Top-level payload fields that must equal these values."),
        ] = None,
        include_superseded: Annotated[
            bool,
            Field(description="Also return memories that were replaced (marked superseded_by)."),
        ] = False,
        valid_at: Annotated[
            datetime | None,
            Field(description="Only facts valid at this time (RFC 3339, with a time zone)."),
        ] = None,
        user_id: UserArg = None,
        session_id: SessionArg = None,
        min_score: MinScoreArg = None,
    ) -> SearchResponse:
        """Find the memories most relevant to a query, best first (score 0 to 1, higher: more
        relevant); none when nothing reaches min_score."""
        scope = scope_body(scoped_user(pinned, user_id), session_id)
        with _as_tool_error():
            return await _client(ctx).search(
                query,
                top_k,
                memory_type,
                filters,
                include_superseded=include_superseded or None,
                valid_at=valid_at,
                min_score=min_score,
                **scope,
            )

    @server.tool(annotations=READS)
    async def get_context(
        ctx: ToolContext,
        query: Annotated[
            str, Field(min_length=1, description="What the answer needs, in natural language.")
        ],
        budget_tokens: Annotated[
            int,
            Field(
                ge=MIN_BUDGET_TOKENS,
                le=MAX_BUDGET_TOKENS,
                description="The most tokens the context may take in the prompt.",
            ),
        ] = 1000,
        filters: Annotated[
            dict[str, FilterValue] | None,
            Field(description="Top-level payload fields memories must equal."),
        ] = None,
        user_id: UserArg = None,
        session_id: SessionArg = None,
        conversation_id: Annotated[
            str | None,
            Field(max_length=256, description="Only messages of this conversation."),
        ] = None,
        min_score: MinScoreArg = CONTEXT_MIN_SCORE,
    ) -> ContextResponse:
        """A prompt-ready block of the most relevant current memories and conversation turns
        for a query (of the pinned user only, when pinned), dated and attributed, within a
        token budget (counted by the tokenizer it names)."""
        scope = scope_body(scoped_user(pinned, user_id), session_id)
        with _as_tool_error():
            return await _client(ctx).context(
                query,
                budget_tokens,
                filters=filters,
                conversation_id=conversation_id,
                min_score=min_score,
                **scope,
            )

    @server.tool(annotations=READS)
    async def history(
        ctx: ToolContext,
        coord: Coord,
        limit: Annotated[int, Field(ge=1, le=100, description="How many versions.")] = 20,
    ) -> HistoryResponse:
        """The versions of the memory at a coordinate, newest first: what it said before,
        when it changed, and what superseded it (also after it was forgotten)."""
        await check_owner(_client(ctx), pinned, coord)
        with _as_tool_error():
            return await _client(ctx).history(coord, limit)

    @server.tool(annotations=READS)
    async def get_memory(ctx: ToolContext, coord: Coord) -> MemoryPublic:
        """Read the memory stored at a coordinate (an error if there is none)."""
        await check_owner(_client(ctx), pinned, coord)
        with _as_tool_error():
            return await _client(ctx).get(coord)

    @server.tool(annotations=DELETES)
    async def forget(ctx: ToolContext, coord: Coord) -> DeleteResponse:
        """Delete the memory at a coordinate, and its links, for good."""
        await check_owner(_client(ctx), pinned, coord)
        with _as_tool_error():
            return await _client(ctx).delete(coord)

    @server.tool(annotations=UPDATES)
    async def link(
        ctx: ToolContext,
        from_coord: Annotated[str, Field(description="Coordinate of the memory linked from.")],
        to_coord: Annotated[str, Field(description="Coordinate of the memory linked to.")],
        link_type: Annotated[
            str,
            Field(
                min_length=1,
                max_length=64,
                description="What the link means, e.g. 'related', 'caused', 'follows'.",
            ),
        ] = "related",
        strength: Annotated[
            float, Field(ge=0.0, le=1.0, description="How strong the link is, 0 to 1.")
        ] = 1.0,
        metadata: Annotated[
            dict[str, Any] | None, Field(description="Anything to keep on the link.")
        ] = None,
    ) -> LinkPublic:
        """Link two existing memories with a directed, typed link (linking again updates it)."""
        await check_owner(_client(ctx), pinned, from_coord)
        await check_owner(_client(ctx), pinned, to_coord)
        with _as_tool_error():
            return await _client(ctx).link(from_coord, to_coord, link_type, strength, metadata)

    @server.tool(annotations=READS)
    async def neighbors(
        ctx: ToolContext,
        coord: Coord,
        k_hop: Annotated[int, Field(ge=1, le=5, description="How many links to follow.")] = 1,
        link_type: Annotated[
            str | None, Field(description="Follow only links of this type.")
        ] = None,
        direction: Annotated[
            Literal["out", "in", "both"],
            Field(description="Follow links going out of, into, or either way of a memory."),
        ] = "out",
        limit: Annotated[int, Field(ge=1, le=1000, description="How many at most.")] = 50,
    ) -> NeighborsResponse:
        """List the memories reachable from a memory through links, nearest first."""
        await check_owner(_client(ctx), pinned, coord)
        with _as_tool_error():
            return await _client(ctx).neighbors(coord, k_hop, limit, link_type, direction)

    add_message_tool(server, pinned)
    return server


def main(
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
    user_id: str | None = None,
) -> int:
    """Serve the tools until the client hangs up (stdio) or the process is stopped (http);
    ``user_id`` pins them to one end user (over ``SOMA_USER_ID``)."""
    try:
        config = MCPConfig.from_env()
    except ValueError as exc:
        print(f"mcp: {exc}", file=sys.stderr)
        return 2
    if user_id:
        config = replace(config, user_id=user_id)
    server = create_mcp_server(config)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port, streamable_http_path=HTTP_PATH)
    return 0


if __name__ == "__main__":
    sys.exit(main())
