"""Databases and collections of their own, beside a shared stack, for tests and benchmarks.

Everything is named after the stack it stands beside (the test database plus a suffix, the
collection plus the same suffix), so ``make test``, a developer's isolated run and a
benchmark never collide, and everything made here is removed by the code that made it.
:func:`private_stack` is the usual entry point: the settings of a stack of its own (a fresh
migrated database, ensured collections, a Redis key prefix), all dropped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from alembic import command
from psycopg import sql
from pydantic import SecretStr
from pymilvus import MilvusClient

from somafractalmemory.bootstrap import alembic_config
from somafractalmemory.core.keys import hash_key
from somafractalmemory.settings import Settings
from somafractalmemory.stores.milvus import MilvusStore

if TYPE_CHECKING:
    from somafractalmemory.models import Tenant
    from somafractalmemory.stack import Stack


def with_updates(settings: Settings, **updates: Any) -> Settings:
    """A validated copy of ``settings`` with fields replaced (secrets given as plain text)."""
    data = settings.model_dump()
    for key, value in updates.items():
        data[key] = value
    for key, value in list(data.items()):
        if isinstance(value, SecretStr):
            data[key] = value.get_secret_value()
    return Settings.model_validate(data)


# -- PostgreSQL  --------------------------------------------------------------
def sibling_dsn(dsn: str, suffix: str) -> str:
    """The DSN of a database named after the test database plus ``suffix``."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/") + suffix
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _admin(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def recreate_database(dsn: str) -> None:
    """Drop (forcing other sessions off) and create the database named in ``dsn``."""
    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(_admin(dsn), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(dsn: str) -> None:
    """Drop the database named in ``dsn``."""
    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(_admin(dsn), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def migrate(dsn: str) -> None:
    """``alembic upgrade head`` on ``dsn``, in-process."""
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    command.upgrade(alembic_config(url), "head")


def scalar(dsn: str, query: str, *params: object) -> Any:
    """One value from PostgreSQL, on a connection of the test's own."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def new_tenant(settings: Settings, name: str) -> tuple[Tenant, dict[str, str]]:
    """A new tenant (``name`` plus a random suffix) with an API key, on the database of
    ``settings``: the tenant and the ``Authorization`` header carrying its key."""
    from somafractalmemory.core.keys import KeyService
    from somafractalmemory.stack import create_postgres_store

    store = create_postgres_store(settings)
    try:
        key, info = KeyService(store).create(f"{name}-{uuid.uuid4().hex[:8]}")
        tenant = store.tenant_by_name(info.tenant)
    finally:
        store.engine.dispose()
    assert tenant is not None
    return tenant, {"Authorization": f"Bearer {key}"}


def tenant_of(stack: Stack, headers: Mapping[str, str]) -> Tenant:
    """The tenant whose key the ``Authorization: Bearer`` header carries."""
    tenant = stack.postgres.tenant_for_key_hash(hash_key(headers["Authorization"].split()[1]))
    assert tenant is not None
    return tenant


# -- Milvus  -----------------------------------------------------------------
def milvus_client(uri: str, timeout: float = 10) -> MilvusClient:
    """A pymilvus client on a connection of its own.

    pymilvus shares one connection between every client with the same URI and token, and
    ``close()`` removes it for all of them; a private alias keeps the tests' own clients from
    closing the service's connection.
    """
    return MilvusClient(uri=uri, timeout=timeout, alias=f"sfm-faults-{uuid.uuid4().hex}")


def own_connection(uri: str) -> str:
    """The same Milvus server under another URI spelling, hence another pymilvus connection.

    In-process stacks built from the test stack's own URI would share the session stack's
    connection, and closing them would close it for the rest of the run.
    """
    return uri.rstrip("/") if uri.endswith("/") else uri + "/"


def drop_collections(uri: str, base: str) -> None:
    """Drop the collection ``base`` and the item collections named after it."""
    client = milvus_client(uri)
    try:
        for name in client.list_collections():
            if name == base or name.startswith((f"{base}_items", f"{base}_space_")):
                client.drop_collection(name)
    finally:
        client.close()


def ensure_collections(settings: Settings) -> None:
    """Create the memories' and the items' default collection, as bootstrap does.

    Set-up, not what is tested: it waits up to 30 s on Milvus (not the 5 s default store
    timeout), since a shared Milvus busy with other suites' collections loads a new one slowly.
    """
    from somafractalmemory.stack import create_stack
    from somafractalmemory.stores.ownership import read_identity

    stack = create_stack(settings.model_copy(update={"store_timeout": 30.0}))
    try:
        stack.milvus.ensure_collection(stack.embedder.dimension, read_identity(stack.postgres))
        stack.items.ensure_collections()
    finally:
        stack.close()


def tenant_vector_count(uri: str, collection: str, tenant_id: int) -> int:
    """The tenant's entity count, asked of Milvus directly with strong consistency."""
    client = milvus_client(uri)
    try:
        rows = client.query(
            collection,
            filter=f"tenant_id == {int(tenant_id)}",
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
    finally:
        client.close()
    return int(rows[0]["count(*)"])


# -- a stack of its own --------------------------------------------------------------------------
@contextmanager
def private_database(dsn: str, *, migrated: bool = True) -> Iterator[str]:
    """The database ``dsn`` names, created afresh (at the migrations' head unless
    ``migrated`` is false) and dropped on the way out; yields ``dsn``."""
    recreate_database(dsn)
    try:
        if migrated:
            migrate(dsn)
        yield dsn
    finally:
        drop_database(dsn)


@contextmanager
def private_stack(base: Settings, suffix: str, **updates: Any) -> Iterator[Settings]:
    """``base`` with a database, collections and a Redis key prefix of their own, named after
    ``base``'s plus ``suffix`` (prefix ``sfm<suffix>``) unless ``updates`` name them, which
    may replace any other setting too (``milvus_uri`` of a private Milvus, ...).

    The database is fresh and migrated, the collections are dropped and ensured as bootstrap
    leaves them; both are dropped on the way out (the Redis keys expire on their own).
    """
    names: dict[str, Any] = {
        "postgres_dsn": sibling_dsn(base.postgres_dsn.get_secret_value(), suffix),
        "milvus_collection": f"{base.milvus_collection}{suffix}",
        "redis_key_prefix": f"sfm{suffix}",
    }
    settings = with_updates(base, **{**names, **updates})
    with private_database(settings.postgres_dsn.get_secret_value()):
        drop_collections(settings.milvus_uri, settings.milvus_collection)
        try:
            ensure_collections(settings)
            yield settings
        finally:
            drop_collections(settings.milvus_uri, settings.milvus_collection)


def vector_ids(milvus: MilvusStore, tenant_id: int, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` the tenant has in the memories' collection (Strong consistency)."""
    if not ids:
        return set()
    rows = milvus.client.query(
        milvus.collection,
        filter=f"tenant_id == {int(tenant_id)} and id in [{', '.join(str(int(i)) for i in ids)}]",
        output_fields=["id"],
        consistency_level="Strong",
    )
    return {int(row["id"]) for row in rows}
