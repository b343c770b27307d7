"""``SFMSession`` (the OpenAI Agents SDK's session protocol over the conversations API)
against the session's real server: exact round trips of every item shape, order, limits,
pop, clear, scopes, concurrent pops, and a whole agent run (the SDK's scripted model, no LLM)
that reads its history back from SFM."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
from agents import (
    Agent,
    RunConfig,
    Runner,
    SessionSettings,
    TResponseInputItem,
    function_tool,
)
from agents.memory import Session
from agents.testing import ScriptedModel, assistant_message, function_call

from somafractalmemory.client import AsyncSFMClient
from somafractalmemory.openai_agents import SFMSession
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess

pytestmark = pytest.mark.anyio
QUIET = RunConfig(tracing_disabled=True)  # no trace export (it would call OpenAI)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_key(stack: Stack) -> str:
    key, _info = stack.keys.create(f"oa-session-{uuid.uuid4().hex[:10]}")
    return key


def items() -> list[TResponseInputItem]:
    shapes: list[dict[str, Any]] = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "I drink green tea."},
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": [{"type": "input_text", "text": "parts"}]},
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "lookup",
            "arguments": '{"q": "tea"}',
            "id": "fc_1",
        },
        {"type": "function_call_output", "call_id": "c1", "output": "green tea: a tea"},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Noted.", "annotations": []}],
        },
        {"role": "assistant", "content": "{not json, but starts like it"},
        {"role": "user", "content": "  spaces kept  ", "type": "message"},
        {"role": "assistant", "content": "Plain again."},
    ]
    return cast(list[TResponseInputItem], shapes)


async def test_protocol_round_trip(sfm_server: ServerProcess, api_key: str) -> None:
    async with AsyncSFMClient(sfm_server.url, api_key) as client:
        session = SFMSession("oa-1", user_id="ann", client=client)
        assert isinstance(session, Session)
        assert await session.get_items() == []
        assert await session.pop_item() is None
        sent = items()
        await session.add_items(sent[:4])
        await session.add_items(sent[4:])
        assert await session.get_items() == sent
        assert await session.get_items(limit=3) == sent[-3:]
        assert await session.get_items(limit=0) == []

        # Plain turns are turns for SFM's other readers; the rest is kept whole.
        page = await client.list_messages("oa-1")
        assert [(m.role, m.content) for m in page.messages[:2]] == [
            ("system", "Be terse."),
            ("user", "I drink green tea."),
        ]
        assert [m.role for m in page.messages[2:7]] == [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
        ]
        assert {m.user_id for m in page.messages} == {"ann"}
        hit = await client.search_messages("which tea?", conversation_id="oa-1", top_k=1)
        assert hit.results[0].content == "I drink green tea."

        assert await session.pop_item() == sent[-1]
        assert await session.pop_item() == sent[-2]
        assert await session.get_items() == sent[:-2]
        await session.add_items(sent[-1:] * 2)  # the same item twice is two items
        assert await session.get_items(limit=2) == sent[-1:] * 2

        await session.clear_session()
        assert await session.get_items() == []
        await session.clear_session()  # empty: no error


async def test_sessions_are_separate_and_settings_limit(
    sfm_server: ServerProcess, api_key: str
) -> None:
    async with AsyncSFMClient(sfm_server.url, api_key) as client:
        one = SFMSession("oa-a", client=client, session_settings=SessionSettings(limit=2))
        two = SFMSession("oa-b", client=client)
        sent = items()
        await one.add_items(sent)
        await two.add_items(sent[:1])
        assert await one.get_items() == sent[-2:]  # the settings' limit
        assert await one.get_items(limit=5) == sent[-5:]
        assert await two.pop_item() == sent[0]
        assert await two.get_items() == []
        assert len(await SFMSession("oa-a", client=client).get_items()) == len(sent)


async def test_concurrent_pops_remove_distinct_items(
    sfm_server: ServerProcess, api_key: str
) -> None:
    async with AsyncSFMClient(sfm_server.url, api_key) as client:
        session = SFMSession("oa-pop", client=client)
        sent = cast(
            list[TResponseInputItem], [{"role": "user", "content": f"m{i}"} for i in range(6)]
        )
        await session.add_items(sent)
        popped = await asyncio.gather(*(session.pop_item() for _ in range(4)))
        assert sorted(cast(dict[str, str], p)["content"] for p in popped if p) == [
            "m2",
            "m3",
            "m4",
            "m5",
        ]
        assert await session.get_items() == sent[:2]


async def test_agent_run_keeps_its_history_in_sfm(sfm_server: ServerProcess, api_key: str) -> None:
    @function_tool
    def favourite_drink() -> str:
        """The user's favourite drink."""
        return "green tea"

    model = ScriptedModel(
        [
            [function_call("favourite_drink", {}, call_id="call-1")],
            [assistant_message("Green tea.", item_id="msg-1")],
            [assistant_message("You asked about your drink.", item_id="msg-2")],
        ]
    )
    agent = Agent(name="helper", model=model, tools=[favourite_drink])
    async with AsyncSFMClient(sfm_server.url, api_key) as client:
        session = SFMSession("oa-run", user_id="bo", client=client)
        first = await Runner.run(agent, "What do I drink?", session=session, run_config=QUIET)
        assert first.final_output == "Green tea."
        second = await Runner.run(agent, "What did I ask?", session=session, run_config=QUIET)
        assert second.final_output == "You asked about your drink."
        # The second model call saw the first run's whole history, read from SFM.
        assert model.last_call is not None
        seen = cast(list[dict[str, Any]], model.last_call.input)
        assert seen[0] == {"role": "user", "content": "What do I drink?"}
        assert [i.get("type") for i in seen[1:4]] == [
            "function_call",
            "function_call_output",
            "message",
        ]
        assert seen[-1] == {"role": "user", "content": "What did I ask?"}
        stored = await session.get_items()
        assert len(stored) == 6  # two inputs, a call, its output, two answers


def test_needs_a_session_id() -> None:
    with pytest.raises(ValueError, match="session_id"):
        SFMSession("", base_url="http://127.0.0.1:9")


async def test_sessions_from_base_url_per_event_loop(
    sfm_server: ServerProcess, api_key: str
) -> None:
    """A session made from base_url works on every event loop (Runner.run_sync runs its
    own), and closes the clients it made."""
    session = SFMSession("oa-loops", base_url=sfm_server.url, api_key=api_key)
    sent = items()[:2]
    await session.add_items(sent)
    seen = await asyncio.to_thread(asyncio.run, session.get_items())  # another loop
    assert seen == sent
    await session.aclose()
    assert await session.get_items() == sent  # a fresh client after closing


def test_example_runs(sfm_server: ServerProcess, api_key: str) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SOMA_URL": sfm_server.url, "SOMA_API_KEY": api_key}
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "openai_agents_session.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "5 items in session" in done.stdout
    assert "recalled: Book me a table for two on Friday; I am vegetarian." in done.stdout
    assert "after clear: []" in done.stdout


def test_needs_a_client_or_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        SFMSession("oa-x")
