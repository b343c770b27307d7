"""A small tenant's search latency as the number of tenants grows:
``.venv/bin/python benchmarks/tenants.py [--tenants 100,100000] [--per-tenant 10]``.

One probe tenant keeps 10 memories while the collection fills with other tenants of 10
memories each (default 100, then 100,000 tenants: a million memories). As in the scale
benchmark, the memories are bulk-loaded straight into the raw stores (PostgreSQL rows with
their generated tsvector, Milvus entities with the same ids and tenants) with corpus texts and
random unit vectors; at each size Milvus is flushed and its index waited for, PostgreSQL is
``VACUUM ANALYZE``d and the server restarted. Then the probe tenant's searches are timed over
HTTP in vector mode (a generated query vector, no embedding), keyword mode and hybrid mode
(the text plus a generated vector), one client, sequential, and the same probe's raw
tenant-filtered Milvus search beside them. Memory at each size: the Milvus server's resident
set (its whole process group, from ``/proc``), PostgreSQL's database size on disk and the
proportional set size of its processes (``/proc/<pid>/smaps_rollup``, so shared buffers are
not counted once per process).

The stack is ``soma_bench_tenants`` (``SOMA_BENCH_STACK`` renames it), Redis db 6, port 9698;
``SOMA_BENCH_MILVUS_PGID`` names the process group of the Milvus server behind ``MILVUS_URI``
for its memory figure (else the group of the process listening on its port is looked up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bulk
import numpy as np
import psycopg
from common import DIMENSION, Latency, LeanClient, config_from_env
from corpus import make_memories
from extra import command_line, preamble, put_section, save_json, table, uptime
from harness import Server, flush_and_index, prepare_stores, running_server
from pymilvus import MilvusClient
from searches import raw_milvus_search

from somafractalmemory.stores.milvus_filters import searchable_attrs

SEED = 7
PROBE_TENANT = "probe"
QUERIES = 200
WARMUP = 20
TOP_K = 10
MODES = ("vector", "keyword", "hybrid")
TARGET_RATIO = 1.2
TENANT_CHUNK = 5_000  # tenants per INSERT (so 50,000 memories per statement at 10 each)

_INSERT_TENANTS = """
INSERT INTO tenants (name, created_at)
SELECT 'filler-' || g, now() FROM generate_series(%(lo)s, %(hi)s - 1) AS g
RETURNING id
"""

_INSERT_RECORDS = """
INSERT INTO records (tenant_id, key, memory_type, payload, text, importance, created_at,
                     updated_at)
SELECT t, c, m, p::jsonb, x, 0.5, now(), now()
FROM unnest(%(tenants)s::bigint[], %(coords)s::text[], %(types)s::text[],
            %(payloads)s::text[], %(texts)s::text[]) AS u(t, c, m, p, x)
RETURNING id, tenant_id, memory_type, text, created_at
"""


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def load_fillers(
    dsn: str,
    milvus: MilvusClient,
    collection: str,
    lo: int,
    hi: int,
    per_tenant: int,
    texts: list[str],
    rng: np.random.Generator,
) -> None:
    """Filler tenants ``lo`` to ``hi - 1``, ``per_tenant`` memories each, in both stores."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(lo, hi, TENANT_CHUNK):
            stop = min(hi, start + TENANT_CHUNK)
            ids = [int(r[0]) for r in conn.execute(_INSERT_TENANTS, {"lo": start, "hi": stop})]
            tenants = [t for t in ids for _ in range(per_tenant)]
            n = len(tenants)
            chosen = [texts[(start * per_tenant + i) % len(texts)] for i in range(n)]
            kinds = ["semantic" if i % 2 else "episodic" for i in range(n)]
            rows = conn.execute(
                _INSERT_RECORDS,
                {
                    "tenants": tenants,
                    "coords": [f"{i % per_tenant},0,0" for i in range(n)],
                    "types": kinds,
                    "payloads": [
                        json.dumps({"text": t, "n": i % 10}) for i, t in enumerate(chosen)
                    ],
                    "texts": chosen,
                },
            ).fetchall()
            vectors = unit_vectors(rng, n)
            entities = [
                {
                    "id": int(memory_id),
                    "tenant_id": int(tenant),
                    "memory_type": kind,
                    "created_at": int(created.timestamp() * 1000),
                    "attrs": searchable_attrs({"text": text, "n": j % 10}),
                    "vector": vectors[j].tolist(),
                }
                for j, (memory_id, tenant, kind, text, created) in enumerate(rows)
            ]
            for m in range(0, len(entities), bulk.MILVUS_CHUNK):
                milvus.insert(collection, entities[m : m + bulk.MILVUS_CHUNK], timeout=300)
            print(f"  tenants {stop:,} loaded", flush=True)


def _rss_kib(pid: int, field: str, source: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _pids(args: list[str]) -> list[int]:
    found = subprocess.run(args, capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def milvus_rss_mib(uri: str) -> float:
    """Resident memory of the Milvus server's process group behind ``uri``."""
    pgid = os.environ.get("SOMA_BENCH_MILVUS_PGID")
    if pgid is None:
        port = urlsplit(uri).port or 19530
        listening = _pids(["lsof", "-t", f"-iTCP:{port}", "-sTCP:LISTEN"])
        if not listening:
            return 0.0
        pgid = str(os.getpgid(listening[0]))
    return sum(_rss_kib(p, "VmRSS:", "status") for p in _pids(["pgrep", "-g", pgid])) / 1024


def postgres_memory(dsn: str) -> tuple[float, float]:
    """The database's size on disk and the proportional set size of PostgreSQL's processes,
    both in MiB."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    size = int(row[0]) if row else 0
    pss = sum(_rss_kib(p, "Pss:", "smaps_rollup") for p in _pids(["pgrep", "-x", "postgres"]))
    return size / 2**20, pss / 1024


def time_probe(
    cfg: Any,
    key: str,
    tenant_id: int,
    queries: list[str],
    rng: np.random.Generator,
    milvus: MilvusClient,
) -> dict[str, Latency]:
    """Each mode's latency over HTTP for the probe tenant, and its raw Milvus search."""
    vectors = unit_vectors(rng, len(queries))
    timings: dict[str, list[float]] = {m: [] for m in (*MODES, "raw milvus")}
    lean = LeanClient(cfg.base_url, key)
    try:
        for i, text in enumerate(queries):
            for mode in MODES:
                body: dict[str, Any] = {"query": text, "mode": mode, "top_k": TOP_K}
                if mode != "keyword":
                    body["vector"] = vectors[i].tolist()
                started = time.perf_counter()
                status, _timing, data = lean.post("/memories/search", body)
                elapsed = time.perf_counter() - started
                if status != 200:
                    raise RuntimeError(f"search: {status} {data[:300]!r}")
                if mode == "vector" and not json.loads(data)["results"]:
                    raise RuntimeError("the probe tenant's vector search found nothing")
                if i >= WARMUP:
                    timings[mode].append(elapsed)
            started = time.perf_counter()
            raw_milvus_search(milvus, cfg.collection, tenant_id, vectors[i].tolist())
            if i >= WARMUP:
                timings["raw milvus"].append(time.perf_counter() - started)
    finally:
        lean.close()
    return {m: Latency.of(t) for m, t in timings.items()}


def render(rows: list[dict[str, Any]], pre: list[str], per_tenant: int) -> str:
    first = rows[0]
    lines = [
        "## Many tenants: a small tenant's search as the tenants grow",
        "",
        *pre,
        "",
        f"One probe tenant with {per_tenant} memories; the collection fills with other tenants "
        f"of {per_tenant} memories each, **bulk-loaded into the raw stores** (benchmarks/"
        "tenants.py: PostgreSQL rows with their generated tsvector, Milvus entities with the "
        "same ids and tenants; corpus texts, random unit vectors), Milvus flushed and its index "
        "waited for, PostgreSQL `VACUUM ANALYZE`d and the server restarted at each size. Then "
        f"{QUERIES - WARMUP} probe searches per mode over HTTP after {WARMUP} warm-ups, one "
        "client, sequential (vector and hybrid carry a generated query vector: no embedding), "
        "and the probe's raw tenant-filtered Milvus search (limit 30, Session consistency) "
        "beside them. p50 / p95 ms:",
        "",
    ]
    header = ["tenants", "memories", "vector", "keyword", "hybrid", "raw Milvus"]
    body = [
        [
            f"{r['tenants']:,}",
            f"{r['memories']:,}",
            *(f"{r[m].p50:.1f} / {r[m].p95:.1f}" for m in (*MODES, "raw milvus")),
        ]
        for r in rows
    ]
    lines += table(header, body)
    lines += ["", f"p50 against the {first['tenants']:,}-tenant row (target ≤ {TARGET_RATIO}):", ""]
    ratio_rows = []
    for r in rows[1:]:
        cells = [f"{r['tenants']:,}"]
        for m in (*MODES, "raw milvus"):
            ratio = r[m].p50 / first[m].p50
            mark = "" if m == "raw milvus" else (" met" if ratio <= TARGET_RATIO else " not met")
            cells.append(f"{ratio:.2f}{mark}")
        ratio_rows.append(cells)
    lines += table(["tenants", "vector", "keyword", "hybrid", "raw Milvus"], ratio_rows)
    lines += ["", "Memory at each size (MiB):", ""]
    lines += table(
        [
            "tenants",
            "Milvus RSS",
            "PostgreSQL database on disk",
            "PostgreSQL PSS",
            "SFM server RSS",
            "load s",
            "index wait s",
        ],
        [
            [
                f"{r['tenants']:,}",
                f"{r['milvus_rss_mib']:.0f}",
                f"{r['pg_size_mib']:.0f}",
                f"{r['pg_pss_mib']:.0f}",
                f"{r['server_rss_mib']:.0f}",
                f"{r['load_seconds']:.0f}",
                f"{r['index_seconds']:.0f}",
            ]
            for r in rows
        ],
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tenants", default="100,100000", help="comma-separated tenant counts")
    parser.add_argument("--per-tenant", type=int, default=10)
    parser.add_argument("--index-wait", type=float, default=7200.0)
    parser.add_argument("--keep", action="store_true", help="keep the loaded stores")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.tenants.split(","))
    began, load_start, command = time.perf_counter(), uptime(), command_line()
    rng = np.random.default_rng(SEED)
    corpus = make_memories(20_000, SEED)
    texts = [m.text for m in corpus]
    cfg = config_from_env("soma_bench_tenants", "6", 9698)
    prepare_stores(cfg)
    server = Server(cfg)
    server._cli("ensure-collection")
    key = server.create_key(PROBE_TENANT)
    with psycopg.connect(cfg.postgres_dsn) as conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = %s", (PROBE_TENANT,)).fetchone()
    assert row is not None
    probe = int(row[0])
    probe_texts = texts[-args.per_tenant :]
    bulk.load(
        cfg.postgres_dsn,
        cfg.milvus_uri,
        cfg.collection,
        probe,
        0,
        args.per_tenant,
        lambda i: probe_texts[i],
        lambda n: unit_vectors(rng, n),
    )
    milvus = MilvusClient(uri=cfg.milvus_uri, alias="sfm-bench-tenants")
    rows: list[dict[str, Any]] = []
    loaded = 1  # the probe
    text = ""
    try:
        for size in sizes:
            started = time.perf_counter()
            load_fillers(
                cfg.postgres_dsn,
                milvus,
                cfg.collection,
                loaded,
                size,
                args.per_tenant,
                texts,
                rng,
            )
            loaded = size
            bulk.analyze(cfg.postgres_dsn, ("records", "tenants"))
            load_seconds = time.perf_counter() - started
            _state, index_seconds = flush_and_index(cfg, args.index_wait)
            queries = [probe_texts[i % len(probe_texts)] for i in range(QUERIES)]
            with running_server(cfg) as srv:
                latency = time_probe(cfg, key, probe, queries, rng, milvus)
                server_rss = srv.rss_mib()
            pg_size, pg_pss = postgres_memory(cfg.postgres_dsn)
            rows.append(
                {
                    "tenants": size,
                    "memories": size * args.per_tenant,
                    **latency,
                    "milvus_rss_mib": milvus_rss_mib(cfg.milvus_uri),
                    "pg_size_mib": pg_size,
                    "pg_pss_mib": pg_pss,
                    "server_rss_mib": server_rss,
                    "load_seconds": load_seconds,
                    "index_seconds": index_seconds,
                }
            )
            print(
                f"{size:,} tenants: "
                + ", ".join(f"{m} p50 {latency[m].p50:.1f} ms" for m in (*MODES, "raw milvus")),
                flush=True,
            )
            save_json(
                "tenants",
                [
                    {k: (v.__dict__ if isinstance(v, Latency) else v) for k, v in r.items()}
                    for r in rows
                ],
            )
            text = render(
                rows, preamble(command, load_start, time.perf_counter() - began), args.per_tenant
            )
            put_section("tenants", text)
    finally:
        milvus.close()
        if not args.keep:
            from scale import drop_stack

            drop_stack(cfg)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
