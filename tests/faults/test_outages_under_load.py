"""Milvus stopped or frozen, PostgreSQL restarted or frozen, and Redis stopped while clients
keep writing and reading: requests fail fast with a 503 naming the part that is down (or, for
Redis, keep succeeding), nothing hangs, and no acknowledged memory is lost.

One real server (uvicorn subprocess) runs on stores of this module's own: a PostgreSQL
cluster (``initdb``/``pg_ctl``), the fault tests' private Milvus and a private Redis, so each
can be stopped for real. A frozen store (SIGSTOP, then SIGCONT) keeps its connections open
and answers nothing, as a hung server or a partition that drops packets would.
``SOMA_STORE_TIMEOUT`` is 2 s, so a store call gives up after 2 s (PostgreSQL statements
after 4 s). Each test gives two clients (:mod:`testkit.loadgen`) a tenant of their own;
they store (single and batches of 10), replace, delete, read and search (and send half of
the failed writes again) while the test takes a store away and brings it back. Then the
outbox is drained (``drain-outbox --grace 0``, the clients stopped), ``reconcile`` must find
no drift, and the stores must hold what the clients' answers allow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from somafractalmemory.models import Tenant
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.item_verdict import ItemVerdict, spaces_of, verify_items
from testkit.loadgen import Loader, Mix, Request, all_requests, join_all, summary
from testkit.server import ApiServer, stack_env, wait_until
from testkit.stores import drop_collections, ensure_collections, migrate, new_tenant, with_updates
from testkit.verdict import drain_and_reconcile, verify
from tests.faults.support import PrivateMilvus, PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.slow

ANSWER_WITHIN = 10.0  # seconds: every answer, outage or not
CLIENT_TIMEOUT = 20.0  # the clients' own deadline (longer, so a slow answer is measured)
CLIENTS = 2
MIX = Mix(
    batch=1,
    single=3,
    replace=2,
    delete=1,
    get=2,
    search=1,
    batch_size=10,
    replaced_per_batch=2,
    retry=0.5,
)
WARM_UP = 12  # acknowledged writes before the fault
AFTER = 12  # acknowledged writes after recovery
STEP_TIMEOUT = 120.0  # seconds for any phase of a test


@dataclass
class Rig:
    server: ApiServer
    settings: Settings
    postgres: PrivatePostgres
    milvus: PrivateMilvus
    redis: PrivateRedis

    def freeze_milvus(self) -> None:
        """Freeze Milvus (SIGSTOP) for 5 s, then thaw it."""
        self.milvus.freeze()
        try:
            time.sleep(5)
        finally:
            self.milvus.thaw()


class Judged(Protocol):
    """A verdict on the stores after a load (memories' or items')."""

    problems: list[str]

    def line(self) -> str: ...


# The stores judged after a load: (loaders, their tenant, its Authorization header).
Judge = Callable[[list[Loader], Tenant, dict[str, str]], Judged]


@dataclass
class Run:
    """One test's load around one fault: its timeline, the requests and the verdict."""

    requests: list[Request]
    verdict: Judged
    fault_at: float
    recovered_at: float
    notes: list[str] = field(default_factory=list)

    def failed(self) -> list[Request]:
        return [r for r in self.requests if not r.acknowledged]

    def unexpected(self, *stores: str) -> list[Request]:
        """Requests without an answer, or answered with neither a 2xx, a 404 (the clients'
        records check those) nor a 503 naming one of ``stores``."""
        return [
            r
            for r in self.failed()
            if not (
                any(
                    r.status == 503
                    and r.error_class() == f"{store.capitalize()}UnavailableError"
                    and r.detail().startswith(store)
                    for store in stores
                )
                or (r.status == 404 and r.kind in ("delete", "get", "item_delete", "item_get"))
            )
        ]


@pytest.fixture(scope="module")
def rig(
    private_milvus: PrivateMilvus, test_settings: Settings, tmp_path_factory: Any
) -> Iterator[Rig]:
    """The server on a private PostgreSQL cluster, the private Milvus and a private Redis."""
    workdir = Path(tmp_path_factory.mktemp("outages-under-load"))
    postgres = PrivatePostgres()
    redis_server = PrivateRedis(workdir / "redis")
    server: ApiServer | None = None
    settings = test_settings
    try:
        postgres.init()
        postgres.start()
        dsn = postgres.create_database("sfm")
        migrate(dsn)
        redis_server.start()
        settings = with_updates(
            test_settings,
            postgres_dsn=dsn,
            milvus_uri=private_milvus.uri,
            milvus_collection=f"{test_settings.milvus_collection}_outload",
            redis_url=redis_server.url,
            redis_key_prefix="sfm_faults_outload",
        )
        drop_collections(settings.milvus_uri, settings.milvus_collection)
        ensure_collections(settings)
        server = ApiServer(
            settings,
            workdir / "server.log",
            SOMA_REDIS_PREFIX=settings.redis_key_prefix,
            SOMA_STORE_TIMEOUT="2",
            SOMA_OUTBOX_INTERVAL_SECONDS="2",
            SOMA_OUTBOX_GRACE_SECONDS="30",
        )
        server.start()
        yield Rig(server, settings, postgres, private_milvus, redis_server)
    finally:
        if server is not None:
            server.kill()
        redis_server.stop()
        postgres.remove()
        if private_milvus.proc is not None:
            drop_collections(private_milvus.uri, settings.milvus_collection)


def ready(server: ApiServer) -> bool:
    return httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200


def acknowledged_writes(loaders: list[Loader], since: float) -> int:
    return sum(
        1 for r in all_requests(loaders) if r.is_write and r.acknowledged and r.started >= since
    )


def memories_verdict(rig: Rig, embed: Callable[[list[str]], list[list[float]]]) -> Judge:
    """The memories' verdict (:func:`testkit.verdict.verify`) on the rig's stores."""

    def judge(loaders: list[Loader], tenant: Tenant, _headers: dict[str, str]) -> Judged:
        dsn = rig.settings.postgres_dsn.get_secret_value()
        uri, collection = rig.settings.milvus_uri, rig.settings.milvus_collection
        return verify(loaders, dsn, uri, collection, tenant.id, embed)

    return judge


def load_through(
    rig: Rig,
    name: str,
    dimension: int,
    embed: Callable[[list[str]], list[list[float]]],
    fault: Callable[[], None],
    mix: Mix = MIX,
    judge: Judge | None = None,
    prepare: Callable[[dict[str, str]], None] | None = None,
) -> Run:
    """Two clients on a new tenant (``prepare``d with its header first); ``fault`` (which
    takes stores away and brings them back) once they have written a little; more writes once
    the server is ready again; then drain, reconcile and ``judge`` the stores (default: the
    memories', :func:`memories_verdict`)."""
    tenant, headers = new_tenant(rig.settings, name)
    if prepare is not None:
        prepare(headers)
    judge = judge or memories_verdict(rig, embed)
    stop = threading.Event()
    loaders = [
        Loader(
            i,
            rig.server.url,
            headers,
            mix,
            dimension=dimension,
            seed=sum(map(ord, name)),
            stop=stop,
            timeout=CLIENT_TIMEOUT,
        )
        for i in range(CLIENTS)
    ]
    began = time.monotonic()
    for loader in loaders:
        loader.start()
    try:
        wait_until(
            "writes before the fault",
            lambda: acknowledged_writes(loaders, began) >= WARM_UP,
            STEP_TIMEOUT,
            0.1,
        )
        fault_at = time.monotonic()
        fault()
        wait_until("server ready after the fault", lambda: ready(rig.server), STEP_TIMEOUT, 0.5)
        recovered_at = time.monotonic()
        wait_until(
            "writes after recovery",
            lambda: acknowledged_writes(loaders, recovered_at) >= AFTER,
            STEP_TIMEOUT,
            0.1,
        )
    finally:
        stop.set()
    join_all(loaders, CLIENT_TIMEOUT + 10)
    drained, reconciled = drain_and_reconcile(stack_env(rig.settings))
    verdict = judge(loaders, tenant, headers)
    run = Run(all_requests(loaders), verdict, fault_at, recovered_at)
    slowest = max(r.seconds for r in run.requests)
    print(
        f"\n{name}: {time.monotonic() - began:.0f} s, fault to ready "
        f"{recovered_at - fault_at:.1f} s, {len(run.requests)} requests "
        f"({summary(run.requests)}), slowest answer {slowest:.1f} s; "
        f"{drained}; {reconciled.splitlines()[-1]}\n{verdict.line()}"
    )
    return run


def check(run: Run, *stores: str) -> None:
    """What every outage test requires; ``stores`` are the parts taken away (none: nothing
    may fail)."""
    assert run.verdict.problems == [], "\n".join(run.verdict.problems[:30])
    wrong = run.unexpected(*stores) if stores else run.failed()  # no answer counts as wrong
    slow = [r for r in run.requests if r.seconds >= ANSWER_WITHIN]
    assert not wrong + slow, f"{summary(run.requests)}\n" + "\n".join(
        r.describe() for r in (wrong + slow)[:15]
    )
    before = [r for r in run.requests if r.started + r.seconds < run.fault_at]
    assert all(r.acknowledged for r in before), summary(before)
    for store in stores:
        named = [r for r in run.failed() if r.status == 503 and r.detail().startswith(store)]
        assert named, f"no request met the {store} outage: {summary(run.requests)}"


def test_milvus_stopped_mid_load(rig: Rig, stack: Stack, dimension: int) -> None:
    def fault() -> None:
        rig.milvus.stop()
        time.sleep(6)
        rig.milvus.start()

    run = load_through(rig, "milvus-outage", dimension, stack.embedder.embed, fault)
    check(run, "milvus")


def test_milvus_frozen_mid_load(rig: Rig, stack: Stack, dimension: int) -> None:
    """A Milvus that keeps its connections but stops answering (SIGSTOP: a hung server, a
    network partition): each call runs into its deadline, and pymilvus raises that as a raw
    ``grpc.RpcError`` (DEADLINE_EXCEEDED is not retried nor wrapped in a MilvusException),
    which must still become a 503 naming milvus, not a 500 or a dropped connection."""

    run = load_through(rig, "milvus-frozen", dimension, stack.embedder.embed, rig.freeze_milvus)
    check(run, "milvus")


def test_postgres_restarted_mid_load(rig: Rig, stack: Stack, dimension: int) -> None:
    def fault() -> None:
        rig.postgres.restart("fast")
        time.sleep(2)
        rig.postgres.stop("fast")  # and a restart that stays down a few seconds
        time.sleep(4)
        rig.postgres.start()

    run = load_through(rig, "postgres-restart", dimension, stack.embedder.embed, fault)
    check(run, "postgres")


def test_postgres_frozen_mid_load(rig: Rig, stack: Stack, dimension: int) -> None:
    """A PostgreSQL that keeps its connections but stops answering (SIGSTOP: a hung server,
    a partition that drops packets) for longer than any answer may take: new connections
    time out, and a request on a pooled connection must not wait for the server either (its
    ``statement_timeout`` is the server's own, and the server is not running): the client-side
    deadline of every wait (3 x SOMA_STORE_TIMEOUT, 6 s here) gives a 503 naming postgres."""

    def fault() -> None:
        rig.postgres.freeze()
        try:
            time.sleep(ANSWER_WITHIN + 2)
        finally:
            rig.postgres.thaw()

    run = load_through(rig, "postgres-frozen", dimension, stack.embedder.embed, fault)
    check(run, "postgres")


def test_redis_stopped_mid_load(rig: Rig, stack: Stack, dimension: int) -> None:
    def fault() -> None:
        rig.redis.stop()
        time.sleep(6)
        rig.redis.start()
        time.sleep(2)

    run = load_through(rig, "redis-outage", dimension, stack.embedder.embed, fault)
    check(run)


# Items in all four shapes (default text, index false, several paths, a registered space's
# client vectors), put, replaced, deleted and read by the same clients.
ITEM_SPACE = "load8"
ITEM_MIX = Mix(
    item_put=4,
    item_delete=1,
    item_get=1,
    item_forms=(1, 1, 1, 1),
    item_space=ITEM_SPACE,
    retry=0.5,
)


def test_items_through_milvus_frozen_and_postgres_stopped(
    rig: Rig, stack: Stack, dimension: int
) -> None:
    """Item writes and deletes while Milvus freezes (calls in flight run into their deadline:
    the items' own Milvus calls translated into a 503 naming milvus, the write rolled back and
    its outbox entry left for the drainer) and then PostgreSQL stops (sessions cut mid-write:
    503 naming postgres). Afterwards nothing acknowledged is lost, each row holds one vector per
    indexed path in its space, Milvus exactly those, and no outbox entry is left."""
    url = rig.server.url

    def register_space(headers: dict[str, str]) -> None:
        body = {"name": ITEM_SPACE, "dimension": ITEM_MIX.item_space_dimension}
        answer = httpx.post(
            f"{url}/spaces", headers=headers, json={**body, "metric": "cosine"}, timeout=60
        )
        assert answer.status_code == 201, answer.text

    verdicts: list[ItemVerdict] = []

    def judge(loaders: list[Loader], tenant: Tenant, headers: dict[str, str]) -> Judged:
        dsn = rig.settings.postgres_dsn.get_secret_value()
        collections = spaces_of(url, headers)
        verdicts.append(
            verify_items(
                loaders, dsn, rig.settings.milvus_uri, collections, tenant.id, stack.embedder.embed
            )
        )
        return verdicts[0]

    def fault() -> None:
        rig.freeze_milvus()
        wait_until("ready after milvus thawed", lambda: ready(rig.server), STEP_TIMEOUT, 0.5)
        time.sleep(2)
        rig.postgres.stop("fast")
        time.sleep(4)
        rig.postgres.start()

    run = load_through(
        rig, "item-outages", dimension, stack.embedder.embed, fault, ITEM_MIX, judge, register_space
    )
    check(run, "milvus", "postgres")
    forms = verdicts[0].forms
    assert set(forms) == {"text", "plain", "paths", "space"}, forms
