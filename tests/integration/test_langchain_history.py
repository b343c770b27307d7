"""``SFMChatMessageHistory`` (LangChain's chat message history over the conversations API),
sync and async, against the session's real server. langchain-tests ships no standard suite
for chat message histories, so these are ours: order, exact round trips of every message
kind, idempotent re-adding, clear, the scopes and the plain turns other readers see."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from somafractalmemory.client import AsyncSFMClient, Conflict, SFMClient
from somafractalmemory.langchain_history import SFMChatMessageHistory
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_key(stack: Stack) -> str:
    key, _info = stack.keys.create(f"lc-history-{uuid.uuid4().hex[:10]}")
    return key


def every_kind() -> list[BaseMessage]:
    return [
        SystemMessage("You are terse."),
        HumanMessage("I drink green tea.", name="ann"),
        AIMessage(
            "",
            tool_calls=[{"name": "lookup", "args": {"q": "tea"}, "id": "call-1"}],
            response_metadata={"model": "none"},
        ),
        ToolMessage("green tea: a tea", tool_call_id="call-1"),
        AIMessage([{"type": "text", "text": "Green tea, noted."}]),
        HumanMessage('{"looks": "like json"}'),
        ChatMessage("a custom role", role="narrator"),
        AIMessage("Plain again."),
    ]


def dicts(messages: list[BaseMessage]) -> list[dict[str, object]]:
    return [message_to_dict(m) for m in messages]


def test_round_trip_order_idempotence_and_clear(sfm_server: ServerProcess, api_key: str) -> None:
    with SFMClient(sfm_server.url, api_key) as client:
        history = SFMChatMessageHistory("lc-1", user_id="ann", client=client)
        assert history.messages == []
        sent = every_kind()
        history.add_messages(sent[:3])
        history.add_messages(sent[3:])
        assert all(m.id for m in sent)  # ids written into the messages
        assert dicts(history.messages) == dicts(sent)

        history.add_messages(sent)  # again: nothing new
        history.add_messages(history.messages)  # read back and re-added: nothing new
        assert dicts(history.messages) == dicts(sent)

        # Plain turns stay plain for the other readers of the conversation.
        page = client.list_messages("lc-1")
        assert [(m.role, m.content, m.name) for m in page.messages[:2]] == [
            ("system", "You are terse.", None),
            ("user", "I drink green tea.", "ann"),
        ]
        assert page.messages[3].role == "tool"
        assert {m.user_id for m in page.messages} == {"ann"}
        assert client.list_conversations(user_id="ann").conversations[0].messages == len(sent)
        hit = client.search_messages("which tea does she drink?", conversation_id="lc-1")
        assert hit.results[0].content == "I drink green tea."

        with pytest.raises(Conflict):
            history.add_message(HumanMessage("changed", id=sent[1].id))

        history.clear()
        assert history.messages == []
        history.clear()  # an empty conversation: no error


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history(sfm_server: ServerProcess, api_key: str) -> None:
    """LangChain's own wrapper reads and appends through the history."""

    def reply(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(f"{len(messages)} messages so far")

    with SFMClient(sfm_server.url, api_key) as client:
        chain = RunnableWithMessageHistory(
            RunnableLambda(reply),
            lambda sid: SFMChatMessageHistory(sid, user_id="bo", client=client),
        )
        config = {"configurable": {"session_id": "lc-run"}}
        assert chain.invoke([HumanMessage("one")], config).content == "1 messages so far"
        assert chain.invoke([HumanMessage("two")], config).content == "3 messages so far"
        stored = SFMChatMessageHistory("lc-run", client=client).messages
        assert [m.content for m in stored] == [
            "one",
            "1 messages so far",
            "two",
            "3 messages so far",
        ]


@pytest.mark.anyio
async def test_async_history(sfm_server: ServerProcess, api_key: str) -> None:
    async with AsyncSFMClient(sfm_server.url, api_key) as client:
        history = SFMChatMessageHistory("lc-async", session_id="s1", async_client=client)
        sent = every_kind()
        await history.aadd_messages(sent)
        await history.aadd_messages(sent)
        assert dicts(await history.aget_messages()) == dicts(sent)
        await history.aclear()
        assert await history.aget_messages() == []
        with pytest.raises(ValueError, match="SFMClient"):
            _ = history.messages


def test_needs_a_client() -> None:
    with pytest.raises(ValueError, match="client"):
        SFMChatMessageHistory("x")


def test_example_runs(sfm_server: ServerProcess, api_key: str) -> None:
    """examples/langchain_memory.py (retriever and chat history, no LLM) as a subprocess."""
    example = Path(__file__).resolve().parents[2] / "examples" / "langchain_memory.py"
    env = {**os.environ, "SOMA_URL": sfm_server.url, "SOMA_API_KEY": api_key}
    done = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "retrieved: Redis only caches reads" in done.stdout
    assert "history: [('human', 'I drink green tea, no sugar'), ('ai', 'Noted: green tea.')]" in (
        done.stdout
    )
    assert "recalled: I drink green tea, no sugar" in done.stdout
    assert "after clear: []" in done.stdout
    assert "documents left: 0" in done.stdout
