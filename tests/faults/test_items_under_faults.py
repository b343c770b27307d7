"""The real server SIGKILLed twice while clients put, replace, delete and read items in all
four shapes (:data:`testkit.loadgen.ITEM_FORMS`: the default text, ``index: false``, several
paths with one vector per element, a registered space's own vectors): afterwards every
acknowledged put is in PostgreSQL with exactly its vectors and Milvus holds exactly those,
every acknowledged delete is in neither, every unacknowledged write is wholly there or wholly
absent, the item outbox drains to nothing and ``reconcile`` finds no drift.

The server (uvicorn subprocess, :func:`tests.faults.support.crash_server`) runs on a database,
collections and a Redis prefix of this module's own on the shared stores. The kills land at
moments drawn from a seeded RNG, each in the middle of the clients' writes; the restarted
server's drainer leaves entries younger than its grace alone, so ``drain-outbox --grace 0``
after the load settles what the kills left. The Milvus and PostgreSQL outages under item load
are in ``test_outages_under_load.py`` (on its private stores).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.item_verdict import spaces_of, verify_items
from testkit.loadgen import Loader, Mix, all_requests, join_all, summary
from testkit.server import ApiServer, stack_env, wait_until
from testkit.stores import new_tenant
from testkit.verdict import drain_and_reconcile
from tests.faults.support import crash_server, kill_and_restart

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SFM_CRASH_SEED", "5"))
CLIENTS = 2
SPACE = "load8"
MIX = Mix(
    item_put=4, item_delete=1, item_get=1, item_forms=(1, 1, 1, 1), item_space=SPACE, retry=0.5
)
KILLS = 2
AFTER = 20  # acknowledged item writes after the last restart
STEP_TIMEOUT = 180.0  # seconds for any phase, a restart included


@pytest.fixture(scope="module")
def served(test_settings: Settings, tmp_path_factory: Any) -> Iterator[tuple[ApiServer, Settings]]:
    with crash_server(test_settings, tmp_path_factory, "itemcrash") as served:
        yield served


def acknowledged(loaders: list[Loader], since: float = 0.0) -> int:
    return sum(
        1 for r in all_requests(loaders) if r.is_write and r.acknowledged and r.started >= since
    )


def test_sigkill_during_item_writes_loses_nothing_acknowledged(
    served: tuple[ApiServer, Settings], stack: Stack, dimension: int
) -> None:
    server, settings = served
    tenant, headers = new_tenant(settings, "item-crash")
    rng = random.Random(SEED)
    server.start()
    space = {"name": SPACE, "dimension": MIX.item_space_dimension, "metric": "cosine"}
    registered = httpx.post(f"{server.url}/spaces", headers=headers, json=space, timeout=30)
    assert registered.status_code == 201, registered.text
    collections = spaces_of(server.url, headers)

    up, stop = threading.Event(), threading.Event()
    up.set()
    loaders = [
        Loader(i, server.url, headers, MIX, dimension=dimension, seed=SEED, stop=stop, up=up)
        for i in range(CLIENTS)
    ]
    began = time.monotonic()
    for loader in loaders:
        loader.start()
    restarts: list[float] = []
    try:
        for _ in range(KILLS):
            # some acknowledged writes since the (re)start, then a kill at a random moment
            since, count = time.monotonic(), rng.randint(15, 40)

            def enough(since: float = since, count: int = count) -> bool:
                return acknowledged(loaders, since) >= count

            wait_until(f"{count} item writes", enough, STEP_TIMEOUT)
            time.sleep(rng.uniform(0.0, 0.3))
            restarts.append(kill_and_restart(server, up))
        since = time.monotonic()
        wait_until("writes after the kills", lambda: acknowledged(loaders, since) >= AFTER, 120)
    finally:
        stop.set()
        up.set()
    join_all(loaders, 90)
    load_seconds = time.monotonic() - began
    server.kill()

    requests = all_requests(loaders)
    unanswered = [r for r in requests if r.status is None]
    errors = [r for r in requests if r.status is not None and r.status >= 500]
    drained, reconciled = drain_and_reconcile(stack_env(settings))
    verdict = verify_items(
        loaders,
        settings.postgres_dsn.get_secret_value(),
        settings.milvus_uri,
        collections,
        tenant.id,
        stack.embedder.embed,
    )
    print(
        f"\nitems under SIGKILL (seed {SEED}): load {load_seconds:.0f} s, {len(requests)} "
        f"requests ({summary(requests)}); restarts {[round(s, 1) for s in restarts]} s; "
        f"{drained}; {reconciled.splitlines()[-1]}\n{verdict.line()}"
    )
    assert verdict.problems == [], "\n".join(verdict.problems[:30])
    assert not errors, "\n".join(r.describe() for r in errors[:10])
    assert unanswered, "no kill caught a request in flight"
    assert all("Timeout" not in r.error for r in unanswered), summary(unanswered)
    assert set(verdict.forms) == {"text", "plain", "paths", "space"}, verdict.forms
    assert verdict.acknowledged_present > 0
    assert verdict.acknowledged_absent > 0
