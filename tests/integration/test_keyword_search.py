"""Keyword search on a crowded tenant: thousands of rows share the common words, and the
bounded candidate set (stores/keyword.py) must still find the rare match first and apply every
filter before its limit."""

from __future__ import annotations

import math
import random
import uuid

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from somafractalmemory.core.keys import KeyService
from somafractalmemory.stack import Stack
from somafractalmemory.stores import keyword

Headers = dict[str, str]
CROWD = 3000
RARE = {
    "9,1": ("team meeting about the zanzibar contract", "episodic", "other"),
    "9,2": ("team meeting notes", "semantic", "other"),
    "9,3": ("team meeting notes", "episodic", "special"),
    "9,4": ("team lunch", "episodic", "special"),
    "9,5": ("team offsite", "episodic", "special"),
}


def _vector(rng: random.Random) -> list[float]:
    v = [rng.gauss(0.0, 1.0) for _ in range(384)]
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


@pytest.fixture(scope="module")
def crowded(client: TestClient, stack: Stack) -> Headers:
    """A tenant of 3,005 memories: 3,000 that all say "team meeting" (client vectors, so no
    embedding), five rarer ones; then ANALYZE, so the statistics know "team" is common."""
    key, _ = KeyService(stack.postgres).create(f"crowd-{uuid.uuid4().hex[:8]}")
    auth = {"Authorization": f"Bearer {key}"}
    rng = random.Random(5)
    rows = [
        {
            "coord": f"{i},1",
            "payload": {"text": f"team meeting {i} about the weekly plan", "kind": "crowd"},
            "memory_type": "episodic",
            "vector": _vector(rng),
        }
        for i in range(CROWD)
    ] + [
        {"coord": coord, "payload": {"text": text, "kind": kind}, "memory_type": kind_type}
        for coord, (text, kind_type, kind) in RARE.items()
    ]
    for start in range(0, len(rows), 100):
        response = client.post(
            "/memories/batch", headers=auth, json={"memories": rows[start : start + 100]}
        )
        assert response.status_code == 201, response.text
    with stack.postgres.engine.connect() as conn:
        conn.execute(sa.text("ANALYZE records"))
        conn.commit()
    # The store keeps the statistics for keyword.STATS_TTL: a keyword search of an earlier
    # test in this process (whatever file ran before) cached ones from before this ANALYZE.
    stack.postgres._stats = None
    return auth


def keyword_hits(client: TestClient, auth: Headers, **body: object) -> list[dict]:
    response = client.post("/memories/search", headers=auth, json={"mode": "keyword", **body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_statistics_mark_the_crowd_words_common(stack: Stack, crowded: Headers) -> None:
    with stack.postgres.engine.connect() as conn:
        stats = stack.postgres._lexeme_stats(conn)
    assert stats.estimate("team") > keyword.BUDGET_ROWS / 2
    assert stats.estimate("zanzibar") < keyword.BUDGET_ROWS / 10


def test_a_rare_word_ranks_first_among_thousands_sharing_a_common_word(
    client: TestClient, crowded: Headers
) -> None:
    for query in ("team meeting zanzibar", "zanzibar team", "the zanzibar contract meeting"):
        hits = keyword_hits(client, crowded, query=query, top_k=5)
        assert hits[0]["coord"] == "9,1", query
        assert len(hits) == 5  # the common words still fill the list
    hybrid = client.post(
        "/memories/search",
        headers=crowded,
        json={"query": "team zanzibar", "mode": "hybrid", "top_k": 5},
    ).json()["results"]
    assert hybrid[0]["signals"]["keyword"] == 1
    assert hybrid[0]["coord"] == "9,1"


def test_only_common_words_still_answer(client: TestClient, crowded: Headers) -> None:
    hits = keyword_hits(client, crowded, query="team meeting plan", top_k=10)
    assert len(hits) == 10
    assert all(h["signals"]["keyword"] for h in hits)


def test_filters_apply_before_the_candidate_limit(client: TestClient, crowded: Headers) -> None:
    # Three of 3,005 "team" rows are "special": every one is found, nothing else.
    hits = keyword_hits(client, crowded, query="team", top_k=10, filters={"kind": "special"})
    assert {h["coord"] for h in hits} == {"9,3", "9,4", "9,5"}
    hits = keyword_hits(client, crowded, query="team meeting", memory_type="semantic", top_k=10)
    assert [h["coord"] for h in hits] == ["9,2"]
    hits = keyword_hits(client, crowded, query="meeting plan", top_k=3, filters={"kind": "special"})
    assert [h["coord"] for h in hits] == ["9,3"]
