"""The real server SIGKILLed at random moments while 5,000 memories and items beside them
are loaded: afterwards every acknowledged store or put is in both stores, every acknowledged
delete in neither, every unacknowledged request wholly there or wholly absent, and
``reconcile`` finds no drift in any collection (memories' and items').

A uvicorn subprocess on a database, a collection and a Redis key prefix of this module's
own; two clients (:mod:`testkit.loadgen`) write 2,500 new coordinates each, in batches
of 50 (5 of them replacing memories), single stores, replaces, deletes and reads, and send
half of the writes the server did not acknowledge again; half the memories carry their own
vector, so Milvus's copy can be compared exactly. The test
kills the server with SIGKILL (no shutdown, nothing flushed) 3 to 5 times at moments drawn
from a seeded RNG and starts it again each time; the restarted server's drainer runs during
the load. After the load the outbox is drained with ``drain-outbox --grace 0`` (the server
stopped), and the stores are checked against every answer the clients got.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.item_verdict import spaces_of, verify_items
from testkit.loadgen import Loader, Mix, all_requests, join_all, summary
from testkit.server import ApiServer, stack_env, wait_until
from testkit.stores import new_tenant, scalar
from testkit.verdict import drain_and_reconcile, verify
from tests.faults.support import crash_server

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SFM_CRASH_SEED", "5"))
CLIENTS = 2
NEW_MEMORIES = 5000
MIX = Mix(
    batch=1,
    single=2,
    replace=1.5,
    delete=1.5,
    get=1,
    batch_size=50,
    replaced_per_batch=5,
    retry=0.5,
    item_put=1.5,
    item_delete=0.5,
    item_get=0.5,
)
LOAD_TIMEOUT = 420.0  # seconds for the whole load, restarts included


@pytest.fixture(scope="module")
def served(test_settings: Settings, tmp_path_factory: Any) -> Iterator[tuple[ApiServer, Settings]]:
    """A migrated database and ensured collections of this module's own; the server on them
    (not started)."""
    with crash_server(test_settings, tmp_path_factory, "crashload") as served:
        yield served


def kill_points(rng: random.Random) -> list[tuple[int, float]]:
    """3 to 5 (new memories sent, extra delay in s) pairs: one kill in each of as many equal
    stretches of the load, at a random point of it."""
    kills = rng.randint(3, 5)
    span = 0.85 / kills
    return [
        (int(NEW_MEMORIES * (0.08 + span * (i + rng.random()))), rng.uniform(0.0, 0.3))
        for i in range(kills)
    ]


def reached(loaders: list[Loader], threshold: int) -> Callable[[], bool]:
    """Whether the clients have sent ``threshold`` new memories (or all stopped)."""
    return lambda: (
        sum(x.new_sent for x in loaders) >= threshold or not any(x.is_alive() for x in loaders)
    )


def test_sigkill_at_random_moments_loses_nothing_acknowledged(
    served: tuple[ApiServer, Settings], stack: Stack, dimension: int
) -> None:
    server, settings = served
    tenant, headers = new_tenant(settings, "crash-load")
    rng = random.Random(SEED)
    points = kill_points(rng)
    began = time.monotonic()

    server.start()
    collections = spaces_of(server.url, headers)
    up, stop = threading.Event(), threading.Event()
    up.set()
    per_client = NEW_MEMORIES // CLIENTS
    loaders = [
        Loader(
            i,
            server.url,
            headers,
            MIX,
            dimension=dimension,
            seed=SEED,
            stop=stop,
            max_new=per_client,
            up=up,
            timeout=60,
        )
        for i in range(CLIENTS)
    ]
    for loader in loaders:
        loader.start()
    kills: list[tuple[float, float, int]] = []  # (when, restart seconds, new memories sent)
    try:
        for threshold, delay in points:
            wait_until(f"{threshold} new sent", reached(loaders, threshold), LOAD_TIMEOUT, 0.02)
            time.sleep(delay)
            up.clear()
            killed_at = time.monotonic()
            server.kill()
            sent = sum(x.new_sent for x in loaders)
            server.start()
            kills.append((killed_at, time.monotonic() - killed_at, sent))
            up.set()
        join_all(loaders, LOAD_TIMEOUT)
    finally:
        stop.set()
        up.set()
    load_seconds = time.monotonic() - began
    server.kill()

    requests = all_requests(loaders)
    unanswered = [r for r in requests if r.status is None]
    timeouts = [r for r in unanswered if "Timeout" in r.error]
    errors = [r for r in requests if r.status is not None and r.status >= 500]
    in_flight = [0] * len(kills)  # the requests each kill cut short
    for request in unanswered:
        ended = request.started + request.seconds
        nearest = min(range(len(kills)), key=lambda i: abs(kills[i][0] - ended), default=None)
        if nearest is not None:
            in_flight[nearest] += 1
    dsn = settings.postgres_dsn.get_secret_value()
    pending = scalar(dsn, "SELECT count(*) FROM outbox")
    env = stack_env(settings, SOMA_REDIS_PREFIX=settings.redis_key_prefix)
    settle_began = time.monotonic()
    drained, reconciled = drain_and_reconcile(env)
    verdict = verify(
        loaders,
        dsn,
        settings.milvus_uri,
        settings.milvus_collection,
        tenant.id,
        stack.embedder.embed,
    )
    print(
        f"\ncrash under load (seed {SEED}): load {load_seconds:.0f} s, "
        f"{len(requests)} requests ({summary(requests)}); "
        f"{len(kills)} kills at {[k[2] for k in kills]} new memories, restarts "
        f"{[round(k[1], 1) for k in kills]} s, unanswered per kill {in_flight}; "
        f"outbox pending before the drain: {pending}; {drained}; {reconciled.splitlines()[-1]}; "
        f"settle and verify {time.monotonic() - settle_began:.0f} s\n{verdict.line()}"
    )
    items = verify_items(
        loaders, dsn, settings.milvus_uri, collections, tenant.id, stack.embedder.embed
    )
    print(items.line())
    assert verdict.problems == [], "\n".join(verdict.problems[:30])
    assert items.problems == [], "\n".join(items.problems[:30])
    assert items.acknowledged_present > 0
    assert sum(x.new_sent for x in loaders) == NEW_MEMORIES
    assert len(kills) == len(points) >= 3
    assert unanswered, "no kill caught a request in flight"
    assert not timeouts, "\n".join(r.describe() for r in timeouts[:10])
    assert not errors, "\n".join(r.describe() for r in errors[:10])
    assert verdict.acknowledged_present > NEW_MEMORIES * 0.5
    assert verdict.acknowledged_absent > 0
