"""Load test: concurrent clients mixing stores, searches, gets and deletes against the real
server, then proof that nothing acknowledged was lost and nothing deleted came back.

    .venv/bin/python benchmarks/load.py [--duration 60] [--clients 20] [--results FILE]

Loopback only and bounded: the server (uvicorn, one process) runs as a subprocess on
127.0.0.1 on a database, a Milvus collection and a Redis key prefix of this script's own
(the configured database's and collection's names plus ``_bench_load``, so
``soma_bench_load`` and ``soma_memories_bench_load`` by default; ``sfm_bench_load``), on the
PostgreSQL, Milvus and Redis named by ``POSTGRES_DSN``, ``MILVUS_URI``, ``MILVUS_COLLECTION``
and ``REDIS_URL`` (local defaults), and every one of them is removed at the end
(``testkit.stores.private_stack``). Each client is a thread with its own HTTP
connection, one request at a time, on one tenant: stores 40% (a quarter of them replacing
a memory the client stored), searches 30%, gets 20%, deletes 10%, for ``--duration``
seconds. The per-key rate limit is off (one key for all clients would hit it).

The clients and the checks are the fault tests' (``testkit/loadgen.py`` and
``testkit/verdict.py``): each client keeps every answer and, for each coordinate it wrote, what the
stores may hold. Afterwards the outbox is drained, ``somafractalmemory reconcile`` must find
no drift, and PostgreSQL and Milvus (Strong consistency) are checked id by id: every
acknowledged store present in both with its latest text (and vector), every acknowledged
delete absent from both. The script prints throughput and p50/p95/p99 per kind and the 5xx
count as a Markdown section (``--results FILE`` also puts it into FILE between
``<!-- section:load -->`` markers, leaving the rest alone), and exits 1 on any 5xx or lost
or resurrected memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import machine, revision  # noqa: E402
from extra import command_line  # noqa: E402

from somafractalmemory.settings import Settings  # noqa: E402
from testkit.loadgen import (  # noqa: E402
    Loader,
    Mix,
    Request,
    all_requests,
    join_all,
)
from testkit.server import ApiServer, stack_env  # noqa: E402
from testkit.stores import private_stack, scalar  # noqa: E402
from testkit.verdict import (  # noqa: E402
    Verdict,
    drain_and_reconcile,
    run_cli,
    verify,
)

KINDS = ("store", "search", "get", "delete")
# stores 40% (new 30, replace 10), searches 30%, gets 20%, deletes 10%
MIX = Mix(single=30, replace=10, search=30, get=20, delete=10, own_vectors=0.0)
SECTION = "## Load test"
MARKER = "load"  # <!-- section:load --> ... <!-- /section:load --> in RESULTS.md
DIMENSION = 384


def settings_from_env() -> Settings:
    """The stack named by the environment (local defaults); the load test's own database,
    collection and Redis prefix beside it come from :func:`private_stack`."""
    return Settings(
        postgres_dsn=os.environ.get("POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/soma"),
        milvus_uri=os.environ.get("MILVUS_URI", "http://127.0.0.1:19530"),
        milvus_collection=os.environ.get("MILVUS_COLLECTION", "soma_memories"),
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )


def uptime() -> str:
    """What `uptime` says (the load averages over 1, 5 and 15 minutes)."""
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False, timeout=10)
    return done.stdout.strip() or "load average: " + Path("/proc/loadavg").read_text()[:14]


def one_minute_load(uptime_line: str) -> float:
    return float(uptime_line.rsplit("load average:", 1)[1].split(",")[0])


def percentiles(seconds: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 in milliseconds."""
    if len(seconds) < 2:
        only = seconds[0] * 1000 if seconds else float("nan")
        return only, only, only
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


def report(
    requests: Sequence[Request],
    elapsed: float,
    args: argparse.Namespace,
    verdict: Verdict,
    reconciled: str,
    loads: tuple[str, str],
    started: dt.datetime,
) -> str:
    """The Markdown section."""
    lines = [
        SECTION,
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; code: {revision()}",
        f"- Command: `{command_line()}` (from the repository root; a step of `make bench`, "
        "not of `make bench-quick`)",
        f"- {args.clients} clients (threads, one HTTP connection each, one request at a "
        f"time) for {args.duration:g} s against one uvicorn process on 127.0.0.1; one "
        "tenant; stores 40% (a quarter of them replacing one of the client's memories), "
        "searches 30% (hybrid, top_k 5, every query a text of its own, so the server's "
        "query-embedding cache never answers), gets 20%, deletes 10%; rate limit off",
        f"- `uptime` before the run: `{loads[0]}`",
        f"- `uptime` after it (the run's own load included): `{loads[1]}`",
        "",
        "| nproc | RAM | CPU | Python |",
        "|---|---|---|---|",
        "| {nproc} | {RAM} | {CPU} | {Python} |".format(**machine()),
        "",
    ]
    if one_minute_load(loads[0]) >= len(os.sched_getaffinity(0)) / 2:
        lines += [
            "The machine was shared with other jobs: the load average before the run (when "
            "nothing of this test was running yet) was already high. The server, its stores, "
            f"the {args.clients} clients and those jobs competed for the same cores, so these "
            "figures are a floor, not the service's ceiling.",
            "",
        ]
    lines += [
        f"Requests started in {elapsed:.1f} s:",
        "",
        "| kind | requests | requests/s | p50 ms | p95 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in (*KINDS, "all"):
        chosen = [r for r in requests if kind in ("all", r.kind)]
        p50, p95, p99 = percentiles([r.seconds for r in chosen])
        failed = sum(1 for r in chosen if not r.acknowledged)
        lines.append(
            f"| {kind} | {len(chosen)} | {len(chosen) / elapsed:.1f} | {p50:.0f} | {p95:.0f} "
            f"| {p99:.0f} | {failed} |"
        )
    fives = sum(1 for r in requests if r.status is None or r.status >= 500)
    lines += [
        "",
        f"**5xx (or no answer): {fives}.** Lost or resurrected memories: {len(verdict.problems)}.",
        "",
        f"Afterwards: {verdict.line()}. `reconcile`: {reconciled.splitlines()[-1]}.",
        "",
    ]
    return "\n".join(lines)


def put_section(path: Path, section: str) -> None:
    """Write ``section`` into ``path`` between this script's markers (replaced in place when
    they are there, else appended); every other part of the file is kept."""
    start, end = f"<!-- section:{MARKER} -->", f"<!-- /section:{MARKER} -->"
    block = f"{start}\n{section.rstrip()}\n{end}\n"
    current = path.read_text() if path.exists() else ""
    if start in current and end in current:
        head, rest = current.split(start, 1)
        tail = rest.split(end, 1)[1]
        text = head + block.rstrip("\n") + tail
    else:
        text = current.rstrip("\n") + ("\n\n" if current else "") + block
    path.write_text(text)


def forget_cache(settings: Settings) -> None:
    """Delete the load test's keys from Redis (its prefix only)."""
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=10)
    try:
        for key in client.scan_iter(match=f"{settings.redis_key_prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


def embed_lazily(texts: list[str]) -> list[list[float]]:
    """The model's embeddings, loaded only if the check needs any."""
    from somafractalmemory.core.embedding import create_embedder

    return create_embedder(Settings.model_fields["embedding_model"].default).embed(texts)


def run_load(settings: Settings, args: argparse.Namespace) -> tuple[str, Verdict, list[Loader]]:
    """The load on the stack of ``settings`` (database migrated, collections ensured): the
    server started, the clients run, the stores checked; the report section, the verdict
    and the clients."""
    dsn = settings.postgres_dsn.get_secret_value()
    env = stack_env(settings, SOMA_REDIS_PREFIX=settings.redis_key_prefix)
    workdir = Path(tempfile.mkdtemp(prefix="sfm-load-"))
    server = ApiServer(
        settings,
        workdir / "server.log",
        SOMA_REDIS_PREFIX=settings.redis_key_prefix,
        SOMA_RATE_LIMIT_PER_MINUTE="0",
    )
    started = dt.datetime.now(dt.UTC)
    try:
        created = run_cli(env, "keys", "create", "--tenant", f"load-{uuid.uuid4().hex[:8]}")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        server.start()
        load_before = uptime()
        stop = threading.Event()
        loaders = [
            Loader(
                i,
                server.url,
                {"Authorization": f"Bearer {key}"},
                MIX,
                dimension=DIMENSION,
                seed=args.seed,
                stop=stop,
                timeout=60,
            )
            for i in range(args.clients)
        ]
        print(f"{args.clients} clients for {args.duration:g} s on {server.url} ...", flush=True)
        began = time.monotonic()
        for loader in loaders:
            loader.start()
        time.sleep(args.duration)
        stop.set()
        elapsed = time.monotonic() - began
        join_all(loaders, 90)
        load_after = uptime()
        server.kill()
        requests = [r for r in all_requests(loaders) if r.started - began <= args.duration]
        pending = scalar(dsn, "SELECT count(*) FROM outbox")
        _drained, reconciled = drain_and_reconcile(env)
        tenant_id = int(scalar(dsn, "SELECT max(id) FROM tenants"))
        verdict = verify(
            loaders,
            dsn,
            settings.milvus_uri,
            settings.milvus_collection,
            tenant_id,
            embed_lazily,
            embedded_sample=100,
        )
        if pending:
            verdict.problems.append(f"{pending} outbox entries pending after the load")
        section = report(
            requests, elapsed, args, verdict, reconciled, (load_before, load_after), started
        )
    finally:
        server.kill()
        forget_cache(settings)
        shutil.rmtree(workdir, ignore_errors=True)
    return section, verdict, loaders


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients")
    parser.add_argument("--results", type=Path, help="also write the section into this file")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    with private_stack(settings_from_env(), "_bench_load") as settings:
        section, verdict, loaders = run_load(settings, args)
    print(section)
    for problem in verdict.problems[:30]:
        print("PROBLEM", problem)
    if args.results:
        put_section(args.results, section)
    fives = sum(1 for r in all_requests(loaders) if r.status is None or r.status >= 500)
    return 1 if fives or verdict.problems else 0


if __name__ == "__main__":
    sys.exit(main())
