"""Search: ``POST /memories/search`` latency, and the raw calls it makes, timed alone.

Queries go in pairs, each text never asked before (the service caches query vectors in Redis
by text): the first over HTTP in vector mode, the second in the default mode (hybrid) and
then once more (its vector now cached); then both through the raw calls. Pair after pair, so
that all of them meet the same machine conditions (the machine is shared) and the same warm
or cold caches between calls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field

import httpx
import psycopg
from common import BenchConfig, LeanClient, server_timing
from corpus import Query
from harness import index_state
from pymilvus import MilvusClient
from writes import ensure_scratch

from somafractalmemory.core.embedding import Embedder
from somafractalmemory.core.search import candidates_for
from somafractalmemory.stores.milvus import METRIC, search_ef

TOP_K = 10
MODES = ("vector", "hybrid")
# The timed HTTP searches: (name, mode, which query of the pair). "vector, httpx" asks the
# first query again with " ?" appended (a text of its own: no query-vector cache hit)
# through httpx instead of the lean client, to show what the client library costs.
RUNS = (
    ("vector", "vector", 0),
    ("hybrid", "hybrid", 1),
    ("hybrid, repeated", "hybrid", 1),
    ("vector, httpx", "vector", 0),
)
HTTPX_RUN = "vector, httpx"
# What the service asks each signal for, and its Milvus search parameters.
LIMIT = candidates_for(TOP_K)
SEARCH_PARAMS = {"metric_type": METRIC, "params": {"ef": search_ef(LIMIT)}}
FETCH_SQL = (
    "SELECT id, key, payload, memory_type, importance, text, created_at, updated_at "
    "FROM records WHERE tenant_id = %s AND id = ANY(%s) AND namespace_path = ''"
)
AUTH_SQL = (
    "SELECT tenants.id, tenants.name FROM tenants JOIN api_keys "
    "ON api_keys.tenant_id = tenants.id WHERE api_keys.key_hash = %s "
    "AND api_keys.revoked_at IS NULL"
)
_TSQUERY = "to_tsquery('english', replace(plainto_tsquery('english', %(q)s)::text, '&', '|'))"
KEYWORD_SQL = (
    f"SELECT id, ts_rank_cd(text_tsv, {_TSQUERY}) AS rank FROM records "
    f"WHERE tenant_id = %(t)s AND namespace_path = '' AND text_tsv @@ {_TSQUERY} "
    "ORDER BY rank DESC, id LIMIT %(n)s"
)
RAW_CALLS = ("auth", "embed", "milvus", "fetch", "keyword")


@dataclass(frozen=True)
class Recall:
    """How well the HTTP searches of one mode found the memory each query came from."""

    exact_first: int
    exact_total: int
    paraphrase_first: int
    paraphrase_top10: int
    paraphrase_total: int


@dataclass
class SearchTimings:
    """Durations in seconds, one per query: the HTTP searches by mode, the server's own
    stage times by mode (``Server-Timing``), the rest of each HTTP search (key lookup,
    framework, transport), and each raw call."""

    http: dict[str, list[float]] = field(default_factory=lambda: {r[0]: [] for r in RUNS})
    stages: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {r[0]: {} for r in RUNS}
    )
    outside: dict[str, list[float]] = field(default_factory=lambda: {r[0]: [] for r in RUNS})
    raw: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in RAW_CALLS})


def raw_milvus_search(
    milvus: MilvusClient, collection: str, tenant_id: int, vector: list[float]
) -> list[int]:
    """The tenant-filtered Milvus search a search makes, asked as the service asks it; the
    ids of its hits, best first."""
    hits = milvus.search(
        collection,
        data=[vector],
        filter=f"tenant_id == {tenant_id}",
        limit=LIMIT,
        anns_field="vector",
        search_params=SEARCH_PARAMS,
        consistency_level="Session",
    )
    return [int(hit["id"]) for hit in hits[0]]


class RawSearch:
    """The calls a search makes, on clients of their own: the API-key lookup, the query
    embedding, the tenant-filtered Milvus search and the PostgreSQL fetch of its hits' rows
    by id (vector mode), and the PostgreSQL full-text query (hybrid adds it), each asked as
    the service asks it."""

    def __init__(self, cfg: BenchConfig, embedder: Embedder, tenant_id: int, api_key: str) -> None:
        self.cfg = cfg
        self.embedder = embedder
        self.tenant_id = tenant_id
        self.key_hash = hashlib.sha256(api_key.encode()).digest()
        self.milvus = MilvusClient(uri=cfg.milvus_uri)
        self.conn = psycopg.connect(cfg.postgres_dsn, autocommit=True)

    def close(self) -> None:
        self.milvus.close()
        self.conn.close()

    def run(self, text: str) -> dict[str, float]:
        """One query; the seconds each call took."""
        t0 = time.perf_counter()
        self.conn.execute(AUTH_SQL, (self.key_hash,)).fetchall()
        t1 = time.perf_counter()
        vector = self.embedder.embed_one(text)
        t2 = time.perf_counter()
        ids = raw_milvus_search(self.milvus, self.cfg.collection, self.tenant_id, vector)
        t3 = time.perf_counter()
        rows = self.conn.execute(FETCH_SQL, (self.tenant_id, ids)).fetchall()
        t4 = time.perf_counter()
        self.conn.execute(KEYWORD_SQL, {"q": text, "t": self.tenant_id, "n": LIMIT}).fetchall()
        t5 = time.perf_counter()
        if len(rows) != len(ids):
            raise RuntimeError(f"fetched {len(rows)} rows for {len(ids)} Milvus hits")
        return dict(zip(RAW_CALLS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True))


def search_body(text: str, mode: str) -> dict[str, object]:
    """The search request (``hybrid`` sends no mode: the service's default)."""
    body: dict[str, object] = {"query": text, "top_k": TOP_K}
    if mode != "hybrid":
        body["mode"] = mode
    return body


def http_search(client: httpx.Client, text: str, mode: str) -> tuple[list[str], dict[str, float]]:
    """One search over HTTP through httpx; the coordinates found, best first, and the
    server's stage times."""
    response = client.post("/memories/search", json=search_body(text, mode))
    if response.status_code != 200:
        raise RuntimeError(f"search: {response.status_code} {response.text[:500]}")
    coords = [r["coord"] for r in response.json()["results"]]
    return coords, server_timing(response.headers.get("server-timing", ""))


def lean_search(client: LeanClient, text: str, mode: str) -> tuple[list[str], dict[str, float]]:
    """The same search through the lean client (see :class:`common.LeanClient`)."""
    status, timing, data = client.post("/memories/search", search_body(text, mode))
    if status != 200:
        raise RuntimeError(f"search: {status} {data[:500]!r}")
    coords = [r["coord"] for r in json.loads(data)["results"]]
    return coords, server_timing(timing)


def _recall(queries: list[Query], ranked: list[list[str]]) -> Recall:
    pairs = list(zip(queries, ranked, strict=True))
    exact = [(q, r) for q, r in pairs if q.exact]
    para = [(q, r) for q, r in pairs if not q.exact]
    return Recall(
        exact_first=sum(1 for q, r in exact if r[:1] == [q.target.coord]),
        exact_total=len(exact),
        paraphrase_first=sum(1 for q, r in para if r[:1] == [q.target.coord]),
        paraphrase_top10=sum(1 for q, r in para if q.target.coord in r),
        paraphrase_total=len(para),
    )


def measure(
    client: httpx.Client, lean: LeanClient, raw: RawSearch, queries: list[Query]
) -> tuple[SearchTimings, dict[str, Recall]]:
    """Each pair of queries over HTTP (see the module docstring), then through the raw
    calls; the timings, and the recall of the vector and hybrid searches."""
    timings = SearchTimings()
    ranked: dict[str, list[list[str]]] = {r[0]: [] for r in RUNS}
    # Exact texts and paraphrases alternate in ``queries``: swap every other pair so that
    # each mode gets half of each.
    pairs = [
        (a, b) if k % 2 == 0 else (b, a)
        for k, (a, b) in enumerate(zip(queries[::2], queries[1::2], strict=True))
    ]
    for pair in pairs:
        for run, mode, which in RUNS:
            started = time.perf_counter()
            if run == HTTPX_RUN:
                coords, stages = http_search(client, pair[which].text + " ?", mode)
            else:
                coords, stages = lean_search(lean, pair[which].text, mode)
            elapsed = time.perf_counter() - started
            timings.http[run].append(elapsed)
            timings.outside[run].append(elapsed - sum(stages.values()))
            ranked[run].append(coords)
            for name, seconds in stages.items():
                timings.stages[run].setdefault(name, []).append(seconds)
        for query in pair:
            for name, seconds in raw.run(query.text).items():
                timings.raw[name].append(seconds)
    recall = {
        run: _recall([pair[which] for pair in pairs], ranked[run]) for run, _mode, which in RUNS[:2]
    }
    return timings, recall


@dataclass(frozen=True)
class TwinSearch:
    """Raw Milvus searches of the indexed collection and of its growing twin, query by query."""

    indexed: list[float]
    growing: list[float]
    overlap: float  # mean share of the indexed top TOP_K also in the twin's top TOP_K
    twin: str  # the twin's index state


def growing_twin(
    cfg: BenchConfig, embedder: Embedder, tenant_id: int, texts: list[str]
) -> TwinSearch:
    """Copy every entity of the (flushed, indexed) collection into the scratch collection,
    where they stay in growing segments, and time the tenant's raw Milvus search on both,
    alternately for each text, with the same query vector: the cost and the top-10 agreement
    of the interim index against HNSW, under the same machine conditions."""
    ensure_scratch(cfg)
    milvus = MilvusClient(uri=cfg.milvus_uri, alias="sfm-bench-twin")
    try:
        entities = milvus.query(
            cfg.collection,
            filter="id >= 0",
            output_fields=["id", "tenant_id", "memory_type", "created_at", "attrs", "vector"],
            limit=16_384,
            consistency_level="Strong",
        )
        for start in range(0, len(entities), 1000):
            milvus.insert(cfg.scratch_collection, entities[start : start + 1000])
        state = str(index_state(dataclasses.replace(cfg, collection=cfg.scratch_collection)))
        indexed: list[float] = []
        growing: list[float] = []
        overlap: list[float] = []
        for text in texts:
            vector = embedder.embed_one(text)
            t0 = time.perf_counter()
            a = raw_milvus_search(milvus, cfg.collection, tenant_id, vector)
            t1 = time.perf_counter()
            b = raw_milvus_search(milvus, cfg.scratch_collection, tenant_id, vector)
            t2 = time.perf_counter()
            indexed.append(t1 - t0)
            growing.append(t2 - t1)
            overlap.append(len(set(a[:TOP_K]) & set(b[:TOP_K])) / max(1, len(a[:TOP_K])))
    finally:
        milvus.drop_collection(cfg.scratch_collection)
        milvus.close()
    return TwinSearch(indexed, growing, sum(overlap) / len(overlap), state)
