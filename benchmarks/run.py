"""Benchmark SomaFractalMemory end to end: ``.venv/bin/python benchmarks/run.py [--quick]``.

Starts the real server on an isolated stack, stores memories through the API, searches them,
times the raw calls beside it, and writes benchmarks/RESULTS.md (also printed). The searches run
twice: with the new rows in Milvus's growing segments, as written, and after a flush and the
wait for HNSW to cover every row; then the raw Milvus search alternates between the indexed
collection and a growing copy of it (:func:`searches.growing_twin`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import redis
from common import (
    EMBEDDING_MODEL,
    BenchConfig,
    Latency,
    LeanClient,
    config_from_env,
    machine,
    revision,
)
from corpus import Query, make_memories, make_queries
from extra import command_line, save_json
from harness import flush_and_index, index_state, prepare_stores, running_server
from pymilvus import MilvusClient
from report import PHASES, Results, SearchPhase, render, search_figures
from searches import MODES, RawSearch, growing_twin, http_search, measure
from writes import Ceilings, batch_bodies, post_batch, write_path

from somafractalmemory.core.embedding import Embedder, create_embedder
from somafractalmemory.settings import EmbeddingSettings

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = re.compile(r"<!-- section:([\w-]+) -->\n.*?\n<!-- /section:\1 -->", re.DOTALL)
SEED = 1729
QUERIES = 300
WARMUP_QUERIES = 20
INDEX_TIMEOUT = 600.0


def store_versions(cfg: BenchConfig) -> dict[str, str]:
    """The Milvus and PostgreSQL server versions."""
    client = MilvusClient(uri=cfg.milvus_uri)
    milvus = str(client.get_server_version())
    client.close()
    with psycopg.connect(cfg.postgres_dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {"Milvus server": milvus, "PostgreSQL": str(row[0]) if row else "unknown"}


def load_average() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.2f}"


def tenant_id(cfg: BenchConfig, name: str) -> int:
    with psycopg.connect(cfg.postgres_dsn) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise RuntimeError(f"tenant {name!r} not found")
    return int(row[0])


def search_phase(
    cfg: BenchConfig,
    embedder: Embedder,
    tenant: int,
    key: str,
    client: httpx.Client,
    phase: str,
    warm_queries: list[Query],
    queries: list[Query],
) -> SearchPhase:
    """The timed searches in one state of the Milvus index. ``growing``: as the writes left
    it (recent rows in growing segments, searched through Milvus's interim index);
    ``indexed``: after a flush and the wait for HNSW to cover every row, with the Redis
    query-vector cache emptied so that the same texts are embedded again."""
    waited = 0.0
    if phase == "indexed":
        _state, waited = flush_and_index(cfg, INDEX_TIMEOUT)
        cache = redis.Redis.from_url(cfg.redis_url)
        cache.flushdb()
        cache.close()
    before = index_state(cfg)
    print(f"search, {phase}: {before}", flush=True)
    started = time.perf_counter()
    raw = RawSearch(cfg, embedder, tenant, key)
    lean = LeanClient(cfg.base_url, key)
    try:
        measure(client, lean, raw, warm_queries)
        timings, recall = measure(client, lean, raw, queries)
    finally:
        lean.close()
        raw.close()
    print(f"search, {phase}: {time.perf_counter() - started:.0f} s", flush=True)
    return SearchPhase(
        index_before=str(before),
        index_after=str(index_state(cfg)),
        index_wait=waited,
        http={m: Latency.of(v) for m, v in timings.http.items()},
        stages={m: {k: Latency.of(v) for k, v in st.items()} for m, st in timings.stages.items()},
        outside={m: Latency.of(v) for m, v in timings.outside.items()},
        raw={k: Latency.of(v) for k, v in timings.raw.items()},
        recall=recall,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 memories instead of 10,000")
    args = parser.parse_args(argv)
    count = 2_000 if args.quick else 10_000
    began = time.perf_counter()
    cfg = config_from_env()
    command = command_line()

    load_start = load_average()
    if float(load_start) > len(os.sched_getaffinity(0)):
        print(
            f"warning: load average {load_start}; other work on this machine shows in the figures"
        )
    code = revision()
    memories = make_memories(count, SEED)
    warm_memories = make_memories(200, SEED + 1, coord_base=1_000_000)
    all_queries = make_queries(memories, 2 * QUERIES + WARMUP_QUERIES, SEED + 2)
    if len(all_queries) < 2 * QUERIES + WARMUP_QUERIES:
        raise RuntimeError(f"only {len(all_queries)} distinct query texts")
    warm_queries, queries = all_queries[:WARMUP_QUERIES], all_queries[WARMUP_QUERIES:]

    print(f"preparing the stack ({cfg.postgres_dsn}, collection {cfg.collection}, {cfg.redis_url})")
    prepare_stores(cfg)
    info = {**machine(), **store_versions(cfg)}
    embedder = create_embedder(EMBEDDING_MODEL)
    info["embedding backend"] = embedder.backend  # the server's too: both read the environment
    # The server's environment has no torch: the threads are onnxruntime's (0: one per core).
    threads = EmbeddingSettings().embedding_threads
    info["embedding threads"] = str(threads) if threads else f"{os.cpu_count()} (one per core)"

    with running_server(cfg) as server:
        key = server.create_key("bench")
        warm_key = server.create_key("bench-warmup")
        bench_tenant = tenant_id(cfg, "bench")
        print(f"server up on {cfg.base_url}; tenant 'bench' has id {bench_tenant}")
        with (
            httpx.Client(
                base_url=cfg.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300
            ) as client,
            httpx.Client(
                base_url=cfg.base_url, headers={"Authorization": f"Bearer {warm_key}"}, timeout=300
            ) as warm_client,
        ):
            ceilings = Ceilings(cfg, embedder, bench_tenant)
            try:
                for body in batch_bodies(warm_memories):
                    post_batch(warm_client, body)
                ceilings.run(warm_memories)
                ceilings.truncate()
                print(f"write: {count:,} memories, batch by batch, through the service and raw")
                write = write_path(client, ceilings, memories)
            finally:
                ceilings.close()
            rss = server.rss_mib()
            for query in warm_queries:
                for mode in MODES:
                    http_search(warm_client, query.text, mode)

            print(f"search: {QUERIES} queries a mode over HTTP, and each through the raw calls")
            phases = {
                phase: search_phase(
                    cfg, embedder, bench_tenant, key, client, phase, warm_queries, queries
                )
                for phase in PHASES
            }
            print("search: raw Milvus searches, indexed collection and its growing twin in turn")
            started = time.perf_counter()
            twin = growing_twin(cfg, embedder, bench_tenant, [q.text for q in queries])
            print(f"search, twin: {time.perf_counter() - started:.0f} s", flush=True)

    results = Results(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        revision=code,
        command=command,
        machine=info,
        count=count,
        write=write,
        server_rss_mib=rss,
        queries=len(queries) // 2,
        load=f"{load_start} / {load_average()}",
        search=phases,
        twin=twin,
        stack=(
            f"database `{cfg.postgres_dsn.rsplit('/', 1)[1]}` (migrated, emptied), Milvus "
            f"collection `{cfg.collection}` (dropped first), Redis db "
            f"{cfg.redis_url.rsplit('/', 1)[1]} (flushed); the real server (`uvicorn "
            f"somafractalmemory.http_api:app`, port {cfg.port})"
        ),
        elapsed=time.perf_counter() - began,
    )
    save_json("search", search_figures(results))
    text = render(results)
    write_results(text)
    print()
    print(text)
    return 0


def write_results(text: str) -> None:
    """Replace RESULTS.md with ``text``, keeping the marked sections other benchmarks wrote
    there (``<!-- section:NAME -->`` ... ``<!-- /section:NAME -->``, see suite.py)."""
    current = RESULTS.read_text() if RESULTS.exists() else ""
    kept = [m.group(0) for m in SECTION.finditer(current)]
    RESULTS.write_text("\n\n".join([text.rstrip("\n"), *kept]) + "\n")


if __name__ == "__main__":
    sys.exit(main())
