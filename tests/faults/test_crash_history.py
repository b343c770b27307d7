"""The real server SIGKILLed at random moments during a load of replaces, supersessions and
deletes: afterwards no acknowledged version is missing from ``record_history``, no
acknowledged delete came back, every unacknowledged request left its versions at all its
keys or at none, the history and the current rows agree, superseded rows are marked so in
Milvus (``attrs["sfm-superseded"]``), the Redis cache serves no version but the current
one, and ``reconcile`` finds no drift (issue 19).

The machinery of ``test_crash_under_load.py`` at a smaller size: a uvicorn subprocess on a
database, a collection and a Redis key prefix of this module's own; two clients
(:mod:`testkit.loadgen`) write 225 new coordinates each in small batches (some replacing),
single stores, replaces, supersedes (a new memory superseding one of the client's current
ones) and deletes, sending half of what was not acknowledged again; 3 kills (SIGKILL, no
shutdown) at seeded moments, a restart after each. The outbox is then drained with
``drain-outbox --grace 0`` (the server stopped) and the stores are checked against every
answer: :func:`testkit.verdict.verify` (rows and vectors) and
:func:`testkit.history_verdict.verify_history` (versions, current state, Milvus state).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from somafractalmemory.stores.redis import MemoryCache, create_redis_client
from testkit.history_verdict import verify_history
from testkit.loadgen import Loader, Mix, all_requests, join_all, summary
from testkit.server import ApiServer, stack_env, wait_until
from testkit.stores import new_tenant, scalar
from testkit.verdict import drain_and_reconcile, verify
from tests.faults.support import crash_server, kill_and_restart

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SFM_CRASH_SEED", "19"))
CLIENTS = 2
# A soak run sets more (SFM_CRASH_HISTORY_MEMORIES=5000) and other seeds.
NEW_MEMORIES = int(os.environ.get("SFM_CRASH_HISTORY_MEMORIES", "450"))
KILLS = 3
MIX = Mix(
    batch=0.5,
    single=1,
    replace=2,
    supersede=2,
    delete=1,
    get=0.5,
    batch_size=20,
    replaced_per_batch=5,
    retry=0.5,
)
LOAD_TIMEOUT = 240.0  # seconds for the whole load, restarts included


@pytest.fixture(scope="module")
def served(test_settings: Settings, tmp_path_factory: Any) -> Iterator[tuple[ApiServer, Settings]]:
    """A migrated database and ensured collections of this module's own; the server on them
    (not started)."""
    with crash_server(test_settings, tmp_path_factory, "crashhist") as served:
        yield served


def kill_points(rng: random.Random) -> list[tuple[int, float]]:
    """(new memories sent, extra delay in s): one kill at a random point of each of
    :data:`KILLS` equal stretches of the load."""
    span = 0.8 / KILLS
    return [
        (int(NEW_MEMORIES * (0.1 + span * (i + rng.random()))), rng.uniform(0.0, 0.2))
        for i in range(KILLS)
    ]


def test_sigkill_during_replaces_supersessions_and_deletes_keeps_history_true(
    served: tuple[ApiServer, Settings], stack: Stack, dimension: int
) -> None:
    server, settings = served
    tenant, headers = new_tenant(settings, "crash-history")
    points = kill_points(random.Random(SEED))
    began = time.monotonic()

    server.start()
    up, stop = threading.Event(), threading.Event()
    up.set()
    loaders = [
        Loader(
            i,
            server.url,
            headers,
            MIX,
            dimension=dimension,
            seed=SEED,
            stop=stop,
            max_new=NEW_MEMORIES // CLIENTS,
            up=up,
            timeout=60,
        )
        for i in range(CLIENTS)
    ]
    for loader in loaders:
        loader.start()
    restarts: list[float] = []
    try:
        for threshold, delay in points:
            wait_until(
                f"{threshold} new sent",
                lambda t=threshold: (
                    sum(x.new_sent for x in loaders) >= t or not any(x.is_alive() for x in loaders)
                ),
                LOAD_TIMEOUT,
                0.02,
            )
            time.sleep(delay)
            restarts.append(kill_and_restart(server, up))
        join_all(loaders, LOAD_TIMEOUT)
    finally:
        stop.set()
        up.set()
    load_seconds = time.monotonic() - began
    server.kill()

    requests = all_requests(loaders)
    unanswered = [r for r in requests if r.status is None]
    # A delete sent again after its first copy went through meets a 404; any other 4xx
    # would be the load generator's mistake, a 5xx the server's.
    errors = [
        r
        for r in requests
        if r.status is not None and r.status >= 400 and (r.kind, r.status) != ("delete", 404)
    ]
    dsn = settings.postgres_dsn.get_secret_value()
    pending = scalar(dsn, "SELECT count(*) FROM outbox")
    env = stack_env(settings, SOMA_REDIS_PREFIX=settings.redis_key_prefix)
    settle_began = time.monotonic()
    drained, reconciled = drain_and_reconcile(env)
    settled = time.monotonic() - settle_began
    uri, collection = settings.milvus_uri, settings.milvus_collection
    # 50 embedded vectors compared with their texts (test_crash_under_load compares 200).
    verdict = verify(loaders, dsn, uri, collection, tenant.id, stack.embedder.embed, 50)
    cache = MemoryCache(create_redis_client(settings), settings)
    try:
        history = verify_history(loaders, dsn, uri, collection, tenant.id, cache)
    finally:
        cache.close()
    print(
        f"\ncrash during history load (seed {SEED}): load {load_seconds:.0f} s, "
        f"{len(requests)} requests ({summary(requests)}); {len(restarts)} kills, restarts "
        f"{[round(s, 1) for s in restarts]} s; outbox pending before the drain: {pending}; "
        f"{drained}; {reconciled.splitlines()[-1]} (drain and reconcile {settled:.0f} s, "
        f"verify {time.monotonic() - settle_began - settled:.0f} s)\n{verdict.line()}\n"
        f"{history.line()}"
    )
    assert verdict.problems == [], "\n".join(verdict.problems[:30])
    assert history.problems == [], "\n".join(history.problems[:30])
    assert sum(x.new_sent for x in loaders) == NEW_MEMORIES
    assert len(restarts) == KILLS
    assert unanswered, "no kill caught a request in flight"
    assert not errors, "\n".join(r.describe() for r in errors[:10])
    # Each kind of change happened often enough to count (at 450 new memories about 70
    # supersessions, 180 replaces and 40 deletes).
    assert history.by_change.get("superseded", 0) > NEW_MEMORIES * 0.05
    assert history.by_change.get("replaced", 0) > NEW_MEMORIES * 0.1
    assert history.by_change.get("deleted", 0) > NEW_MEMORIES * 0.03
    assert history.superseded_rows > NEW_MEMORIES * 0.02
