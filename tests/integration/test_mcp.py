"""The MCP server end to end: the SDK's own client launches `somafractalmemory mcp`, which
talks to a real SFM server (the session's subprocess on the test stack) through the Python
client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from somafractalmemory.stack import Stack
from testkit.server import ServerProcess, free_port

SERVER_START_TIMEOUT = 180.0
SESSION_TIMEOUT = 90.0
TOOLS = {
    "remember",
    "recall",
    "get_context",
    "get_memory",
    "forget",
    "link",
    "neighbors",
    "history",
    "remember_messages",
}
MCP_COMMAND = [sys.executable, "-m", "somafractalmemory.cli", "mcp"]


def port_open(port: int) -> bool:
    """Whether something accepts connections on the local ``port``."""
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def background(command: list[str], env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` with its output in a temporary file; stop it on the way out."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str) -> None:
    """Poll ``ready()`` until it is true; fail if ``process`` exits or time runs out."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}")
        try:
            if ready():
                return
        except (httpx.TransportError, OSError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {SERVER_START_TIMEOUT}s")
        time.sleep(0.05)


@pytest.fixture
def soma_env(sfm_server: ServerProcess, stack: Stack) -> dict[str, str]:
    """SOMA_URL (the session's real SFM server on the test stack) and SOMA_API_KEY for a new
    tenant of this test's own."""
    key, _info = stack.keys.create(f"mcp-{uuid.uuid4().hex[:12]}")
    # The launched server imports the code under test (a worktree's, when PYTHONPATH names it).
    path = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    return {"SOMA_URL": sfm_server.url, "SOMA_API_KEY": key, **path}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def stdio_session(env: Mapping[str, str]) -> AsyncIterator[ClientSession]:
    """An initialised MCP session with `somafractalmemory mcp` launched over stdio."""
    params = StdioServerParameters(command=MCP_COMMAND[0], args=MCP_COMMAND[1:], env=dict(env))
    with anyio.fail_after(SESSION_TIMEOUT):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.mark.anyio
async def test_tools_are_listed_with_descriptions_and_typed_arguments(
    soma_env: dict[str, str],
) -> None:
    async with stdio_session(soma_env) as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert len(tool.description or "") > 20, tool.name
        assert tool.output_schema is not None, tool.name
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{tool.name}.{name} has no description"
    remember = listed["remember"].input_schema
    assert remember["required"] == ["text"]
    assert remember["properties"]["memory_type"]["enum"] == ["episodic", "semantic"]
    assert remember["properties"]["importance"]["maximum"] == 1.0
    assert listed["recall"].input_schema["required"] == ["query"]
    assert listed["recall"].input_schema["properties"]["top_k"]["type"] == "integer"
    assert listed["link"].input_schema["required"] == ["from_coord", "to_coord"]
    assert listed["forget"].annotations is not None
    assert listed["forget"].annotations.destructive_hint is True
    assert listed["recall"].annotations is not None
    assert listed["recall"].annotations.read_only_hint is True


@pytest.mark.anyio
async def test_remember_recall_link_neighbors_forget(soma_env: dict[str, str]) -> None:
    async with stdio_session(soma_env) as session:
        cat = await call(
            session,
            "remember",
            text="The user's cat is named Miso and sleeps on the piano",
            fields={"topic": "pets"},
            memory_type="semantic",
            importance=0.9,
        )
        assert len(cat["coord"].split(",")) == 2  # generated: time and a random number
        assert cat["payload"] == {
            "text": "The user's cat is named Miso and sleeps on the piano",
            "topic": "pets",
        }
        assert (cat["memory_type"], cat["importance"]) == ("semantic", 0.9)
        vet = await call(
            session, "remember", text="Miso has a vet appointment on Tuesday", coord="3, 1, 4"
        )
        assert vet["coord"] == "3,1,4"
        other = await call(session, "remember", text="The quarterly report is due in March")
        assert other["coord"] != cat["coord"]

        found = await call(session, "recall", query="what is the name of the user's cat?")
        assert found["results"][0]["coord"] == cat["coord"]
        assert found["results"][0]["payload"]["topic"] == "pets"
        assert (await call(session, "recall", query="what is the capital of Japan?"))["results"]
        off_topic = await call(
            session, "recall", query="what is the capital of Japan?", min_score=0.3
        )
        assert off_topic["results"] == []
        only_pets = await call(session, "recall", query="Miso", filters={"topic": "pets"})
        assert [r["coord"] for r in only_pets["results"]] == [cat["coord"]]
        one = await call(session, "recall", query="Miso", top_k=1, memory_type="episodic")
        assert [r["coord"] for r in one["results"]] == ["3,1,4"]

        got = await call(session, "get_memory", coord=cat["coord"])
        assert got["payload"]["text"].startswith("The user's cat")

        link = await call(
            session,
            "link",
            from_coord=cat["coord"],
            to_coord="3.0,1,4",
            link_type="about",
            strength=0.8,
        )
        assert (link["to_coord"], link["link_type"], link["strength"]) == ("3,1,4", "about", 0.8)
        near = await call(session, "neighbors", coord=cat["coord"])
        assert near["neighbors"] == [
            {"coord": "3,1,4", "link_type": "about", "strength": 0.8, "depth": 1}
        ]
        back = await call(session, "neighbors", coord="3,1,4", direction="in")
        assert [n["coord"] for n in back["neighbors"]] == [cat["coord"]]

        assert await call(session, "forget", coord="3,1,4") == {"deleted": True}
        assert (await call(session, "neighbors", coord=cat["coord"]))["neighbors"] == []
        gone = await session.call_tool("get_memory", {"coord": "3,1,4"})
        assert gone.is_error
        assert "NotFound" in text_of(gone)
        assert "3,1,4" in text_of(gone)


@pytest.mark.anyio
async def test_remember_with_supersedes_then_recall_and_history(soma_env: dict[str, str]) -> None:
    async with stdio_session(soma_env) as session:
        paris = await call(session, "remember", text="The user lives in Paris")
        assert paris["status"] == "created"
        berlin = await call(
            session, "remember", text="The user moved to Berlin", supersedes=[paris["coord"]]
        )
        found = await call(session, "recall", query="where does the user live?")
        assert [r["coord"] for r in found["results"]] == [berlin["coord"]]
        both = await call(
            session, "recall", query="where does the user live?", include_superseded=True
        )
        marked = {r["coord"]: r["superseded_by"] for r in both["results"]}
        assert marked == {paris["coord"]: berlin["coord"], berlin["coord"]: None}
        block = await call(session, "get_context", query="where does the user live?")
        assert "The user moved to Berlin" in block["context"]
        assert "Paris" not in block["context"]  # superseded: not a current fact
        assert block["tokens"] <= block["budget_tokens"] == 1000
        assert [s["key"] for s in block["sources"]] == [berlin["coord"]]
        versions = await call(session, "history", coord=paris["coord"])
        assert [v["change"] for v in versions["versions"]] == ["superseded", "created"]
        again = await call(session, "remember", text="The user moved to Berlin")
        assert again["duplicate_of"] == [berlin["coord"]]


@pytest.mark.anyio
async def test_a_server_pinned_to_one_user_never_reaches_another(
    soma_env: dict[str, str], sfm_server: ServerProcess
) -> None:
    headers = {"Authorization": f"Bearer {soma_env['SOMA_API_KEY']}"}
    async with httpx.AsyncClient(base_url=sfm_server.url, headers=headers, timeout=30) as http:
        bob = await http.post(
            "/memories",
            json={"coord": "9,9", "payload": {"text": "Bob's cat is named Miso"}, "user_id": "bob"},
        )
        assert bob.status_code == 201, bob.text
        async with stdio_session({**soma_env, "SOMA_USER_ID": "ann"}) as session:
            ann = await call(session, "remember", text="Ann's cat is named Pixel")
            assert ann["user_id"] == "ann"
            found = await call(session, "recall", query="what is the cat's name?")
            assert [r["coord"] for r in found["results"]] == [ann["coord"]]
            hidden = await session.call_tool("get_memory", {"coord": "9,9"})
            assert hidden.is_error
            assert "no memory at coord" in text_of(hidden)
            assert (await session.call_tool("forget", {"coord": "9,9"})).is_error
            other = await session.call_tool("recall", {"query": "cat", "user_id": "bob"})
            assert other.is_error
            assert "'ann' only" in text_of(other)
            posted = await call(
                session,
                "remember_messages",
                conversation_id="chat-1",
                messages=[
                    {"id": "1", "role": "user", "content": "I am flying to Lisbon on Friday"}
                ],
            )
            assert posted["messages"] == [{"id": "1", "status": "created"}]
            block = await call(session, "get_context", query="what is the cat's name?")
            assert "Ann's cat is named Pixel" in block["context"]
            assert "Miso" not in block["context"]
            trip = await call(session, "get_context", query="when is the Lisbon flight?")
            assert "] user: I am flying to Lisbon on Friday" in trip["context"]
            assert {"message"} <= {s["kind"] for s in trip["sources"]}
            theirs = await session.call_tool("get_context", {"query": "cat", "user_id": "bob"})
            assert theirs.is_error
            assert "'ann' only" in text_of(theirs)
        listed = (await http.get("/conversations/chat-1/messages")).json()["messages"]
        assert [(m["id"], m["user_id"]) for m in listed] == [("1", "ann")]
        assert (await http.get("/memories/9,9")).is_success


@pytest.mark.anyio
async def test_errors_reach_the_model_as_tool_errors(soma_env: dict[str, str]) -> None:
    async with stdio_session(soma_env) as session:
        bad = await session.call_tool("get_memory", {"coord": "1,x"})
        assert bad.is_error
        assert "InvalidInput" in text_of(bad)
        assert "coord" in text_of(bad)
        dangling = await session.call_tool("link", {"from_coord": "8,8", "to_coord": "9,9"})
        assert dangling.is_error
        assert "NotFound" in text_of(dangling)
        empty = await session.call_tool("recall", {"query": ""})
        assert empty.is_error
        assert "query" in text_of(empty)
    wrong_key = {**soma_env, "SOMA_API_KEY": "sfm_not_a_key"}
    async with stdio_session(wrong_key) as session:
        refused = await session.call_tool("recall", {"query": "anything"})
        assert refused.is_error
        assert "Unauthorized" in text_of(refused)


def test_missing_configuration_is_named() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SOMA_URL", "SOMA_API_KEY")}
    done = subprocess.run(MCP_COMMAND, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "SOMA_URL and SOMA_API_KEY not set" in done.stderr
    bad_url = {**env, "SOMA_URL": "127.0.0.1:9595", "SOMA_API_KEY": "k"}
    done = subprocess.run(MCP_COMMAND, env=bad_url, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "SOMA_URL must be an http(s) URL" in done.stderr


@pytest.mark.anyio
async def test_http_transport(soma_env: dict[str, str]) -> None:
    port = free_port()
    command = [*MCP_COMMAND, "--transport", "http", "--port", str(port)]
    with background(command, {**os.environ, **soma_env}) as process:
        wait_until(lambda: port_open(port), process, "MCP over HTTP")
        with anyio.fail_after(SESSION_TIMEOUT):
            async with (
                streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                tools = {t.name for t in (await session.list_tools()).tools}
                assert tools == TOOLS
                stored = await call(session, "remember", text="Notes travel over HTTP too")
                recalled = await call(session, "recall", query="notes over HTTP", top_k=1)
                assert recalled["results"][0]["coord"] == stored["coord"]
