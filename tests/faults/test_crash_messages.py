"""The real server SIGKILLed twice while two clients post conversation messages: afterwards
every acknowledged message is stored with its text (and its vectors: ``reconcile`` finds no
drift in any collection), every unacknowledged one wholly there or wholly absent, and no
message nobody posted.

The clients (:mod:`testkit.loadgen`, the ``messages`` op) post 5 messages at a time with
their own ids to a conversation each, and send half of the posts the server did not
acknowledge again (the same ids: idempotent, never a 409). After the load the outbox is
drained with ``drain-outbox --grace 0`` (the server stopped) and ``reconcile`` must report
no drift.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from somafractalmemory.settings import Settings
from testkit.loadgen import ABSENT, Loader, Mix, State, all_requests, join_all, summary
from testkit.server import ApiServer, stack_env, wait_until
from testkit.stores import new_tenant
from testkit.verdict import drain_and_reconcile
from tests.faults.support import crash_server

pytestmark = pytest.mark.slow

CLIENTS = 2
NEW_MESSAGES = 400
KILLS_AT = (100, 250)  # new messages sent when the server is killed
MIX = Mix(messages=1, messages_per_post=5, own_vectors=0.0, retry=0.5)
LOAD_TIMEOUT = 180.0


@pytest.fixture
def served(test_settings: Settings, tmp_path_factory: Any) -> Iterator[tuple[ApiServer, Settings]]:
    with crash_server(test_settings, tmp_path_factory, "crashmsg") as served:
        yield served


def stored_messages(dsn: str, tenant_id: int) -> dict[tuple[str, str], tuple[str, int]]:
    """(conversation path, id) -> (content, vectors) of the tenant's messages."""
    with psycopg.connect(dsn) as conn:
        return {
            (path, key): (content, int(vectors))
            for path, key, content, vectors in conn.execute(
                "SELECT r.namespace_path, r.key, r.payload->>'content', "
                "(SELECT count(*) FROM record_vectors v WHERE v.record_id = r.id) "
                "FROM records r WHERE r.tenant_id = %s",
                (tenant_id,),
            )
        }


def sent(loaders: list[Loader], threshold: int) -> Callable[[], bool]:
    """Whether the clients have sent ``threshold`` new messages (or all stopped)."""
    return lambda: (
        sum(x.new_sent for x in loaders) >= threshold or not any(x.is_alive() for x in loaders)
    )


def test_sigkill_during_message_ingestion_loses_no_acknowledged_message(
    served: tuple[ApiServer, Settings], dimension: int
) -> None:
    server, settings = served
    tenant, headers = new_tenant(settings, "crash-messages")
    began = time.monotonic()
    server.start()
    started = time.monotonic() - began
    up, stop = threading.Event(), threading.Event()
    up.set()
    loaders = [
        Loader(
            i,
            server.url,
            headers,
            MIX,
            dimension=dimension,
            seed=7,
            stop=stop,
            max_new=NEW_MESSAGES // CLIENTS,
            up=up,
            timeout=60,
        )
        for i in range(CLIENTS)
    ]
    for loader in loaders:
        loader.start()
    try:
        for threshold in KILLS_AT:
            wait_until(f"{threshold} messages sent", sent(loaders, threshold), LOAD_TIMEOUT, 0.02)
            up.clear()
            server.kill()
            server.start()
            up.set()
        join_all(loaders, LOAD_TIMEOUT)
    finally:
        stop.set()
        up.set()
    server.kill()
    loaded = time.monotonic() - began

    requests = all_requests(loaders)
    dsn = settings.postgres_dsn.get_secret_value()
    drain_and_reconcile(stack_env(settings, SOMA_REDIS_PREFIX=settings.redis_key_prefix))
    settled = time.monotonic() - began - loaded
    rows = stored_messages(dsn, tenant.id)
    problems = [v for loader in loaders for v in loader.violations]
    acknowledged = 0
    written: set[tuple[str, str]] = set()
    for loader in loaders:
        path = f"conversations.{loader.conversation}"
        for key, states in loader.message_states.items():
            written.add((path, key))
            found = rows.get((path, key))
            final: State = found[0] if found else ABSENT
            acknowledged += states == {final} and final is not ABSENT
            if final not in states:
                problems.append(f"message {path}/{key}: stored {final!r}, possible {states}")
            if found is not None and found[1] != 1:
                problems.append(f"message {path}/{key}: {found[1]} vectors, not 1")
    problems.extend(f"a message nobody posted: {k}" for k in sorted(set(rows) - written))
    print(
        f"\nmessages under SIGKILL: {summary(requests)}; {acknowledged} acknowledged present; "
        f"first start {started:.0f} s, load with {len(KILLS_AT)} restarts {loaded:.0f} s, "
        f"drain and reconcile {settled:.0f} s"
    )
    assert problems == [], "\n".join(problems[:30])
    assert sum(x.new_sent for x in loaders) == NEW_MESSAGES
    assert acknowledged > NEW_MESSAGES * 0.5
    assert any(r.status is None for r in requests), "no kill caught a post in flight"
