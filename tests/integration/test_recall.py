"""Hybrid recall: search modes, signals, filters inside each store, client vectors, timing."""

from __future__ import annotations

import math
import random
import time
import uuid

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from somafractalmemory.core import fusion
from somafractalmemory.stack import Stack
from somafractalmemory.stores.tables import records

Headers = dict[str, str]

MEMORIES = {
    "1,1": "Invoice INV-20931 from Acme Corp is due on the 14th",
    "2,2": "The user's daughter plays the violin in the school orchestra",
    "3,3": "Remember to water the basil plants on the balcony",
    "4,4": "Flight LH-4410 to Frankfurt departs from gate B12",
    "5,5": "The user dislikes cilantro and loves spicy ramen",
}


@pytest.fixture
def seeded(client: TestClient, auth: Headers) -> Headers:
    batch = [
        {
            "coord": coord,
            "payload": {"text": text, "kind": "travel" if "Flight" in text else "other"},
            "memory_type": "semantic" if coord in ("2,2", "5,5") else "episodic",
            "importance": 0.9 if coord == "3,3" else 0.2,
        }
        for coord, text in MEMORIES.items()
    ]
    assert client.post("/memories/batch", headers=auth, json={"memories": batch}).status_code == 201
    return auth


def search(client: TestClient, auth: Headers, **body: object) -> list[dict]:
    response = client.post("/memories/search", headers=auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_keyword_mode_finds_exact_identifiers(client: TestClient, seeded: Headers) -> None:
    hits = search(client, seeded, query="INV-20931", mode="keyword")
    assert [h["coord"] for h in hits] == ["1,1"]
    signals = hits[0]["signals"]
    assert signals["vector"] is None
    assert signals["keyword"] == 1
    assert signals["link"] is None
    assert signals["vector_score"] is None
    assert signals["keyword_score"] > 0
    assert hits[0]["score"] == pytest.approx(fusion.keyword_score(signals["keyword_score"]))
    assert search(client, seeded, query="zyzzyva", mode="keyword") == []


def test_vector_mode_finds_meaning_without_shared_words(
    client: TestClient, seeded: Headers
) -> None:
    hits = search(client, seeded, query="which food does the person hate?", mode="vector")
    assert hits[0]["coord"] == "5,5"
    assert hits[0]["signals"]["vector"] == 1
    assert hits[0]["signals"]["keyword"] is None
    cosine = hits[0]["signals"]["vector_score"]
    assert hits[0]["score"] == pytest.approx(fusion.vector_score(cosine))
    assert all(0.0 <= h["score"] <= 1.0 for h in hits)


def test_hybrid_fuses_both_signals(client: TestClient, seeded: Headers) -> None:
    hits = search(client, seeded, query="flight LH-4410 gate")
    assert hits[0]["coord"] == "4,4"
    assert hits[0]["signals"]["vector"] == 1
    assert hits[0]["signals"]["keyword"] == 1
    signals = hits[0]["signals"]
    # Five memories: neither signal's list is full, so a memory one signal missed gets 0 there.
    expected = fusion.VECTOR_WEIGHT * fusion.vector_score(signals["vector_score"])
    expected += fusion.KEYWORD_WEIGHT * fusion.keyword_score(signals["keyword_score"])
    assert hits[0]["score"] == pytest.approx(expected)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    for h in hits[1:]:
        if h["signals"]["keyword"] is None:  # found by meaning only: its keyword part is 0
            v = fusion.vector_score(h["signals"]["vector_score"])
            assert h["score"] == pytest.approx(fusion.VECTOR_WEIGHT * v)


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_an_exact_stored_text_ranks_first_in_every_mode(
    client: TestClient, seeded: Headers, mode: str
) -> None:
    for coord, text in MEMORIES.items():
        hits = search(client, seeded, query=text, mode=mode)
        assert hits[0]["coord"] == coord, (mode, text, hits)
        assert all(0.0 <= h["score"] <= 1.0 for h in hits)


# Filters, time filters, link expansion under filters and recency on a corpus where a filter
# applied after the limit would be caught: tests/integration/test_recall_scope.py.


def test_importance_boost_reorders(client: TestClient, seeded: Headers) -> None:
    plain = search(client, seeded, query="plants and violin", mode="hybrid")
    boosted = search(client, seeded, query="plants and violin", mode="hybrid", importance_boost=5)
    assert boosted[0]["coord"] == "3,3"
    assert all(0.0 <= h["score"] <= 1.0 for h in boosted)

    def ratio(hits: list[dict]) -> float:
        by = {h["coord"]: h["score"] for h in hits}
        return float(by["3,3"] / by["2,2"])

    # 3,3 has importance 0.9, 2,2 0.2: the boost scales them by 5.5/6 and 2/6.
    assert ratio(boosted) == pytest.approx(ratio(plain) * 5.5 / 2.0)


def test_expand_links_adds_linked_memories(client: TestClient, seeded: Headers) -> None:
    link = {"from_coord": "4,4", "to_coord": "1,1", "link_type": "paid_with", "strength": 1.0}
    assert client.post("/graph/link", headers=seeded, json=link).status_code == 201
    without = search(client, seeded, query="LH-4410", mode="keyword")
    assert [h["coord"] for h in without] == ["4,4"]
    expanded = search(client, seeded, query="LH-4410", mode="keyword", expand_links=1)
    assert [h["coord"] for h in expanded] == ["4,4", "1,1"]
    assert expanded[1]["signals"] == {
        "vector": None,
        "keyword": None,
        "link": 1,
        "vector_score": None,
        "keyword_score": None,
    }
    assert expanded[1]["score"] < expanded[0]["score"]


def _unit(dimension: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0, 1) for _ in range(dimension)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def test_client_supplied_vectors(client: TestClient, auth: Headers) -> None:
    mine = _unit(384, 1)
    stored = client.post(
        "/memories",
        headers=auth,
        json={"coord": "9,9", "payload": {"text": "embedded elsewhere"}, "vector": mine},
    )
    assert stored.status_code == 201
    client.post("/memories", headers=auth, json={"coord": "8,8", "payload": {"text": "other"}})
    hits = search(client, auth, vector=mine, mode="vector", top_k=2)
    assert hits[0]["coord"] == "9,9"
    assert hits[0]["signals"]["vector_score"] == pytest.approx(1.0, abs=1e-4)
    assert hits[0]["score"] == pytest.approx(fusion.vector_score(1.0), abs=1e-4)

    short = client.post(
        "/memories", headers=auth, json={"coord": "7,7", "payload": {"text": "x"}, "vector": [1.0]}
    )
    assert short.status_code == 422
    assert "vector" in short.json()["detail"]
    assert "384" in short.json()["detail"]
    bad_query = client.post(
        "/memories/search", headers=auth, json={"vector": [0.5, 0.5], "mode": "vector"}
    )
    assert bad_query.status_code == 422
    assert "vector" in bad_query.json()["detail"]
    keyword_needs_text = client.post(
        "/memories/search", headers=auth, json={"vector": mine, "mode": "keyword"}
    )
    assert keyword_needs_text.status_code == 422
    assert "query" in keyword_needs_text.json()["detail"]
    zeros = client.post(
        "/memories/search", headers=auth, json={"vector": [0.0] * 384, "mode": "vector"}
    )
    assert zeros.status_code == 422


def test_read_your_writes(client: TestClient, auth: Headers) -> None:
    for i in range(20):
        text = f"ephemeral fact {i}: the locker code is {1000 + i * 37}"
        client.post(
            "/memories", headers=auth, json={"coord": f"{i},0,1", "payload": {"text": text}}
        )
        hits = search(client, auth, query=text, mode="vector", top_k=1)
        assert hits[0]["coord"] == f"{i},0,1"


def test_server_timing_and_stage_metrics(client: TestClient, seeded: Headers) -> None:
    response = client.post(
        "/memories/search", headers=seeded, json={"query": f"flight {uuid.uuid4().hex}"}
    )
    timing = response.headers["Server-Timing"]
    for stage_name in ("embed", "milvus", "postgres", "fuse"):
        assert f"{stage_name};dur=" in timing
    stored = client.post(
        "/memories", headers=seeded, json={"coord": "6,6", "payload": {"text": "x"}}
    )
    assert "milvus;dur=" in stored.headers["Server-Timing"]
    metrics = client.get("/metrics").text
    assert 'api_stage_duration_seconds_count{stage="embed"}' in metrics


def test_query_embeddings_are_cached_in_redis(
    client: TestClient, seeded: Headers, stack: Stack
) -> None:
    """The query vector is written to Redis after the search answered (off its path); once
    there, the same query is answered from it, its embedding stopped.

    The lookup runs beside the embedding, and one that answers after the embedding is
    not used (nor waited for): the cached answer is asked for up to five times, so a Redis
    slowed by the machine's load cannot fail the test."""
    query = "which gate does the Frankfurt flight leave from?"
    model = stack.embedder.model_name
    assert stack.cache.get_query_vector(model, query) is None
    first = client.post("/memories/search", headers=seeded, json={"query": query})
    assert "embed;dur=" in first.headers["Server-Timing"]
    deadline = time.monotonic() + 5
    while stack.cache.get_query_vector(model, query) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stack.cache.get_query_vector(model, query) == pytest.approx(
        stack.embedder.embed_one(query), abs=1e-6
    )
    for _ in range(5):
        again = client.post("/memories/search", headers=seeded, json={"query": query})
        assert again.json()["results"] == first.json()["results"]
        if "embed;dur=" not in again.headers["Server-Timing"]:
            break
    assert "embed;dur=" not in again.headers["Server-Timing"]


def test_a_cached_query_vector_replaces_the_embedding(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    """A query whose vector Redis holds is searched with that vector, not the model's: here
    the cached vector is a stored memory's own (client-supplied) vector, unlike any text's."""
    target = _unit(384, 11)
    stored = client.post(
        "/memories",
        headers=auth,
        json={"coord": "71,1", "payload": {"text": "planted"}, "vector": target},
    )
    assert stored.status_code == 201, stored.text
    query = f"a text that embeds nowhere near the planted vector {uuid.uuid4()}"
    for _ in range(5):  # planted again each time: a late lookup lets the search cache its own
        stack.cache.put_query_vector(stack.embedder.model_name, query, target)
        hits = client.post(
            "/memories/search", headers=auth, json={"query": query, "mode": "vector"}
        ).json()["results"]
        if hits and hits[0]["signals"]["vector_score"] == pytest.approx(1.0, abs=1e-4):
            break  # the planted vector was used (the lone memory is first either way)
    assert hits[0]["coord"] == "71,1"
    assert hits[0]["signals"]["vector_score"] == pytest.approx(1.0, abs=1e-4)


def test_vector_mode_skips_a_vector_whose_row_is_gone(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    """Plain vector mode reads only the rows it returns; when the best vector's row is gone
    (removed from PostgreSQL behind the service's back), the next ones fill the top_k."""
    query = _unit(384, 3)
    near = [*query[:383], query[383] + 0.1]
    middle = [*query[:382], query[382] + 0.5, query[383]]
    far = [*query[:381], query[381] + 2.0, query[382], query[383]]
    for coord, vector in (("61,1", near), ("61,2", middle), ("61,3", far)):
        body = {"coord": coord, "payload": {"text": coord}, "vector": vector}
        assert client.post("/memories", headers=auth, json=body).status_code == 201
    assert [h["coord"] for h in search(client, auth, vector=query, mode="vector", top_k=2)] == [
        "61,1",
        "61,2",
    ]
    tenant = stack.keys.authenticate(auth["Authorization"].removeprefix("Bearer "))
    with stack.postgres.engine.begin() as conn:
        conn.execute(
            sa.delete(records).where(records.c.tenant_id == tenant.id, records.c.key == "61,1")
        )
    hits = search(client, auth, vector=query, mode="vector", top_k=2)
    assert [h["coord"] for h in hits] == ["61,2", "61,3"]


def test_min_score_drops_weak_results(client: TestClient, seeded: Headers) -> None:
    """An off-topic query gets its weak matches without min_score and nothing at 0.3; a
    threshold close to 1 keeps only the stored text itself."""
    off = "what is the capital of Japan?"
    assert search(client, seeded, query=off)
    assert search(client, seeded, query=off, min_score=0.3) == []
    text = MEMORIES["2,2"]
    for mode in ("vector", "hybrid"):
        hits = search(client, seeded, query=text, mode=mode, min_score=0.9)
        assert [h["coord"] for h in hits] == ["2,2"], mode
    every = search(client, seeded, query="violin plants flight", min_score=0.0)
    assert all(0.0 <= h["score"] <= 1.0 for h in every)
    for bad in (-0.1, 1.5, "high"):
        answer = client.post(
            "/memories/search", headers=seeded, json={"query": "violin", "min_score": bad}
        )
        assert answer.status_code == 422
        assert "min_score" in answer.json()["detail"]
