"""POST /context over conversations stored through the messages API, against the real stack:
a turn of an earlier session answers a later question, within the budget the named tokenizer
counts; a turn comes with its neighbours; scopes and conversations keep other users' and
other conversations' records out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from somafractalmemory.core.context_sources import ContextQuery
from somafractalmemory.models import Scopes
from somafractalmemory.stack import Stack
from somafractalmemory.stores.message_windows import message_windows

Headers = dict[str, str]
SISTER = "My sister Ingrid moved to Bergen last spring, she teaches chemistry there."
BOB_SISTER = "My sister Astrid moved to Tromso, she flies rescue helicopters."


def _turns(start: datetime, texts: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "id": str(i),
            "role": "user" if i % 2 == 0 else "assistant",
            "content": text,
            "created_at": (start + timedelta(minutes=i)).isoformat(),
        }
        for i, text in enumerate(texts)
    ]


@pytest.fixture(scope="module")
def tenant(client: TestClient, stack: Stack) -> dict[str, Any]:
    """One tenant: Alice's two sessions (the sister told in the first), Bob's session with a
    sister of his own, and one memory each."""
    key, _info = stack.keys.create(f"ctxconv-{uuid.uuid4().hex[:12]}")
    auth = {"Authorization": f"Bearer {key}"}
    day1 = datetime(2025, 3, 1, 18, 0, tzinfo=UTC)
    sessions = {
        "alice-s1": ("alice", "s1", day1, [
            "Hi! I just got back from a family visit.",
            "Welcome back! Who did you visit?",
            "Do you remember where my sister lives now?",
            SISTER,
            "We mostly went hiking in the mountains around the fjord.",
            "That sounds lovely.",
        ]),
        "alice-s2": ("alice", "s2", day1 + timedelta(days=7), [
            "Can you suggest a quick dinner recipe?",
            "A mushroom risotto takes thirty minutes.",
            "Great, I have rice and mushrooms at home.",
        ]),
        "bob-s1": ("bob", "s9", day1, [
            "Let me tell you about my family.",
            BOB_SISTER,
        ]),
    }  # fmt: skip
    for cid, (user, session, start, texts) in sessions.items():
        body = {"user_id": user, "session_id": session, "messages": _turns(start, texts)}
        answer = client.post(f"/conversations/{cid}/messages", headers=auth, json=body)
        assert answer.status_code == 201, answer.text
    for coord, user, text in (("1,1", "alice", "Alice's sister is a chemistry teacher"),
                              ("1,2", "bob", "Bob's sister flies helicopters")):  # fmt: skip
        memory = {"coord": coord, "payload": {"text": text}, "user_id": user}
        answer = client.post("/memories", headers=auth, json=memory)
        assert answer.status_code == 201, answer.text
    return {"auth": auth}


def _context(client: TestClient, auth: Headers, **body: object) -> dict[str, Any]:
    response = client.post("/context", headers=auth, json=body)
    assert response.status_code == 200, response.text
    got: dict[str, Any] = response.json()
    return got


def _recount(stack: Stack) -> Callable[[dict[str, Any]], int]:
    def recount(got: dict[str, Any]) -> int:
        counter = stack.context.tokenizers.get(got["tokenizer"])
        if isinstance(got["context"], str):
            return counter.count(got["context"])
        return sum(counter.count(m["content"]) for m in got["context"])

    return recount


def test_a_turn_of_session_one_answers_in_session_two(
    client: TestClient, stack: Stack, tenant: dict[str, Any]
) -> None:
    recount = _recount(stack)
    question = "Where does my sister live these days?"
    for budget in (60, 200, 1000):
        got = _context(client, tenant["auth"], query=question, budget_tokens=budget,
                       user_id="alice", include=["messages"])  # fmt: skip
        assert got["tokens"] == recount(got) <= budget
        assert "Astrid" not in got["context"]
        assert "Tromso" not in got["context"]
        top = got["sources"][0]
        assert (top["kind"], top["conversation_id"]) == ("message", "alice-s1")
        assert all(s["kind"] == "message" for s in got["sources"])
        assert "Ingrid moved to Bergen" in got["context"]
    # The hit brings the question before it (window 1) and the line says who and when.
    assert "] user: Do you remember where my sister lives now?" in got["context"]
    assert "[2025-03-01 18:03] assistant: " + SISTER in got["context"]


def test_a_hit_brings_its_window_in_conversation_order(
    stack: Stack, tenant: dict[str, Any]
) -> None:
    """The source itself, one hit: the turns up to ``window`` on each side, positions from
    the listing's order, the later turn first at one distance."""
    source = stack.context.sources["messages"]
    me = stack.keys.authenticate(tenant["auth"]["Authorization"].removeprefix("Bearer "))
    scope = Scopes(user_id="alice")
    for window, keys in ((0, []), (1, ["4", "2"]), (2, ["4", "2", "5", "1"])):
        query = ContextQuery("Ingrid moved to Bergen", 1, window, scopes=scope)
        [hit] = source.candidates(me, query)
        assert (hit.kind, hit.turn.key, hit.turn.seq, hit.turn.role) == (
            "message",
            "3",
            4,
            "assistant",
        )
        assert hit.turn.conversation_id == "alice-s1"
        assert [t.key for t in hit.neighbours] == keys
        assert [t.seq for t in hit.neighbours] == [int(k) + 1 for k in keys]
    listed = [m.key for m in stack.messages.page(me, "alice-s1", None, 100)[0]]
    assert listed == ["0", "1", "2", "3", "4", "5"]


def test_messages_and_memories_of_one_user_only(
    client: TestClient, stack: Stack, tenant: dict[str, Any]
) -> None:
    recount = _recount(stack)
    got = _context(client, tenant["auth"], query="my sister", budget_tokens=2000, user_id="alice")
    kinds = {(s["kind"], s["conversation_id"]) for s in got["sources"]}
    assert ("memory", None) in kinds
    assert ("message", "alice-s1") in kinds
    assert not {cid for _k, cid in kinds} & {"bob-s1"}
    for theirs in ("Astrid", "Tromso", "helicopters", "Bob"):
        assert theirs not in got["context"]
    assert got["tokens"] == recount(got) <= 2000
    as_messages = _context(client, tenant["auth"], query="my sister", budget_tokens=2000,
                           user_id="alice", format="messages")  # fmt: skip
    assert as_messages["tokens"] == recount(as_messages)
    assert any(m["role"] == "assistant" and SISTER in m["content"] for m in as_messages["context"])
    # Without a user, both users' records are candidates: Bob's sister is found too.
    everyone = _context(client, tenant["auth"], query="my sister moved", budget_tokens=2000)
    assert "Astrid" in everyone["context"]


def test_one_session_one_conversation(client: TestClient, tenant: dict[str, Any]) -> None:
    # Nothing of session s2 is about a sister: at the default min_score nothing is packed;
    # with no threshold, its turns (and only its turns) are.
    unrelated = _context(client, tenant["auth"], query="my sister", budget_tokens=2000,
                         user_id="alice", session_id="s2", include=["messages"])  # fmt: skip
    assert (unrelated["context"], unrelated["sources"]) == ("", [])
    session = _context(client, tenant["auth"], query="my sister", budget_tokens=2000,
                       user_id="alice", session_id="s2", include=["messages"],
                       min_score=0)  # fmt: skip
    assert {s["conversation_id"] for s in session["sources"]} == {"alice-s2"}
    assert "Ingrid" not in session["context"]
    one = _context(client, tenant["auth"], query="dinner recipe", budget_tokens=2000,
                   conversation_id="alice-s1", include=["messages"], min_score=0)  # fmt: skip
    assert {s["conversation_id"] for s in one["sources"]} == {"alice-s1"}
    assert "risotto" not in one["context"]
    nobody = _context(client, tenant["auth"], query="my sister", budget_tokens=500,
                      user_id="carol")  # fmt: skip
    assert (nobody["context"], nobody["sources"]) == ("", [])


def test_windows_stop_at_the_ends_and_overlap_once(stack: Stack, tenant: dict[str, Any]) -> None:
    me = stack.keys.authenticate(tenant["auth"]["Authorization"].removeprefix("Bearer "))
    listed = {m.key: m.id for m in stack.messages.page(me, "alice-s1", None, 100)[0]}
    other = {m.key: m.id for m in stack.messages.page(me, "alice-s2", None, 100)[0]}
    hits = [(listed["0"], "alice-s1"), (listed["2"], "alice-s1"), (other["2"], "alice-s2")]
    near = message_windows(stack.postgres, me.id, hits, 2)
    got = sorted((m.conversation_id, m.key, m.seq) for m in near)
    assert got == [
        *[("alice-s1", str(i), i + 1) for i in range(5)],  # 0-2 and 0-4 merged, each once
        *[("alice-s2", str(i), i + 1) for i in range(3)],  # the last turn: the two before
    ]
    assert message_windows(stack.postgres, me.id + 10_000, hits, 2) == []  # another tenant
