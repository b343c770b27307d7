"""A write whose commit went through but whose outbox settling failed leaves no stale copy.

The fault is real: a trigger on ``outbox`` makes deleting this tenant's entries wait for an
advisory lock the test holds, with a 200 ms ``lock_timeout``, so the settle step (the
``DELETE FROM outbox`` after the commit) fails with PostgreSQL's own lock-timeout error and
the client gets a 503 naming PostgreSQL. The write itself is committed; the next GET must
show it (404 after a delete, the new value after a replace), not the copy cached before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from fastapi.testclient import TestClient

from somafractalmemory.models import Tenant
from somafractalmemory.stack import Stack
from testkit.stores import tenant_of

Headers = dict[str, str]
LOCK = 2323  # the advisory lock the trigger waits for


@contextmanager
def settling_fails(stack: Stack, tenant: Tenant) -> Iterator[None]:
    """While inside, removing the tenant's outbox entries times out on a lock."""
    name = f"sfm_test_hold_outbox_{tenant.id}"
    with psycopg.connect(stack.settings.postgres_libpq_dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
            "SET lock_timeout = '200ms' AS "
            f"$$ BEGIN PERFORM pg_advisory_xact_lock({LOCK}); RETURN OLD; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER {name} BEFORE DELETE ON outbox FOR EACH ROW "
            f"WHEN (OLD.tenant_id = {int(tenant.id)}) EXECUTE FUNCTION {name}()"
        )
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
            conn.execute(f"DROP TRIGGER {name} ON outbox")
            conn.execute(f"DROP FUNCTION {name}()")
    stack.memories.drain_outbox(grace_seconds=0)  # the entries the failed settles left
    stack.items.drain_outbox(grace_seconds=0)


def _failed_settle(answer: object) -> None:
    status = getattr(answer, "status_code", None)
    assert status == 503, getattr(answer, "text", answer)
    assert "postgres" in answer.text.lower()  # type: ignore[attr-defined]


def _memory(client: TestClient, auth: Headers, coord: str, text: str) -> int:
    body = {"coord": coord, "payload": {"text": text}}
    return client.post("/memories", headers=auth, json=body).status_code


def _item(client: TestClient, auth: Headers, key: str, text: str) -> int:
    body = {"namespace": ["settle"], "key": key, "value": {"text": text}}
    return client.put("/items", headers=auth, json=body).status_code


def _get_item(client: TestClient, auth: Headers, key: str):  # type: ignore[no-untyped-def]
    return client.get("/items", headers=auth, params={"namespace": ["settle"], "key": key})


@pytest.fixture
def tenant(stack: Stack, auth: Headers) -> Tenant:
    return tenant_of(stack, auth)


def test_memory_delete_whose_settle_fails_is_not_served_from_the_cache(
    client: TestClient, auth: Headers, stack: Stack, tenant: Tenant
) -> None:
    assert _memory(client, auth, "23,1", "the old copy") == 201
    assert client.get("/memories/23,1", headers=auth).status_code == 200
    assert stack.cache.client.exists(stack.cache.memory_key(tenant.id, "23,1"))  # cached
    with settling_fails(stack, tenant):
        _failed_settle(client.delete("/memories/23,1", headers=auth))
        assert stack.postgres.memory_ids(tenant.id, ["23,1"]) == {}  # committed
        assert client.get("/memories/23,1", headers=auth).status_code == 404


def test_memory_replace_whose_settle_fails_is_not_served_from_the_cache(
    client: TestClient, auth: Headers, stack: Stack, tenant: Tenant
) -> None:
    assert _memory(client, auth, "23,2", "the old copy") == 201
    assert client.get("/memories/23,2", headers=auth).json()["payload"]["text"] == "the old copy"
    with settling_fails(stack, tenant):
        body = {"coord": "23,2", "payload": {"text": "the new value"}}
        _failed_settle(client.post("/memories", headers=auth, json=body))
        read = client.get("/memories/23,2", headers=auth)
        assert read.json()["payload"]["text"] == "the new value"


def test_item_delete_whose_settle_fails_is_not_served_from_the_cache(
    client: TestClient, auth: Headers, stack: Stack, tenant: Tenant
) -> None:
    assert _item(client, auth, "gone", "the old copy") == 201  # indexed: through the outbox
    assert _get_item(client, auth, "gone").status_code == 200
    assert stack.cache.client.exists(stack.cache.item_key(tenant.id, ["settle"], "gone"))
    with settling_fails(stack, tenant):
        params = {"namespace": ["settle"], "key": "gone"}
        _failed_settle(client.delete("/items", headers=auth, params=params))
        assert _get_item(client, auth, "gone").status_code == 404


def test_item_replace_whose_settle_fails_is_not_served_from_the_cache(
    client: TestClient, auth: Headers, stack: Stack, tenant: Tenant
) -> None:
    assert _item(client, auth, "kept", "the old copy") == 201
    assert _get_item(client, auth, "kept").json()["value"]["text"] == "the old copy"
    with settling_fails(stack, tenant):
        body = {"namespace": ["settle"], "key": "kept", "value": {"text": "the new value"}}
        _failed_settle(client.put("/items", headers=auth, json=body))
        assert _get_item(client, auth, "kept").json()["value"]["text"] == "the new value"
