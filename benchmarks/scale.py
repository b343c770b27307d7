"""Search latency as a tenant grows: ``.venv/bin/python benchmarks/scale.py [--sizes ...]``.

One tenant grows to each size (default 10,000, 100,000 and 1,000,000 memories). Loading a
million memories through ``POST /memories/batch`` would take hours on two cores, so the
memories are bulk-loaded straight into the raw stores (benchmarks/bulk.py: the ``memories``
rows with their PostgreSQL-computed tsvector, and the Milvus entities with the same ids),
with corpus texts and generated vectors (random unit vectors of the model's dimension). At
each size Milvus is flushed and the benchmark waits until its index covers every row, the
server is (re)started on the loaded stores, and searches are timed over HTTP in each mode:
vector (a generated query vector: no embedding), keyword (the query text) and hybrid (the
query text plus a generated vector, so again no embedding). Query texts alternate a stored
memory's text and its paraphrase question, each used once. After each query's HTTP searches,
the same query's raw calls are timed on the benchmark's own clients (the query embedding, the
Milvus search, the fetch of its hits' rows, the plain full-text query), so that each size's
HTTP figures stand beside the raw stores' own at that size.

The stack is ``extra.isolated_config()`` (``SOMA_BENCH_STACK`` and friends rename it); its
database and collection are dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import bulk
import numpy as np
import psycopg
from common import DIMENSION, Latency, LeanClient
from corpus import make_memories
from extra import (
    command_line,
    isolated_config,
    preamble,
    put_section,
    save_json,
    table,
    uptime,
)
from harness import Server, flush_and_index, prepare_stores, running_server
from pymilvus import MilvusClient
from searches import FETCH_SQL, KEYWORD_SQL, LIMIT, TOP_K, raw_milvus_search

from somafractalmemory.core.embedding import Embedder, create_embedder
from somafractalmemory.settings import EmbeddingSettings

SEED = 99
QUERIES = 200
WARMUP = 10
TEXTS = 200_000
# "vector, embedded" is vector mode sent the query text: the server embeds it (the others
# carry a generated vector, or need none), so it is the whole of a user's vector search.
EMBEDDED = "vector, embedded"
MODES = ("vector", "keyword", "hybrid", EMBEDDED)
TARGET_RATIO = 2.0
RAW_CALLS = ("embed", "milvus", "milvus, embedded", "fetch", "full-text")
RAW_KEYWORD_QUERIES = 50
TARGET_100K_MS = 15.0


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    result: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return result


def drop_stack(cfg: Any) -> None:
    """Drop the benchmark's collection and database (disk and RAM are shared)."""
    milvus = MilvusClient(uri=cfg.milvus_uri)
    for collection in (cfg.collection, f"{cfg.collection}_items", cfg.scratch_collection):
        if milvus.has_collection(collection):
            milvus.drop_collection(collection)
    milvus.close()
    name = cfg.postgres_dsn.rsplit("/", 1)[1]
    with psycopg.connect(cfg.admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mode(mode: str) -> str:
    """The API's ``mode`` for a timed mode."""
    return "vector" if mode == EMBEDDED else mode


@dataclass
class RawCalls:
    """The calls each timed search makes, on the benchmark's own clients, asked as the
    service asks them (benchmarks/searches.py): the query embedding, the tenant-filtered
    Milvus search (with the generated vector, and with the embedded one), the PostgreSQL
    fetch of its hits' rows by id, and the plain full-text query (every match ranked)."""

    cfg: Any
    tenant_id: int
    embedder: Embedder
    milvus: MilvusClient
    conn: psycopg.Connection[Any]

    def vector_search(self, vector: list[float]) -> tuple[list[int], float]:
        started = time.perf_counter()
        ids = raw_milvus_search(self.milvus, self.cfg.collection, self.tenant_id, vector)
        return ids, time.perf_counter() - started

    def fetch(self, ids: list[int]) -> float:
        started = time.perf_counter()
        rows = self.conn.execute(FETCH_SQL, (self.tenant_id, ids)).fetchall()
        if len(rows) != len(ids):
            raise RuntimeError(f"fetched {len(rows)} rows for {len(ids)} Milvus hits")
        return time.perf_counter() - started

    def embed(self, text: str) -> tuple[list[float], float]:
        started = time.perf_counter()
        vector = self.embedder.embed_one(text)
        return vector, time.perf_counter() - started

    def keyword(self, text: str) -> float:
        started = time.perf_counter()
        self.conn.execute(KEYWORD_SQL, {"q": text, "t": self.tenant_id, "n": LIMIT}).fetchall()
        return time.perf_counter() - started


def time_searches(
    cfg: Any, key: str, rng: np.random.Generator, queries: list[str], raw: RawCalls
) -> tuple[dict[str, Latency], dict[str, Latency]]:
    """Each mode's latency over ``queries`` (after a warm-up), one client, sequential, and
    after each query's HTTP searches the same query's raw calls; then the plain full-text
    query of the first :data:`RAW_KEYWORD_QUERIES` queries (only those: at a million rows it
    ranks hundreds of thousands of matches, over a second each)."""
    qvectors = unit_vectors(rng, len(queries))
    timings: dict[str, list[float]] = {m: [] for m in MODES}
    raw_timings: dict[str, list[float]] = {c: [] for c in RAW_CALLS}
    lean = LeanClient(cfg.base_url, key)
    try:
        for i in range(WARMUP):
            for mode in MODES:
                body = _body(f"warm-up {i} {queries[i]}", mode, qvectors[i])
                _post(lean, body)
            raw.vector_search(qvectors[i].tolist())
            raw.embed(f"warm-up {i} {queries[i]}")
        for i in range(WARMUP, len(queries)):
            for mode in MODES:
                body = _body(queries[i], mode, qvectors[i])
                started = time.perf_counter()
                _post(lean, body)
                timings[mode].append(time.perf_counter() - started)
            ids, seconds = raw.vector_search(qvectors[i].tolist())
            raw_timings["milvus"].append(seconds)
            raw_timings["fetch"].append(raw.fetch(ids))
            vector, seconds = raw.embed(queries[i])
            raw_timings["embed"].append(seconds)
            ids, seconds = raw.vector_search(vector)
            raw_timings["milvus, embedded"].append(seconds)
    finally:
        lean.close()
    # After the HTTP searches, not between them: at a million rows one plain full-text query
    # takes seconds, longer than the server keeps an idle connection open.
    for i in range(WARMUP, min(len(queries), WARMUP + RAW_KEYWORD_QUERIES)):
        raw_timings["full-text"].append(raw.keyword(queries[i]))
    return (
        {m: Latency.of(t) for m, t in timings.items()},
        {c: Latency.of(t) for c, t in raw_timings.items()},
    )


def _body(text: str, mode: str, vector: np.ndarray) -> dict[str, Any]:
    body: dict[str, Any] = {"query": text, "mode": _mode(mode), "top_k": TOP_K}
    if mode in ("vector", "hybrid"):
        body["vector"] = vector.tolist()
    return body


def _post(lean: LeanClient, body: dict[str, Any]) -> None:
    status, _timing, data = lean.post("/memories/search", body)
    if status != 200:
        raise RuntimeError(f"search: {status} {data[:300]!r}")


def raw_sum(raw: dict[str, Latency], mode: str) -> float:
    """The sum of the p50s of the raw calls ``mode`` makes (hybrid runs its two signals side
    by side in the server; the sum is what running them one after the other costs)."""
    calls = {
        "vector": ("milvus", "fetch"),
        "keyword": ("full-text",),
        "hybrid": ("milvus", "full-text", "fetch"),
        EMBEDDED: ("embed", "milvus, embedded", "fetch"),
    }[mode]
    return sum(raw[c].p50 for c in calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated sizes")
    parser.add_argument(
        "--index-wait", type=float, default=7200.0, help="seconds to wait for Milvus's index"
    )
    parser.add_argument("--keep", action="store_true", help="keep the loaded stores")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    rng = np.random.default_rng(SEED)
    memories = make_memories(min(sizes[-1], TEXTS), SEED)
    cfg = isolated_config()
    prepare_stores(cfg)
    server = Server(cfg)
    server._cli("ensure-collection")
    key = server.create_key("scale")
    with psycopg.connect(cfg.postgres_dsn) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = 'scale'").fetchone()
    assert row is not None
    tenant_id = int(row[0])
    rows: list[dict[str, Any]] = []
    stored = 0
    text = ""
    raw = RawCalls(
        cfg,
        tenant_id,
        create_embedder(EmbeddingSettings()),
        # An alias of its own: pymilvus shares one connection per URI, and the bulk loader's
        # client closes that one when it is done.
        MilvusClient(uri=cfg.milvus_uri, alias="sfm-scale-raw"),
        psycopg.connect(cfg.postgres_dsn, autocommit=True),
    )
    try:
        for size in sizes:
            started = time.perf_counter()
            bulk.load(
                cfg.postgres_dsn,
                cfg.milvus_uri,
                cfg.collection,
                tenant_id,
                stored,
                size,
                lambda i: memories[i % len(memories)].text,
                lambda n: unit_vectors(rng, n),
            )
            bulk.analyze(cfg.postgres_dsn)
            stored = size
            load_seconds = time.perf_counter() - started
            state, index_seconds = flush_and_index(cfg, args.index_wait)
            index = str(state)
            picked = rng.choice(min(size, len(memories)), QUERIES + WARMUP, replace=False)
            queries = [
                memories[int(p)].text if n % 2 == 0 else memories[int(p)].paraphrase
                for n, p in enumerate(picked)
            ]
            with running_server(cfg) as srv:
                latency, raw_latency = time_searches(cfg, key, rng, queries, raw)
                rss = srv.rss_mib()
            result = {
                "size": size,
                "load_seconds": load_seconds,
                "index_seconds": index_seconds,
                "index": index,
                "server_rss_mib": rss,
                **latency,
                "raw": raw_latency,
            }
            print(
                f"{size:,}: "
                + ", ".join(f"{m} p50 {latency[m].p50:.1f} ms" for m in MODES)
                + f" (load {load_seconds:.0f} s, index wait {index_seconds:.0f} s: {index})",
                flush=True,
            )
            rows.append(result)
            # Written after every size, so a run stopped before the largest keeps what ran.
            save_json(
                "scale",
                [
                    {
                        **r,
                        **{m: r[m].__dict__ for m in MODES},
                        "raw": {c: v.__dict__ for c, v in r["raw"].items()},
                    }
                    for r in rows
                ],
            )
            text = render(rows, sizes, preamble(command, load_start, time.perf_counter() - began))
            put_section("scale", text)
    finally:
        raw.milvus.close()
        raw.conn.close()
        if not args.keep:
            drop_stack(cfg)
    print(text)
    return 0


def render(rows: list[dict[str, Any]], sizes: list[int], pre: list[str]) -> str:
    base = rows[0]
    last = rows[-1]
    out = [
        "## Scale: search latency as the tenant grows",
        "",
        *pre,
        "",
        "One tenant grows to each size. The memories are **bulk-loaded into the raw stores** "
        "(benchmarks/bulk.py: PostgreSQL rows with their generated tsvector, Milvus entities "
        "with the same ids), not stored through the API, which would take hours at a million "
        "on this machine; texts come from benchmarks/corpus.py (200,000 distinct texts, "
        "repeated beyond that), vectors are random unit vectors. At each size Milvus is "
        "flushed and its index waited for (every row indexed, none pending), PostgreSQL is "
        "`VACUUM ANALYZE`d, and the server is restarted; then "
        f"{QUERIES} queries per mode over HTTP after {WARMUP} warm-ups, one client, "
        "sequential. Query texts alternate a stored text and a paraphrase question. Vector and "
        "hybrid carry a generated query vector (no embedding: the store parts of a search "
        f"only); keyword sends the text alone; *{EMBEDDED}* is vector mode sent the text alone, "
        "so the server embeds it (each text asked once: no query-vector cache hit). The HTTP "
        "searches go through a keep-alive connection of the standard library "
        "(`common.LeanClient`), as in the search section.",
        "",
        *table(
            [
                "memories",
                "load s",
                "index wait s",
                *(f"{m} p50 / p95 ms" for m in MODES),
                "Milvus index before timing",
            ],
            [
                [
                    f"{r['size']:,}",
                    f"{r['load_seconds']:.0f}",
                    f"{r['index_seconds']:.0f}",
                    *(f"{r[m].p50:.1f} / {r[m].p95:.1f}" for m in MODES),
                    r["index"],
                ]
                for r in rows
            ],
        ),
        "",
    ]
    out += [
        "After each query's HTTP searches, the same query's raw calls, on the benchmark's own "
        "clients and asked as the service asks them: the query embedding; the tenant-filtered "
        f"Milvus search (limit {LIMIT}, the service's search parameters, Session consistency) "
        "with the generated vector and with the embedded one; the PostgreSQL fetch of its "
        "hits' rows by id; and the plain full-text query (the OR of the query's words, every "
        "match ranked by `ts_rank_cd`: what a search without the service's candidate bound "
        f"would ask; timed for the first {RAW_KEYWORD_QUERIES} queries only, after all the "
        "HTTP searches of the size, since at a million rows each takes seconds). p50 / p95 ms:",
        "",
        *table(
            ["memories", *RAW_CALLS],
            [
                [
                    f"{r['size']:,}",
                    *(f"{r['raw'][c].p50:.1f} / {r['raw'][c].p95:.1f}" for c in RAW_CALLS),
                ]
                for r in rows
            ],
        ),
        "",
        "HTTP p50 / the sum of the raw p50s of the calls that mode makes (vector: Milvus + "
        "fetch; keyword: the plain full-text query; hybrid: Milvus + full-text + fetch; "
        f"{EMBEDDED}: embedding + Milvus + fetch):",
        "",
        *table(
            ["memories", *MODES],
            [
                [
                    f"{r['size']:,}",
                    *(
                        f"{r[m].p50 / raw_sum(r['raw'], m):.2f} "
                        f"({r[m].p50:.1f} / {raw_sum(r['raw'], m):.1f})"
                        for m in MODES
                    ),
                ]
                for r in rows
            ],
        ),
        "",
    ]
    if len(rows) > 1:
        full_text = [r["raw"]["full-text"].p50 for r in (base, last)]
        out += [
            f"p50 at {last['size']:,} / p50 at {base['size']:,} (target ≤ {TARGET_RATIO:g}x "
            "at 1,000,000 / 10,000): "
            + ", ".join(
                f"{m} {last[m].p50 / base[m].p50:.2f}x"
                + (" (met)" if last[m].p50 / base[m].p50 <= TARGET_RATIO else " (**not met**)")
                for m in MODES
            )
            + ".",
            "",
            f"The plain full-text query, for comparison: {full_text[1] / full_text[0]:.1f}x "
            f"({full_text[0]:.1f} → {full_text[1]:.1f} ms).",
            "",
        ]
    at_100k = [r for r in rows if r["size"] == 100_000]
    if at_100k:
        p50 = at_100k[0][EMBEDDED].p50
        floor = raw_sum(at_100k[0]["raw"], EMBEDDED)
        out += [
            f"Vector mode with the query embedded at 100,000: p50 {p50:.1f} ms (target ≤ "
            f"{TARGET_100K_MS:g} ms: {'met' if p50 <= TARGET_100K_MS else '**not met**'}); "
            f"its raw calls alone (embedding + Milvus + fetch) take {floor:.1f} ms.",
            "",
        ]
    missing = [f"{s:,}" for s in sizes if s not in {r["size"] for r in rows}]
    if missing:
        out += [f"Not reached in this run (stopped or still loading): {', '.join(missing)}.", ""]
    if 1_000_000 not in {r["size"] for r in rows}:
        out += ["The target p50(1M) ≤ 2x p50(10k) is unmeasured by this run.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
