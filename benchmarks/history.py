"""What history costs: ``.venv/bin/python benchmarks/history.py [--quick] [--count N]``.

One run, one server, the same data (issue 19):

(a) writes: ``count`` memories stored ``versions`` times (a create, then replaces with new
    texts) in batches of 200, once for a tenant with the history trigger on and once, batch by
    batch alternately, for a tenant of the same memories with it off (``ALTER TABLE records
    DISABLE TRIGGER records_history``, on the benchmark's own database only, put back at the
    end). The memories carry their own vectors (embedded once by this process), so the model
    does not hide the trigger's cost. Target: on / off throughput at least 0.9x.
(b) search: the trigger-on tenant then gets ``count / 2`` new memories, each superseding one
    of the first (a third of its memories superseded), each with a vector near the one it
    supersedes (a correction is about the same thing), so the filter has near neighbours to
    drop. Each query is searched with the default supersession filter and with
    ``include_superseded: true``, alternately, in vector, keyword and hybrid mode; its
    embedding is cached first (one untimed search) so both sides time the search, not the
    model. Target: default / include p50 at most 1.05x.
(c) growth: ``pg_total_relation_size`` of ``record_history`` (indexes and TOAST included)
    per version after (a), beside the same figure for ``records``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import httpx
import numpy as np
import psycopg
from common import EMBEDDING_MODEL, BenchConfig, Latency, LeanClient, batches
from corpus import BenchMemory, make_memories, make_queries
from extra import (
    client,
    command_line,
    isolated_config,
    preamble,
    put_section,
    save_json,
    store_batch,
    table,
    uptime,
)
from harness import index_state, prepare_stores, running_server

from somafractalmemory.core.embedding import create_embedder

SEED = 1919
VERSIONS = 3
QUERIES = 200
WARMUP = 20
MODES = ("vector", "keyword", "hybrid")
TOP_K = 10
# Memories per batch: 200 with their own vectors (5 decimals) stay under the default 1 MiB body
# limit (500 would need SOMA_MAX_BODY_BYTES raised).
BATCH = 200
WARM = 2  # untimed batches a tenant writes first


def set_trigger(conn: psycopg.Connection[Any], on: bool) -> None:
    """The history trigger on or off (the benchmark database only)."""
    conn.execute(f"ALTER TABLE records {'ENABLE' if on else 'DISABLE'} TRIGGER records_history")


def version_bodies(
    memories: list[BenchMemory], vectors: list[list[float]], version: int
) -> list[list[dict[str, Any]]]:
    """The batches of version ``version`` (1: the corpus text; later ones a new text)."""
    bodies = [
        {
            "coord": m.coord,
            "payload": {"text": m.text if version == 1 else f"{m.text} (version {version})"},
            "memory_type": m.memory_type,
            "importance": m.importance,
            "vector": vector,
        }
        for m, vector in zip(memories, vectors, strict=True)
    ]
    return batches(bodies, BATCH)


def warm_bodies(
    memories: list[BenchMemory], vectors: list[list[float]]
) -> list[list[dict[str, Any]]]:
    """:data:`WARM` batches of memories outside the measured ones (texts like theirs)."""
    bodies = [
        {
            "coord": f"{9_000_000 + n},2,2",
            "payload": {"text": f"{memories[n % len(memories)].text} (warm-up {n})"},
            "vector": vectors[n % len(vectors)],
        }
        for n in range(WARM * BATCH)
    ]
    return batches(bodies, BATCH)


def timed_batch(http: httpx.Client, body: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    store_batch(http, body)
    return time.perf_counter() - started


def writes(
    cfg: BenchConfig,
    on: httpx.Client,
    off: httpx.Client,
    memories: list[BenchMemory],
    vectors: list[list[float]],
) -> dict[str, dict[bool, list[float]]]:
    """(a): every version's batches for both tenants, alternately (which goes first
    alternates too); seconds per batch by kind (creates, replaces) and trigger state."""
    seconds: dict[str, dict[bool, list[float]]] = {
        "creates": {True: [], False: []},
        "replaces": {True: [], False: []},
    }
    with psycopg.connect(cfg.postgres_dsn, autocommit=True) as conn:
        try:
            # Untimed warm-up at coordinates of their own: the first batches after a start
            # pay for connections, caches and plans.
            warm = warm_bodies(memories, vectors)
            for trigger, http in ((True, on), (False, off)):
                set_trigger(conn, trigger)
                for body in warm:
                    store_batch(http, body)
            for version in range(1, VERSIONS + 1):
                kind = "creates" if version == 1 else "replaces"
                for i, body in enumerate(version_bodies(memories, vectors, version)):
                    order = [(True, on), (False, off)]
                    for trigger, http in order if i % 2 == 0 else order[::-1]:
                        set_trigger(conn, trigger)
                        seconds[kind][trigger].append(timed_batch(http, body))
                print(f"version {version}: {len(memories):,} memories for each tenant")
        finally:
            set_trigger(conn, True)
    return seconds


def growth(cfg: BenchConfig, on_tenant: int, off_tenant: int, count: int) -> dict[str, float]:
    """(c): history's size per version, and the records' per row."""
    with psycopg.connect(cfg.postgres_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE record_history")
        conn.execute("ANALYZE records")

        def one(query: str, *params: object) -> float:
            row = conn.execute(query, params).fetchone()
            assert row is not None
            return float(row[0])

        versions = one("SELECT count(*) FROM record_history WHERE tenant_id = %s", on_tenant)
        unrecorded = one("SELECT count(*) FROM record_history WHERE tenant_id = %s", off_tenant)
        if versions != count * VERSIONS + WARM * BATCH or unrecorded != 0:
            raise RuntimeError(f"history holds {versions:.0f} + {unrecorded:.0f} versions")
        return {
            "versions": versions,
            "history_bytes": one("SELECT pg_total_relation_size('record_history')"),
            "history_heap_bytes": one("SELECT pg_relation_size('record_history')"),
            "rows": one("SELECT count(*) FROM records"),
            "records_bytes": one("SELECT pg_total_relation_size('records')"),
        }


def supersede(http: httpx.Client, memories: list[BenchMemory], vectors: list[list[float]]) -> int:
    """(b), set-up: every second memory superseded by a new one near it; how many."""
    rng = np.random.default_rng(SEED)
    bodies = []
    for k, index in enumerate(range(0, len(memories), 2)):
        old = np.asarray(vectors[index])
        near = old + rng.normal(0.0, 0.02, old.shape)
        bodies.append(
            {
                "coord": f"{5_000_000 + k},1,1",
                "payload": {"text": f"Correction to an earlier note: {memories[index].text}"},
                "vector": [round(float(x), 5) for x in near / np.linalg.norm(near)],
                "supersedes": [memories[index].coord],
            }
        )
    for body in batches(bodies, BATCH):
        store_batch(http, body)
    return len(bodies)


def post(lean: LeanClient, body: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    status, _timing, data = lean.post("/memories/search", body)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"search: {status} {data[:300]!r}")
    results: list[dict[str, Any]] = json.loads(data)["results"]
    return elapsed, results


def searches(lean: LeanClient, texts: list[str]) -> dict[str, dict[str, Any]]:
    """(b): each text in each mode with and without the filter, alternately."""
    figures: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        default: list[float] = []
        included: list[float] = []
        marked = shown = 0
        for i, text in enumerate(texts):
            base = {"query": text, "mode": mode, "top_k": TOP_K}
            post(lean, base)  # caches the query's embedding for both timed searches
            runs = [(False, default), (True, included)]
            for include, sink in runs if i % 2 == 0 else runs[::-1]:
                elapsed, results = post(lean, {**base, "include_superseded": include})
                if i >= WARMUP:
                    sink.append(elapsed)
                if include and i >= WARMUP:
                    shown += len(results)
                    marked += sum(r.get("superseded_by") is not None for r in results)
        figures[mode] = {
            "default": Latency.of(default),
            "include": Latency.of(included),
            "superseded_share": marked / shown if shown else 0.0,
        }
        print(
            f"{mode}: default p50 {figures[mode]['default'].p50:.1f} ms, "
            f"include_superseded p50 {figures[mode]['include'].p50:.1f} ms"
        )
    return figures


def tenant_ids(cfg: BenchConfig, *names: str) -> list[int]:
    with psycopg.connect(cfg.postgres_dsn) as conn:
        found = dict(conn.execute("SELECT name, id FROM tenants").fetchall())
    return [int(found[name]) for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 memories, 100 queries")
    parser.add_argument("--count", type=int, default=None, help="memories (default 10,000)")
    args = parser.parse_args(argv)
    count = args.count or (2_000 if args.quick else 10_000)
    queries = 100 if args.quick else QUERIES
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    cfg = isolated_config()
    memories = make_memories(count, SEED)
    texts = [q.text for q in make_queries(memories, queries + WARMUP, SEED + 1)]
    embedder = create_embedder(EMBEDDING_MODEL)
    started = time.perf_counter()
    vectors = [
        [round(x, 5) for x in v]
        for chunk in batches([m.text for m in memories])
        for v in embedder.embed(chunk)
    ]
    print(f"embedded {count:,} texts in {time.perf_counter() - started:.0f} s")
    prepare_stores(cfg)
    with running_server(cfg) as server:
        keys = server.create_key("history-on"), server.create_key("history-off")
        on_tenant, off_tenant = tenant_ids(cfg, "history-on", "history-off")
        with client(cfg, keys[0]) as on, client(cfg, keys[1]) as off:
            written = writes(cfg, on, off, memories, vectors)
            sizes = growth(cfg, on_tenant, off_tenant, count)
            superseded = supersede(on, memories, vectors)
        index = str(index_state(cfg))
        lean = LeanClient(cfg.base_url, keys[0])
        try:
            found = searches(lean, texts)
        finally:
            lean.close()
    save_json(
        "history",
        {
            "writes": {k: {str(t): sum(v) for t, v in s.items()} for k, s in written.items()},
            "growth": sizes,
            "search": {
                m: {k: v.__dict__ if isinstance(v, Latency) else v for k, v in f.items()}
                for m, f in found.items()
            },
        },
    )
    pre = preamble(command, load_start, time.perf_counter() - began)
    text = render(written, sizes, found, count, superseded, len(texts) - WARMUP, index, pre)
    put_section("history", text)
    print(text)
    return 0


def render(
    written: dict[str, dict[bool, list[float]]],
    sizes: dict[str, float],
    found: dict[str, dict[str, Any]],
    count: int,
    superseded: int,
    queries: int,
    index: str,
    pre: list[str],
) -> str:
    write_rows = []
    both = {t: [*written["creates"][t], *written["replaces"][t]] for t in (True, False)}
    kinds = {**written, "all": both}
    for kind, by_state in kinds.items():
        versions = {"creates": 1, "replaces": VERSIONS - 1, "all": VERSIONS}[kind]
        rate = {t: count * versions / sum(s) for t, s in by_state.items()}
        ratio = rate[True] / rate[False]
        write_rows.append(
            [
                kind,
                f"{len(by_state[True])}",
                f"{rate[True]:,.0f}",
                f"{rate[False]:,.0f}",
                f"{Latency.of(by_state[True]).p50:.0f}",
                f"{Latency.of(by_state[False]).p50:.0f}",
                f"{ratio:.2f}",
                "met" if ratio >= 0.9 else "not met",
            ]
        )
    search_rows = []
    for mode, f in found.items():
        ratio = f["default"].p50 / f["include"].p50
        search_rows.append(
            [
                mode,
                f"{f['default'].p50:.1f}",
                f"{f['default'].p95:.1f}",
                f"{f['include'].p50:.1f}",
                f"{f['include'].p95:.1f}",
                f"{f['superseded_share']:.0%}",
                f"{ratio:.2f}",
                "met" if ratio <= 1.05 else "not met",
            ]
        )
    per_version = sizes["history_bytes"] / sizes["versions"]
    out = [
        f"## History: the trigger's write cost, the supersession filter, growth ({count:,} "
        f"memories, {VERSIONS} versions each)",
        "",
        *pre,
        "",
        f"(a) {count:,} memories with their own vectors written {VERSIONS} times (a create, "
        f"then {VERSIONS - 1} replaces with new texts) in batches of {BATCH} through "
        "`POST /memories/batch`, for two tenants alternately batch by batch: one with the "
        "history trigger on, one with it disabled (`ALTER TABLE records DISABLE TRIGGER "
        "records_history`, benchmark database only). Throughput is memories per second "
        "over all of a kind's batches.",
        "",
        *table(
            [
                "writes",
                "batches a side",
                "trigger on /s",
                "trigger off /s",
                "on p50 ms",
                "off p50 ms",
                "on / off",
                "target 0.9x",
            ],
            write_rows,
        ),
        "",
        f"(b) Then {superseded:,} new memories of the trigger-on tenant each supersede one "
        f"of the first (a vector near the superseded one's): {superseded:,} of "
        f"{count + superseded:,} superseded. {queries} query texts (after {WARMUP} warm-up "
        "ones), each searched with the default filter and with `include_superseded: true` "
        "in turn, top 10, the query's embedding cached by one untimed search first. "
        '"superseded in top 10" is the share of the unfiltered results that the default '
        "leaves out. In Milvus the filter is a clause on the JSON field `attrs` "
        '(`(not exists attrs["sfm-superseded"]) or not (attrs["sfm-superseded"] == true)`), '
        "evaluated entity by entity over the "
        "tenant's partition (no JSON index in Milvus 2.3.5), so its cost grows with the "
        "tenant; a scalar field's clause costs a fraction of it.",
        "",
        *table(
            [
                "mode",
                "default p50 ms",
                "default p95 ms",
                "include p50 ms",
                "include p95 ms",
                "superseded in top 10",
                "default / include p50",
                "target 1.05x",
            ],
            search_rows,
        ),
        "",
        f"Milvus index when the searches began: {index} (as the writes left it, not "
        "flushed: rows in growing segments are searched through Milvus's interim index, "
        "not HNSW; both sides of each ratio alike).",
        "",
        f"(c) After (a): `record_history` holds {sizes['versions']:,.0f} versions in "
        f"{sizes['history_bytes'] / 2**20:.1f} MiB with its indexes "
        f"({sizes['history_heap_bytes'] / 2**20:.1f} MiB of table): "
        f"**{per_version:,.0f} bytes per version**; `records` holds {sizes['rows']:,.0f} rows "
        f"(both tenants) in {sizes['records_bytes'] / 2**20:.1f} MiB, "
        f"{sizes['records_bytes'] / sizes['rows']:,.0f} bytes a row with its indexes and "
        "its own vector (384 floats).",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
