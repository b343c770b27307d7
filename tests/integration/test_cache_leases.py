"""The cache's leased fills, step by step on the real Redis and PostgreSQL.

The race that ``test_cache_races.py`` provokes with threads, played here in a fixed order: a
read takes its lease and reads the row, the write commits and invalidates, then the read
tries to fill. See ``stores/redis.py``.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from somafractalmemory.stack import Stack
from somafractalmemory.stores.redis import lease_key
from testkit.stores import tenant_of

Headers = dict[str, str]


def test_a_read_that_saw_the_row_before_a_delete_does_not_fill_after_it(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    body = {"coord": "23,10", "payload": {"text": "soon deleted"}}
    assert client.post("/memories", headers=auth, json=body).status_code == 201
    lease = stack.cache.lease(tenant.id, "23,10")  # a GET missed...
    old = stack.postgres.get_memory(tenant.id, "23,10")  # ...and read the row
    assert lease is not None
    assert old is not None
    assert client.delete("/memories/23,10", headers=auth).status_code == 200
    stack.cache.put(tenant.id, old, lease)  # the read's fill comes last
    assert stack.cache.client.get(stack.cache.memory_key(tenant.id, "23,10")) is None
    assert client.get("/memories/23,10", headers=auth).status_code == 404


def test_an_item_read_across_a_replace_does_not_fill_the_old_value(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    body = {"namespace": ["lease"], "key": "k", "value": {"text": "old"}}
    assert client.put("/items", headers=auth, json=body).status_code == 201
    lease = stack.cache.lease_item(tenant.id, ["lease"], "k")
    old = stack.items.repo.get(tenant.id, ["lease"], "k", False)
    assert lease is not None
    assert old is not None
    body["value"] = {"text": "new"}
    assert client.put("/items", headers=auth, json=body).status_code == 200
    stack.cache.put_item(tenant.id, old, lease)
    read = client.get("/items", headers=auth, params={"namespace": ["lease"], "key": "k"})
    assert read.json()["value"] == {"text": "new"}


def test_one_lease_at_a_time_and_a_fill_releases_it(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    body = {"coord": "23,11", "payload": {"text": "cached"}}
    assert client.post("/memories", headers=auth, json=body).status_code == 201
    name = stack.cache.memory_key(tenant.id, "23,11")
    first = stack.cache.lease(tenant.id, "23,11")
    assert first is not None
    assert stack.cache.lease(tenant.id, "23,11") is None  # a second miss reads, no fill
    memory = stack.postgres.get_memory(tenant.id, "23,11")
    assert memory is not None
    stack.cache.put(tenant.id, memory, first)
    assert stack.cache.client.get(name) is not None
    assert stack.cache.client.get(lease_key(name)) is None
    assert client.get("/memories/23,11", headers=auth).json()["payload"] == {"text": "cached"}
    # A write drops the entry; the next GET misses, leases, reads and fills again.
    body["payload"] = {"text": "again"}
    assert client.post("/memories", headers=auth, json=body).status_code == 200
    assert stack.cache.client.get(name) is None
    assert client.get("/memories/23,11", headers=auth).json()["payload"] == {"text": "again"}
    assert stack.cache.client.get(name) is not None
