"""Search filters, time filters, link expansion and recency on a corpus where a filter applied
after the limit would be caught: 1,000 memories of one tenant (loaded once for the module, by
eight batches), whose matches rank far below ``top_k * 3`` (the candidates each signal gives)
when nothing is filtered.

Memory ``i`` has a client vector whose cosine with the query vector ``Q`` is exactly
``0.95 - i * 0.0004``, so the unfiltered vector order is ``0, 1, 2, ...``; its text repeats the
query word ``zebra`` three times, the needles' only once, so needles rank last by keyword too.
Memories 0-499 are "early", 500-999 "late": PostgreSQL gives a transaction's rows one
``created_at``, so that of the batch starting at 500 is the boundary between them.
Expected results are computed from the corpus' definition, not written down.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from somafractalmemory.core import fusion
from somafractalmemory.core.keys import KeyService
from somafractalmemory.core.portability.export import FORMAT
from somafractalmemory.core.portability.importer import import_lines
from somafractalmemory.stack import Stack
from testkit.stores import tenant_of

Headers = dict[str, str]

SIZE = 1000
EARLY = range(500)
NEEDLES = range(900, 910)  # kind "needle", late, ranked 901st to 910th unfiltered
OSTRICH = 909  # a needle whose text has neither "zebra" nor "needle"
DIMENSION = 384
BATCH = 125  # memories per POST /memories/batch


def _unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in values))
    return [x / norm for x in values]


Q = [1.0] + [0.0] * (DIMENSION - 1)


def _vector(similarity: float, rng: random.Random) -> list[float]:
    """A unit vector whose cosine with ``Q`` is ``similarity``."""
    other = _unit([0.0] + [rng.gauss(0, 1) for _ in range(DIMENSION - 1)])
    rest = math.sqrt(1 - similarity * similarity)
    # Five decimals keep a batch of 125 under the 1 MiB body limit (cosine off by < 1e-5).
    return [round(similarity * q + rest * o, 5) for q, o in zip(Q, other, strict=True)]


def similarity(i: int) -> float:
    return 0.95 - i * 0.0004


def kind(i: int) -> str:
    return "needle" if i in NEEDLES else "crowd"


def memory_type(i: int) -> str:
    return "semantic" if i % 100 == 99 else "episodic"


def text(i: int) -> str:
    if i == OSTRICH:
        return f"ostrich report {i}"
    if i in NEEDLES:
        return f"zebra needle report {i}"
    return f"zebra zebra zebra giraffe report {i}"


def coord(i: int) -> str:
    return f"{i},7"


@dataclass
class Corpus:
    auth: Headers
    boundary: datetime  # created_at of the late batch: created_after it is late only


@pytest.fixture(scope="module")
def corpus(client: TestClient, stack: Stack) -> Corpus:
    key, _info = KeyService(stack.postgres).create(f"corpus-{uuid.uuid4().hex[:12]}")
    auth = {"Authorization": f"Bearer {key}"}
    rng = random.Random(7)
    created: list[datetime] = []
    for start in range(0, SIZE, BATCH):
        part = range(start, start + BATCH)
        batch = [
            {
                "coord": coord(i),
                "payload": {"text": text(i), "kind": kind(i)},
                "memory_type": memory_type(i),
                "vector": _vector(similarity(i), rng),
            }
            for i in part
        ]
        answer = client.post("/memories/batch", headers=auth, json={"memories": batch})
        assert answer.status_code == 201, answer.text
        got = client.get(f"/memories/{coord(part[0])}", headers=auth).json()
        created.append(datetime.fromisoformat(got["created_at"]))
    assert created == sorted(created)
    return Corpus(auth, created[len(EARLY) // BATCH])


def search(client: TestClient, auth: Headers, **body: object) -> list[dict]:
    response = client.post("/memories/search", headers=auth, json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def coords(hits: list[dict]) -> list[str]:
    return [h["coord"] for h in hits]


def best(where: Callable[[int], bool], top_k: int) -> list[str]:
    """The expected vector-mode answer: the first ``top_k`` memories passing ``where``."""
    return [coord(i) for i in range(SIZE) if where(i)][:top_k]


def late(i: int) -> bool:
    return i not in EARLY


def test_matches_rank_below_the_candidates_unfiltered(client: TestClient, corpus: Corpus) -> None:
    """The premise of the tests below: no match is among the first 30 of either signal."""
    vector = coords(search(client, corpus.auth, vector=Q, mode="vector", top_k=30))
    assert vector == best(lambda i: True, 30)
    keyword = coords(search(client, corpus.auth, query="zebra", mode="keyword", top_k=100))
    assert len(keyword) == 100
    assert not {coord(i) for i in NEEDLES} & set(keyword)


def test_filters_apply_before_the_limit_in_every_mode(client: TestClient, corpus: Corpus) -> None:
    auth = corpus.auth
    needle = {"filters": {"kind": "needle"}, "top_k": 10}
    semantic = {"memory_type": "semantic", "top_k": 10}

    assert coords(search(client, auth, vector=Q, mode="vector", **needle)) == best(
        lambda i: i in NEEDLES, 10
    )
    assert coords(search(client, auth, vector=Q, mode="vector", **semantic)) == best(
        lambda i: memory_type(i) == "semantic", 10
    )
    found = search(client, auth, query="zebra", mode="keyword", **needle)
    assert set(coords(found)) == {coord(i) for i in NEEDLES if i != OSTRICH}
    found = search(client, auth, query="zebra", mode="keyword", **semantic)
    assert set(coords(found)) == set(best(lambda i: memory_type(i) == "semantic", 10))
    # Hybrid: both signals must find every needle (neither may filter after its limit) ...
    hits = search(client, auth, query="zebra", vector=Q, mode="hybrid", **needle)
    assert set(coords(hits)) == {coord(i) for i in NEEDLES}
    for hit in hits:
        assert hit["signals"]["vector"] is not None, hit
        assert (hit["signals"]["keyword"] is None) == (hit["coord"] == coord(OSTRICH)), hit
    # ... and with a word no needle holds, the vector signal alone brings them all.
    hits = search(client, auth, query="giraffe", vector=Q, mode="hybrid", **needle)
    assert coords(hits) == best(lambda i: i in NEEDLES, 10)
    assert {h["signals"]["keyword"] for h in hits} == {None}


def test_time_filters_apply_before_the_limit_and_keep_the_order(
    client: TestClient, corpus: Corpus
) -> None:
    auth, boundary = corpus.auth, corpus.boundary.isoformat()
    after = {"created_after": boundary, "top_k": 10}
    before = {"created_before": boundary, "top_k": 10}
    assert coords(search(client, auth, vector=Q, mode="vector", **after)) == best(late, 10)
    semantic_early = search(client, auth, vector=Q, mode="vector", memory_type="semantic", **before)
    assert coords(semantic_early) == best(
        lambda i: not late(i) and memory_type(i) == "semantic", 10
    )
    scores = [h["score"] for h in semantic_early]
    expected = [fusion.vector_score(similarity(i)) for i in (99, 199, 299, 399, 499)]
    assert scores == pytest.approx(expected, abs=1e-4)
    hits = search(client, auth, query="needle", mode="keyword", **after)
    assert set(coords(hits)) == {coord(i) for i in NEEDLES if i != OSTRICH}
    assert search(client, auth, query="needle", mode="keyword", **before) == []
    needles = {"filters": {"kind": "needle"}}
    hits = search(client, auth, query="zebra", vector=Q, mode="hybrid", **after, **needles)
    assert set(coords(hits)) == {coord(i) for i in NEEDLES}
    assert search(client, auth, query="zebra", vector=Q, mode="hybrid", **before, **needles) == []
    hits = search(client, auth, query="zebra", vector=Q, mode="hybrid", **before)
    assert set(coords(hits)) <= {coord(i) for i in EARLY}
    assert len(hits) == 10


def test_expand_links_adds_only_memories_in_scope(client: TestClient, corpus: Corpus) -> None:
    auth = corpus.auth
    for source, target in ((900, OSTRICH), (901, 0), (OSTRICH, 1)):
        link = {"from_coord": coord(source), "to_coord": coord(target), "strength": 1.0}
        assert client.post("/graph/link", headers=auth, json=link).status_code == 201
    found = {coord(i) for i in NEEDLES if i != OSTRICH}  # the needles "needle" finds

    # Unfiltered, the links reach the ostrich needle (depth 1) and two early crowd memories.
    hits = search(client, auth, query="needle", mode="keyword", top_k=20, expand_links=2)
    linked = {h["coord"]: h["signals"]["link"] for h in hits if h["signals"]["link"]}
    assert linked == {coord(OSTRICH): 1, coord(0): 1, coord(1): 2}
    assert set(coords(hits)) == found | set(linked)

    # The same walk under a payload filter and under a time filter: only what is in scope.
    for scope in ({"filters": {"kind": "needle"}}, {"created_after": corpus.boundary.isoformat()}):
        hits = search(
            client, auth, query="needle", mode="keyword", top_k=20, expand_links=2, **scope
        )
        assert set(coords(hits)) == found | {coord(OSTRICH)}, scope
        assert coords(hits)[-1] == coord(OSTRICH)
        parent = next(h for h in hits if h["coord"] == coord(900))
        assert hits[-1]["score"] == pytest.approx(parent["score"] * 1.0 / 2), scope
        assert {k: hits[-1]["signals"][k] for k in ("vector", "keyword", "link")} == {
            "vector": None,
            "keyword": None,
            "link": 1,
        }
    # Scope by memory type: the crowd memories are episodic, the semantic filter drops them
    # and the needles; nothing is left to expand from.
    assert (
        search(client, auth, query="needle", mode="keyword", memory_type="semantic", expand_links=2)
        == []
    )


def _export_line(i: int, sim: float, created_at: datetime, rng: random.Random) -> str:
    return json.dumps(
        {
            "kind": "memory",
            "coord": f"{i},8",
            "payload": {"text": f"memory {i}", "kind": "recent" if i else "old"},
            "memory_type": "episodic",
            "importance": 0.5,
            "created_at": created_at.isoformat(),
            "vector": _vector(sim, rng),
        }
    )


def test_recency_half_life_reorders_by_age_within_scope(
    client: TestClient, make_key: Callable[[], Headers], stack: Stack
) -> None:
    """Three memories imported with their own ``created_at`` (the export format's): A is the
    closest but ten days old, B an hour old, C new; with a half-life of a day the score is
    ``vector_score(cosine) * (0.5 + 0.5 * 2^(-age / 24 h))``, so B and C overtake A."""
    auth = make_key()
    tenant = tenant_of(stack, auth)
    now = datetime.now(UTC)
    rng = random.Random(8)
    ages = {0: timedelta(days=10), 1: timedelta(hours=1), 2: timedelta(0)}
    sims = {0: 0.9, 1: 0.8, 2: 0.7}
    header = {
        "format": FORMAT,
        "version": 1,
        "embedding_model": stack.embedder.model_name,
        "dimension": stack.embedder.dimension,
    }
    lines = [json.dumps(header)] + [_export_line(i, sims[i], now - ages[i], rng) for i in ages]
    report = import_lines(stack.memories, tenant, lines)
    assert report.error_count == 0

    plain = search(client, auth, vector=Q, mode="vector", top_k=3)
    assert coords(plain) == ["0,8", "1,8", "2,8"]
    recent = search(client, auth, vector=Q, mode="vector", top_k=3, recency_half_life_hours=24)
    assert coords(recent) == ["1,8", "2,8", "0,8"]
    for hit, i in zip(recent, (1, 2, 0), strict=True):
        factor = 0.5 + 0.5 * 2 ** (-ages[i].total_seconds() / 3600 / 24)
        score = fusion.vector_score(sims[i])  # the calibrated cosine
        assert hit["score"] == pytest.approx(score * factor, abs=2e-3), i
    # In scope only: a filter and a time filter still hold under the boost.
    scoped = search(
        client,
        auth,
        vector=Q,
        mode="vector",
        recency_half_life_hours=24,
        filters={"kind": "recent"},
        created_after=(now - timedelta(hours=2)).isoformat(),
    )
    assert coords(scoped) == ["1,8", "2,8"]
    old = search(
        client,
        auth,
        vector=Q,
        mode="vector",
        recency_half_life_hours=24,
        created_before=(now - timedelta(days=1)).isoformat(),
    )
    assert coords(old) == ["0,8"]
