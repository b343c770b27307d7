"""POST /context against the real stack: budgets, determinism, the top hit, bad input, tenants,
and the Python client (sync and async) against the session's real server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from fastapi.testclient import TestClient

from somafractalmemory.client import AsyncSFMClient, SFMClient
from somafractalmemory.context_schemas import CONTEXT_MIN_SCORE
from somafractalmemory.core.tokens import TokenCounter
from somafractalmemory.settings import DEFAULT_EMBEDDING_MODEL
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess

Headers = dict[str, str]
TOPICS = ["hiking", "violin lessons", "spicy ramen", "the dentist", "a trip to Lisbon", "taxes"]
LONG_TEXT = "The zeppelin museum visit " + " ".join(f"detail{i} of the visit" for i in range(300))


def _key(stack: Stack) -> Headers:
    key, _info = stack.keys.create(f"ctx-{uuid.uuid4().hex[:12]}")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def seeded(client: TestClient, stack: Stack) -> Headers:
    """A tenant with 120 short dated memories of two speakers and one very long one."""
    auth = _key(stack)
    start = datetime(2023, 5, 8, 9, 0, tzinfo=UTC)
    memories = [
        {
            "coord": f"7,{i}",
            "payload": {
                "text": f"We talked about {TOPICS[i % len(TOPICS)]} on day {i}",
                "speaker": "Caroline" if i % 2 else "Melanie",
            },
            "valid_from": (start + timedelta(days=i)).isoformat(),
        }
        for i in range(120)
    ]
    memories.append({"coord": "8,1", "payload": {"text": LONG_TEXT, "speaker": "Mel"}})
    answer = client.post("/memories/batch", headers=auth, json={"memories": memories})
    assert answer.status_code == 201, answer.text
    return auth


@pytest.fixture(scope="module")
def counter(stack: Stack) -> TokenCounter:
    return stack.context.tokenizers.default


def context(client: TestClient, auth: Headers, **body: object) -> dict:
    response = client.post("/context", headers=auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("budget", [50, 120, 500, 1000, 2000, 4000])
def test_budget_respected_and_counted_on_the_text(
    client: TestClient, seeded: Headers, counter: TokenCounter, budget: int
) -> None:
    # No threshold: every memory is a candidate, so the budget is what stops the packing.
    got = context(
        client, seeded, query="what did we say about hiking?", budget_tokens=budget, min_score=0
    )
    assert got["tokenizer"] == DEFAULT_EMBEDDING_MODEL
    assert got["budget_tokens"] == budget
    assert got["tokens"] == counter.count(got["context"]) <= budget
    assert got["context"].startswith("## Memories\n[")
    keys = [s["key"] for s in got["sources"]]
    assert len(keys) == len(set(keys))
    assert got["truncated"] is True  # the 121 memories take about 6,000 tokens
    assert got["tokens"] >= budget - 45  # packed until full (a line is under 45 tokens)
    assert all(s["kind"] == "memory" and s["conversation_id"] is None for s in got["sources"])
    top = got["sources"][0]
    assert (
        "hiking" in client.get(f"/memories/{top['key']}", headers=seeded).json()["payload"]["text"]
    )


def test_min_score_keeps_unrelated_memories_out(client: TestClient, seeded: Headers) -> None:
    """At the default min_score an off-topic query packs nothing, a related one only its
    related memories; min_score is checked (422 naming it)."""
    off = context(client, seeded, query="what is the capital of Japan?", budget_tokens=1000)
    assert (off["context"], off["sources"], off["tokens"]) == ("", [], 0)
    assert context(client, seeded, query="what is the capital of Japan?", budget_tokens=1000,
                   min_score=0)["sources"]  # fmt: skip
    hiking = context(client, seeded, query="what did we say about hiking?", budget_tokens=4000)
    assert hiking["sources"]
    assert all(s["score"] >= CONTEXT_MIN_SCORE for s in hiking["sources"])
    for source in hiking["sources"][:3]:
        text = client.get(f"/memories/{source['key']}", headers=seeded).json()["payload"]["text"]
        assert "hiking" in text
    for bad in (-0.1, 1.5):
        answer = client.post("/context", headers=seeded, json={"query": "hiking", "min_score": bad})
        assert answer.status_code == 422
        assert "min_score" in answer.json()["detail"]


def test_more_budget_more_sources(client: TestClient, seeded: Headers) -> None:
    counts = [
        len(context(client, seeded, query="spicy ramen", budget_tokens=b, min_score=0)["sources"])
        for b in (100, 1000, 4000)
    ]
    assert counts[0] < counts[1] < counts[2]


def test_same_request_same_bytes(client: TestClient, seeded: Headers) -> None:
    body = {"query": "a trip to Lisbon and the dentist", "budget_tokens": 700}
    first = client.post("/context", headers=seeded, json=body)
    second = client.post("/context", headers=seeded, json=body)
    assert first.status_code == 200
    assert first.content == second.content


def test_lines_are_dated_attributed_and_in_time_order(client: TestClient, seeded: Headers) -> None:
    got = context(client, seeded, query="violin lessons", budget_tokens=400)
    lines = got["context"].split("\n")[1:]
    assert lines
    for line in lines:
        assert line.startswith("[20")
        assert "] Caroline: We talked about " in line or "] Melanie: We talked about " in line
    stamps = [line[1:17] for line in lines]
    assert stamps == sorted(stamps)


def test_top_hit_cut_not_dropped(
    client: TestClient, seeded: Headers, counter: TokenCounter
) -> None:
    got = context(client, seeded, query="zeppelin museum visit", budget_tokens=50)
    assert got["sources"][0]["key"] == "8,1"
    assert got["sources"][0]["truncated"] is True
    assert got["truncated"] is True
    assert got["context"].endswith("…")
    assert "Mel: The zeppelin museum visit" in got["context"]
    assert counter.count(got["context"]) == got["tokens"] <= 50


def test_messages_format_and_turns_as_query(
    client: TestClient, seeded: Headers, counter: TokenCounter
) -> None:
    turns = [
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": "Remind me what we said about taxes"},
    ]
    got = context(client, seeded, messages=turns, budget_tokens=300, format="messages")
    (message,) = got["context"]
    assert message["role"] == "system"
    assert message["content"].startswith("## Memories\n")
    assert "taxes" in message["content"].split("\n")[1]
    assert got["tokens"] == counter.count(message["content"]) <= 300


def test_superseded_memories_are_left_out(client: TestClient, auth: Headers) -> None:
    old = {"coord": "1,1", "payload": {"text": "The user lives in Paris"}}
    assert client.post("/memories", headers=auth, json=old).status_code == 201
    new = {"coord": "1,2", "payload": {"text": "The user moved to Berlin"}, "supersedes": ["1,1"]}
    assert client.post("/memories", headers=auth, json=new).status_code == 201
    got = context(client, auth, query="where does the user live?", budget_tokens=200)
    assert "Berlin" in got["context"]
    assert "Paris" not in got["context"]
    assert [s["key"] for s in got["sources"]] == ["1,2"]


def test_other_tenants_never_appear(client: TestClient, seeded: Headers, stack: Stack) -> None:
    other = _key(stack)
    secret = {"coord": "7,1", "payload": {"text": "hiking hiking secret of the other tenant"}}
    assert client.post("/memories", headers=other, json=secret).status_code == 201
    got = context(client, seeded, query="hiking secret of the other tenant", budget_tokens=4000)
    assert "secret" not in got["context"]
    theirs = context(client, other, query="hiking", budget_tokens=4000)
    assert [s["key"] for s in theirs["sources"]] == ["7,1"]
    assert "We talked about" not in theirs["context"]
    empty = context(client, _key(stack), query="hiking", budget_tokens=100)
    assert (empty["context"], empty["tokens"], empty["sources"]) == ("", 0, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "x", "budget_tokens": 31}, "budget_tokens"),
        ({"query": "x", "budget_tokens": 32_001}, "budget_tokens"),
        ({"query": "x", "budget_tokens": True}, "budget_tokens"),
        ({"budget_tokens": 100}, "query"),
        ({"query": "x", "messages": [{"role": "user", "content": "y"}]}, "query"),
        ({"query": "  "}, "query"),
        ({"messages": [{"role": "robot", "content": "y"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": " "}]}, "messages[0].content"),
        ({"query": "x", "tokenizer": "cl100k_base"}, "tokenizer"),
        ({"query": "x", "include": []}, "include"),
        ({"query": "x", "user_id": ""}, "user_id"),
        ({"query": "x", "conversation_id": "a.b"}, "conversation_id"),
        ({"query": "x", "include": ["documents"]}, "include"),
        ({"query": "x", "format": "html"}, "format"),
        ({"query": "x", "window": 11}, "window"),
        ({"query": "x", "filters": {"bad key": 1}}, "filters.bad key"),
        ({"query": "x", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, auth: Headers, body: dict, field: str
) -> None:
    response = client.post("/context", headers=auth, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "InvalidInputError"
    assert field in response.json()["detail"]


def test_needs_a_key(client: TestClient) -> None:
    assert client.post("/context", json={"query": "x"}).status_code == 401


def test_python_clients(sfm_server: ServerProcess, client: TestClient, stack: Stack) -> None:
    auth = _key(stack)
    memory = {"coord": "2,2", "payload": {"text": "The user's cat is named Miso"}}
    assert client.post("/memories", headers=auth, json=memory).status_code == 201
    key = auth["Authorization"].removeprefix("Bearer ")
    # min_score 0: the memory was written by this process; until the server's Milvus client
    # sees it (a time tick), only its keyword match finds it, which alone scores below 0.3.
    with SFMClient(sfm_server.url, key) as sfm:
        got = sfm.context("what is the cat called?", 100, min_score=0)
        as_messages = sfm.context(
            messages=[{"role": "user", "content": "my cat"}],
            budget_tokens=100,
            format="messages",
            min_score=0,
        )
    assert isinstance(got.context, str)
    assert got.context.startswith("## Memories\n[")
    assert got.context.endswith("] The user's cat is named Miso")
    assert [s.key for s in got.sources] == ["2,2"]
    assert got.tokens <= 100
    assert not isinstance(as_messages.context, str)
    assert as_messages.context[0].role == "system"

    async def async_call() -> str:
        async with AsyncSFMClient(sfm_server.url, key) as sfm:
            answer = await sfm.context("what is the cat called?", 100, min_score=0)
        return str(answer.context)

    assert anyio.run(async_call) == got.context
