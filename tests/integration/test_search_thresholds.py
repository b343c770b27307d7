"""min_score and signals on message and item search, on the real stores: the same bounds and
meaning as memory search's (calibrated scale, [0, 1], 422 naming it, off by default)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

Headers = dict[str, str]
OFF_TOPIC = "what is the capital of Japan?"
TURNS = [
    "Our dog Biscuit loves long walks on the beach",
    "I started learning the violin last spring",
    "My sister teaches chemistry at a high school",
]


def _messages(client: TestClient, auth: Headers, **body: Any) -> Any:
    return client.post("/conversations/search", headers=auth, json=body)


def _items(client: TestClient, auth: Headers, **body: Any) -> Any:
    return client.post("/items/search", headers=auth, json=body)


@pytest.fixture
def chat(client: TestClient, auth: Headers) -> str:
    cid = f"c-{uuid.uuid4().hex[:10]}"
    messages = [{"id": str(i), "role": "user", "content": t} for i, t in enumerate(TURNS)]
    posted = client.post(
        f"/conversations/{cid}/messages", headers=auth, json={"messages": messages, "user_id": "u"}
    )
    assert posted.status_code in (200, 201), posted.text
    return cid


def test_message_search_min_score(client: TestClient, auth: Headers, chat: str) -> None:
    """Off-topic: weak hits without min_score, none at 0.5 in every mode; the exact text
    passes 0.9 in vector and hybrid mode; signals carry ranks and raw scores."""
    weak = _messages(client, auth, query=OFF_TOPIC, mode="vector").json()["results"]
    assert weak, "without min_score the best (weak) matches come back"
    for mode in ("vector", "keyword", "hybrid"):
        answer = _messages(client, auth, query=OFF_TOPIC, mode=mode, min_score=0.5)
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == [], mode
    for mode in ("vector", "hybrid"):
        found = _messages(client, auth, query=TURNS[0], mode=mode, min_score=0.9).json()
        assert [r["id"] for r in found["results"]] == ["0"], mode
    hybrid = _messages(client, auth, query="Biscuit the dog", mode="hybrid").json()["results"]
    top = hybrid[0]
    assert top["id"] == "0"
    assert top["signals"]["vector"] == 1
    assert top["signals"]["keyword"] == 1
    assert 0.0 < top["signals"]["vector_score"] <= 1.0  # the raw cosine
    assert top["signals"]["keyword_score"] > 0.0  # the raw ts_rank_cd
    vector = _messages(client, auth, query="Biscuit the dog", mode="vector").json()["results"]
    assert vector[0]["signals"]["keyword"] is None
    assert vector[0]["signals"]["vector_score"] == pytest.approx(vector[0]["score"])


def test_item_search_min_score(client: TestClient, auth: Headers) -> None:
    ns = ["notes", uuid.uuid4().hex[:8]]
    for i, text in enumerate(TURNS):
        put = client.put(
            "/items", headers=auth, json={"namespace": ns, "key": f"k{i}", "value": {"text": text}}
        )
        assert put.status_code == 201, put.text
    assert _items(client, auth, namespace_prefix=ns, query=OFF_TOPIC).json()["items"]
    for mode in ("vector", "keyword", "hybrid"):
        answer = _items(
            client, auth, namespace_prefix=ns, query=OFF_TOPIC, mode=mode, min_score=0.5
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["items"] == [], mode
    for mode in ("vector", "hybrid"):
        body = {"namespace_prefix": ns, "query": TURNS[1], "mode": mode, "min_score": 0.9}
        found = _items(client, auth, **body).json()["items"]
        assert [i["key"] for i in found] == ["k1"], mode
        assert found[0]["signals"]["vector"] == 1
    keyword = _items(client, auth, namespace_prefix=ns, query="violin spring", mode="keyword")
    top = keyword.json()["items"][0]
    assert top["key"] == "k1"
    assert top["signals"]["keyword"] == 1
    assert top["signals"]["keyword_score"] > 0.0
    assert top["signals"]["vector"] is None


def test_min_score_bounds_are_checked(client: TestClient, auth: Headers) -> None:
    for bad in (-0.1, 1.5, "high"):
        for answer in (
            _messages(client, auth, query="violin", min_score=bad),
            _items(client, auth, query="violin", min_score=bad),
        ):
            assert answer.status_code == 422
            assert "min_score" in answer.json()["detail"]
    # A listing has no score to compare: min_score needs a query or a vector.
    listing = _items(client, auth, namespace_prefix=["notes"], min_score=0.2)
    assert listing.status_code == 422
    assert "min_score" in listing.json()["detail"]


def test_context_sources_carry_raw_signal_scores(
    client: TestClient, auth: Headers, chat: str
) -> None:
    """Message and memory sources of POST /context carry ranks and raw scores in signals."""
    stored = client.post(
        "/memories",
        headers=auth,
        json={"coord": "7,7", "payload": {"text": "Biscuit the dog is three years old"}},
    )
    assert stored.status_code == 201, stored.text
    answer = client.post(
        "/context", headers=auth, json={"query": "how old is Biscuit the dog?", "min_score": 0}
    )
    assert answer.status_code == 200, answer.text
    sources = {s["kind"]: s for s in reversed(answer.json()["sources"])}
    for kind in ("memory", "message"):
        signals = sources[kind]["signals"]
        assert signals["vector"] is not None, kind
        assert signals["vector_score"] > 0.0, kind
        assert signals["keyword"] is not None, kind
        assert signals["keyword_score"] > 0.0, kind
    assert sources["message"]["key"] == "0"
