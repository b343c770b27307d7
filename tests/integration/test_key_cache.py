"""Key lookups cached in the server's process, emptied by PostgreSQL on every key change.

Against the real PostgreSQL: a revocation through the service, one by plain SQL (the
trigger of migration 0005), a deleted tenant, and the listener's connection killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from somafractalmemory.core.keys import KeyService, TenantCache, hash_key
from somafractalmemory.errors import UnauthorizedError
from somafractalmemory.models import Tenant
from somafractalmemory.stack import Stack

LISTENER_APP = "somafractalmemory-key-events"


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> float:
    """Wait until ``check()`` holds; how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "never happened"
        time.sleep(0.002)
    return time.monotonic() - started


@pytest.fixture
def keys(stack: Stack) -> Iterator[KeyService]:
    """A key service of its own that listens, as the server's does."""
    service = KeyService(stack.postgres)
    service.listen(stack.settings.postgres_libpq_dsn, stack.settings.store_timeout, ttl=30)
    eventually(lambda: service.cache.enabled)
    yield service
    service.close()


def sql(stack: Stack, statement: str, *params: object) -> None:
    with psycopg.connect(stack.settings.postgres_libpq_dsn, autocommit=True) as conn:
        conn.execute(statement, params)


def test_a_found_key_is_cached_and_a_revocation_empties_the_cache(
    keys: KeyService, stack: Stack
) -> None:
    key, info = keys.create("cached")
    tenant = keys.authenticate(key)
    assert keys.cache.get(hash_key(key)) == tenant
    assert KeyService(stack.postgres).revoke(info.id)  # another process would do the same
    eventually(lambda: keys.cache.get(hash_key(key)) is None, seconds=1.0)
    with pytest.raises(UnauthorizedError):
        keys.authenticate(key)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = %s",
        "DELETE FROM api_keys WHERE tenant_id = %s",
    ],
)
def test_a_key_changed_by_plain_sql_is_refused_at_once(
    keys: KeyService, stack: Stack, statement: str
) -> None:
    key, _info = keys.create(f"sql-{statement[:6]}")
    tenant = keys.authenticate(key)
    assert keys.cache.get(hash_key(key)) == tenant
    sql(stack, statement, tenant.id)
    eventually(lambda: keys.cache.get(hash_key(key)) is None, seconds=1.0)
    with pytest.raises(UnauthorizedError):
        keys.authenticate(key)


def test_the_cache_is_off_while_the_listener_has_no_connection(
    keys: KeyService, stack: Stack
) -> None:
    key, info = keys.create("listener-killed")
    keys.authenticate(key)
    sql(
        stack,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database()",
        LISTENER_APP,
    )
    eventually(lambda: not keys.cache.enabled)
    assert keys.cache.get(hash_key(key)) is None
    # Revoked while nothing listens: the lookup reads PostgreSQL.
    assert KeyService(stack.postgres).revoke(info.id)
    with pytest.raises(UnauthorizedError):
        keys.authenticate(key)
    eventually(lambda: keys.cache.enabled)  # reconnected (backoff from 0.25 s)
    other, _ = keys.create("listener-back")
    assert keys.authenticate(other) == keys.cache.get(hash_key(other))


def test_an_answer_read_before_a_change_is_not_kept_after_it() -> None:
    cache = TenantCache()
    tenant = Tenant(id=1, name="t")
    assert cache.get(b"k") is None
    cache.put(b"k", tenant, cache.generation)
    assert cache.get(b"k") is None  # disabled: nothing listens yet
    cache.reset(enabled=True)
    before = cache.generation
    cache.reset(enabled=True)  # a change arrives while the lookup reads PostgreSQL
    cache.put(b"k", tenant, before)
    assert cache.get(b"k") is None
    cache.put(b"k", tenant, cache.generation)
    assert cache.get(b"k") == tenant


def test_entries_expire_and_the_cache_is_bounded() -> None:
    cache = TenantCache(ttl=0.05, max_entries=2)
    cache.reset(enabled=True)
    for name in (b"a", b"b", b"c"):
        cache.put(name, Tenant(id=1, name="t"), cache.generation)
    assert cache.get(b"a") is None  # emptied when full
    assert cache.get(b"c") is not None
    time.sleep(0.06)
    assert cache.get(b"c") is None


def test_the_server_refuses_a_revoked_key_within_a_second(client: TestClient, stack: Stack) -> None:
    key, info = stack.keys.create("server-revocation")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/stats", headers=headers).status_code == 200
    assert client.get("/stats", headers=headers).status_code == 200  # may be from the cache
    assert stack.keys.revoke(info.id)
    took = eventually(lambda: client.get("/stats", headers=headers).status_code == 401, 1.0)
    assert took < 1.0


def test_a_cache_time_of_zero_leaves_every_lookup_to_postgresql(stack: Stack) -> None:
    service = KeyService(stack.postgres)
    service.listen(stack.settings.postgres_libpq_dsn, stack.settings.store_timeout, ttl=0)
    key, _info = service.create("never-cached")
    service.authenticate(key)
    assert not service.cache.enabled
    assert service.cache.get(hash_key(key)) is None
    service.close()
