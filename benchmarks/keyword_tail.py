"""Keyword search's tail at a million memories: ``.venv/bin/python benchmarks/keyword_tail.py``.

The scale benchmark (scale.py) found keyword p95 at 1,000,000 memories 103 ms against a p50 of
27 ms. This one isolates PostgreSQL's part: one tenant of ``--size`` memories (default a
million) is bulk-loaded into PostgreSQL alone (benchmarks/bulk.py without a collection: no
Milvus load or index wait), ``VACUUM ANALYZE``d, and the store's own keyword search
(``PostgresStore.keyword_search``, what ``mode: keyword`` runs in the server) is timed in this
process against its earlier form, in the same run, query by query, alternating which goes
first:

- **two-stage** (the service): each tier's candidates are pre-ranked by ``ts_rank`` and only
  the best ``limit * FILL_FACTOR`` are ranked by ``ts_rank_cd``;
- **one-stage** (the earlier service): every candidate of a tier (up to ``CANDIDATE_CAP``) is
  ranked by ``ts_rank_cd``.

Queries alternate a stored text and its paraphrase question (benchmarks/corpus.py), 200 after
10 warm-ups, limit 30 (what a top-10 search asks for). The overlap of the two forms' top 10 is
reported beside the latency, since the pre-rank may keep a different set. The database is
dropped at the end unless ``--keep`` (a later run with ``--keep`` finds it loaded and skips
the load).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import bulk
import psycopg
import sqlalchemy as sa
from common import config_from_env
from corpus import make_memories
from extra import command_line, preamble, put_section, save_json, table, uptime
from harness import prepare_stores
from scale import drop_stack
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from somafractalmemory.models import SearchScope
from somafractalmemory.settings import Settings
from somafractalmemory.stores.pg_base import create_postgres_engine
from somafractalmemory.stores.postgres import PostgresStore
from somafractalmemory.stores.tables import records

SEED = 7
QUERIES = 200
WARMUP = 10
LIMIT = 30
TOP = 10
TEXTS = 200_000
TARGET_P95_MS = 60.0


class OneStage(PostgresStore):
    """The store as it was: every candidate of a tier ranked by ``ts_rank_cd``."""

    @staticmethod
    def _ranked(
        conn: Connection,
        where: Sequence[sa.ColumnElement[bool]],
        pick: str,
        rank_by: str,
        limit: int,
        cap: int,
    ) -> list[tuple[int, float]]:
        candidates = sa.select(records.c.id, records.c.text_tsv).where(
            *where, records.c.text_tsv.op("@@")(sa.cast(pick, postgresql.TSQUERY))
        )
        picked = candidates.limit(cap).subquery("candidates")
        rank = sa.func.ts_rank_cd(picked.c.text_tsv, sa.cast(rank_by, postgresql.TSQUERY)).label(
            "rank"
        )
        statement = sa.select(picked.c.id, rank).order_by(rank.desc(), picked.c.id).limit(limit)
        return [(int(r.id), float(r.rank)) for r in conn.execute(statement)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def tenant_with_rows(dsn: str) -> tuple[int, int]:
    """The benchmark tenant's id and how many memories it holds (0 when the stack is new)."""
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError:  # no database yet
        return 0, 0
    with conn:
        row = conn.execute("SELECT id FROM tenants WHERE name = 'kwtail'").fetchone()
        if row is None:
            return 0, 0
        count = conn.execute("SELECT count(*) FROM records WHERE tenant_id = %s", (row[0],))
        found = count.fetchone()
        return int(row[0]), int(found[0]) if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000, help="memories in the tenant")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the loaded database")
    parser.add_argument("--no-results", action="store_true", help="print, don't write RESULTS.md")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    # A stack of its own (a million rows): SOMA_BENCH_STACK and friends rename it.
    cfg = config_from_env("soma_bench_kwtail", "8", 9698)
    memories = make_memories(min(args.size, TEXTS), SEED)
    tenant_id, rows = tenant_with_rows(cfg.postgres_dsn) if args.keep else (0, 0)
    load_seconds = 0.0
    if rows != args.size:
        prepare_stores(cfg)
        with psycopg.connect(cfg.postgres_dsn, autocommit=True) as conn:
            row = conn.execute("INSERT INTO tenants (name) VALUES ('kwtail') RETURNING id")
            found = row.fetchone()
            assert found is not None
            tenant_id = int(found[0])
        started = time.perf_counter()
        bulk.load(
            cfg.postgres_dsn,
            cfg.milvus_uri,
            None,
            tenant_id,
            0,
            args.size,
            lambda i: memories[i % len(memories)].text,
            None,
        )
        bulk.analyze(cfg.postgres_dsn)
        load_seconds = time.perf_counter() - started
    os.environ.update(cfg.server_env())
    settings = Settings()
    engine = create_postgres_engine(settings)
    stores = {
        "two-stage": PostgresStore(engine, settings.postgres_address),
        "one-stage": OneStage(engine, settings.postgres_address),
    }
    rng = random.Random(SEED)
    picked = rng.sample(range(min(args.size, len(memories))), QUERIES + WARMUP)
    queries = [
        memories[p].text if n % 2 == 0 else memories[p].paraphrase for n, p in enumerate(picked)
    ]
    times: dict[str, list[float]] = {name: [] for name in stores}
    overlap: list[float] = []
    scope = SearchScope()
    for n, text in enumerate(queries):
        order = list(stores) if n % 2 == 0 else list(reversed(stores))
        tops: dict[str, list[int]] = {}
        for name in order:
            t0 = time.perf_counter()
            hits = stores[name].keyword_search(tenant_id, text, LIMIT, scope)
            elapsed = (time.perf_counter() - t0) * 1000
            tops[name] = [memory_id for memory_id, _ in hits[:TOP]]
            if n >= WARMUP:
                times[name].append(elapsed)
        if n >= WARMUP and tops["one-stage"]:
            shared = set(tops["one-stage"]) & set(tops["two-stage"])
            overlap.append(len(shared) / len(tops["one-stage"]))
    engine.dispose()
    figures: dict[str, Any] = {
        name: {
            "p50": statistics.median(values),
            "p95": percentile(values, 0.95),
            "p99": percentile(values, 0.99),
        }
        for name, values in times.items()
    }
    figures["top10_overlap"] = statistics.mean(overlap) if overlap else 0.0
    figures["size"] = args.size
    figures["load_seconds"] = load_seconds
    if not args.keep:
        drop_stack(cfg)
    text = render(figures, preamble(command, load_start, time.perf_counter() - began))
    print(text)
    if not args.no_results:
        put_section("keyword-tail", text)
        save_json("keyword_tail", figures)
    return 0


def render(figures: dict[str, Any], pre: list[str]) -> str:
    two, one = figures["two-stage"], figures["one-stage"]
    met = "met" if two["p95"] <= TARGET_P95_MS and two["p50"] <= one["p50"] * 1.05 else "not met"
    rows = [
        [name, f"{f['p50']:.1f}", f"{f['p95']:.1f}", f"{f['p99']:.1f}"]
        for name, f in (("two-stage (the service)", two), ("one-stage (before)", one))
    ]
    return "\n".join(
        [
            "## Keyword tail at a million memories (PostgreSQL part)",
            "",
            *pre,
            "",
            f"One tenant of {figures['size']:,} memories bulk-loaded into PostgreSQL alone "
            f"(load {figures['load_seconds']:.0f} s; 0 when reused with --keep), "
            "`VACUUM ANALYZE`d; the store's keyword search timed in process, "
            f"{QUERIES} queries after {WARMUP} warm-ups, limit {LIMIT}, the two forms "
            "alternating which goes first (see benchmarks/keyword_tail.py). ms:",
            "",
            *table(["form", "p50", "p95", "p99"], rows),
            "",
            f"Two-stage / one-stage: p50 {two['p50'] / one['p50']:.2f}x, "
            f"p95 {two['p95'] / one['p95']:.2f}x. Top-10 overlap of the two forms: "
            f"{figures['top10_overlap']:.1%}. Target p95 <= {TARGET_P95_MS:.0f} ms, p50 not "
            f"worse: {met}.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
