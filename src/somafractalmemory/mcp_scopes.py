"""The MCP server's end-user scope and its conversation tool.

An MCP server pinned to one end user (``--user-id`` or ``SOMA_USER_ID``) forces that
``user_id`` on every tool call: what ``remember`` and ``remember_messages`` store carries it,
``recall`` finds only its records, and the tools that name a memory by coordinate refuse one
of another user (as if it did not exist), so the model cannot forget the scope or reach
another user's data. Unpinned, the tools take an optional ``user_id`` argument.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from somafractalmemory.client import AsyncSFMClient, NotFound, SFMClientError
from somafractalmemory.message_schemas import MAX_MESSAGES, MessagesPosted

ToolContext = Context[AsyncSFMClient, Any]
UserArg = Annotated[
    str | None,
    Field(
        description="The end user this concerns (ignored and enforced when the server is "
        "pinned to one user).",
        max_length=256,
    ),
]
SessionArg = Annotated[
    str | None, Field(description="The session (conversation run) this belongs to.", max_length=256)
]


class ToolMessage(BaseModel):
    """One message of a conversation, as a tool argument."""

    role: Literal["user", "assistant", "system", "tool"] = Field(description="Who spoke.")
    content: str = Field(min_length=1, description="What was said.")
    id: str | None = Field(
        default=None,
        description="A stable id (posting the same message again stores nothing).",
        max_length=512,
    )
    name: str | None = Field(default=None, description="The speaker's name, if any.")
    created_at: datetime | None = Field(
        default=None, description="When it was said (RFC 3339 with a time zone)."
    )


def scoped_user(pinned: str | None, given: str | None) -> str | None:
    """The user a tool call acts for: the pinned one (a different one asked for is refused),
    else the one given."""
    if pinned is None:
        return given
    if given is not None and given != pinned:
        raise ToolError(f"this memory server serves user {pinned!r} only")
    return pinned


async def check_owner(
    client: AsyncSFMClient, pinned: str | None, coord: str, missing_ok: bool = False
) -> None:
    """Refuse a coordinate whose memory is not the pinned user's (as not found);
    ``missing_ok``: no memory there is fine (a write may create it)."""
    if pinned is None:
        return
    try:
        memory = await client.get(coord)
    except NotFound:
        memory = None
    except SFMClientError as exc:
        raise ToolError(str(exc)) from exc
    if memory is None and missing_ok:
        return
    if memory is None or memory.user_id != pinned:
        raise ToolError(f"no memory at coord {coord!r}")


def scope_body(user_id: str | None, session_id: str | None) -> dict[str, Any]:
    """The scope fields to send (none given: none sent)."""
    return {k: v for k, v in (("user_id", user_id), ("session_id", session_id)) if v is not None}


def add_message_tool(server: MCPServer[AsyncSFMClient], pinned: str | None) -> None:
    """Register ``remember_messages``."""

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True))
    async def remember_messages(
        ctx: ToolContext,
        conversation_id: Annotated[
            str,
            Field(
                min_length=1,
                max_length=256,
                description="The conversation they belong to (no '.'); the same id again "
                "adds to it.",
            ),
        ],
        messages: Annotated[
            list[ToolMessage],
            Field(min_length=1, max_length=MAX_MESSAGES, description="The turns, in order."),
        ],
        user_id: UserArg = None,
        session_id: SessionArg = None,
    ) -> MessagesPosted:
        """Store conversation turns as they were said: each is kept, embedded and searchable;
        turns with ids already stored are answered 'unchanged'."""
        client: AsyncSFMClient = ctx.request_context.lifespan_context
        user = scoped_user(pinned, user_id)
        try:
            return await client.add_messages(
                conversation_id,
                [m.model_dump(mode="json", exclude_none=True) for m in messages],
                user_id=user,
                session_id=session_id,
            )
        except SFMClientError as exc:
            raise ToolError(str(exc)) from exc
