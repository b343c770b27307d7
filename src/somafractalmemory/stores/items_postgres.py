"""PostgreSQL access for namespaced items, their vectors, embedding spaces and outbox.

Reads open their own connection; writes run inside a :class:`UnitOfWork` that only
the item service commits. Driver errors are translated by
:meth:`PostgresStore.translated`, as for memories. Payload filters (compiled by
:mod:`somafractalmemory.stores.items_sql`, bound parameters only) are applied in the same
statement as the namespace scope, expiry and paging.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert

from somafractalmemory.models import (
    Item,
    ItemVector,
    ItemWrite,
    NamespaceQuery,
    Scopes,
)
from somafractalmemory.stores.items_spaces import SpaceQueries
from somafractalmemory.stores.items_sql import live, namespace_path, scope
from somafractalmemory.stores.items_tables import record_vectors
from somafractalmemory.stores.items_upkeep import ItemUpkeep
from somafractalmemory.stores.postgres import PostgresStore, UnitOfWork
from somafractalmemory.stores.tables import IS_ITEM, records, scope_clauses

_ITEM_COLUMNS = (
    records.c.id,
    records.c.namespace,
    records.c.key,
    records.c.payload.label("value"),
    records.c.space,
    records.c.created_at,
    records.c.updated_at,
    records.c.ttl_minutes,
    records.c.expires_at,
    records.c.user_id,
    records.c.agent_id,
    records.c.session_id,
)
_TEXT_ARRAY = postgresql.ARRAY(sa.Text)


def _item(row: Any) -> Item:
    """A row of ``_ITEM_COLUMNS``, whose names are Item's fields (the namespace a tuple)."""
    return Item(**{**row._mapping, "namespace": tuple(row.namespace)})


class ItemsRepository(SpaceQueries, ItemUpkeep):
    """Typed queries over the items (records of a namespace), their vectors, their spaces
    and their outbox entries; see the module docstring."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    # -- spaces -----------------------------------------------------------------------------
    # -- reads ------------------------------------------------------------------------------
    def get(
        self, tenant_id: int, namespace: Sequence[str], key: str, include_expired: bool
    ) -> Item | None:
        """The item (a plain read: nothing is written or committed)."""
        query = sa.select(*_ITEM_COLUMNS).where(
            records.c.tenant_id == tenant_id,
            records.c.namespace_path == namespace_path(namespace),
            records.c.key == key,
        )
        if not include_expired:
            query = query.where(live())
        with self.store.reading("item_get") as conn:
            row = conn.execute(query).first()
        return _item(row) if row else None

    def refresh_one(self, item: Item) -> Item | None:
        """Extend a live item's TTL in one autocommitted statement; the item as refreshed,
        or None when it is expired (an expired item is never refreshed back to life) or
        gone."""
        statement = (
            sa.update(records)
            .where(records.c.id == item.id, records.c.ttl_minutes.is_not(None), live())
            .values(expires_at=_refreshed_expiry())
            .returning(*_ITEM_COLUMNS)
        )
        with self.store.reading("item_refresh") as conn:
            row = conn.execute(statement).first()
        return _item(row) if row else None

    def refresh(self, ids: Sequence[int]) -> None:
        """Extend the TTL of the live items among ``ids``, in one autocommitted statement."""
        if not ids:
            return
        with self.store.reading("item_refresh") as conn:
            conn.execute(
                sa.update(records)
                .where(records.c.id.in_(list(ids)), records.c.ttl_minutes.is_not(None), live())
                .values(expires_at=_refreshed_expiry())
            )

    def page(
        self,
        tenant_id: int,
        prefix: Sequence[str],
        conditions: dict[str, Any],
        include_expired: bool,
        limit: int,
        offset: int,
        without_space: str | None = None,
        scopes: Scopes | None = None,
    ) -> list[Item]:
        """Matching items, newest first (``updated_at``, then id), ``limit`` after ``offset``.
        ``without_space`` leaves out items with vectors in that space."""
        query = (
            sa.select(*_ITEM_COLUMNS)
            .where(*scope(tenant_id, prefix, conditions, include_expired, scopes))
            .order_by(records.c.updated_at.desc(), records.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        if without_space is not None:
            query = query.where(sa.or_(records.c.space.is_(None), records.c.space != without_space))
        with self.store.reading("item_page") as conn:
            return [_item(r) for r in conn.execute(query)]

    def ranked_ids(
        self,
        tenant_id: int,
        prefix: Sequence[str],
        conditions: dict[str, Any],
        include_expired: bool,
        space: str,
        cap: int,
        scopes: Scopes | None = None,
    ) -> list[int]:
        """Ids of matching items with vectors in ``space``, at most ``cap`` of them."""
        query = (
            sa.select(records.c.id)
            .where(
                *scope(tenant_id, prefix, conditions, include_expired, scopes),
                records.c.space == space,
            )
            .limit(cap)
        )
        with self.store.reading("item_ranked_ids") as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    def matching(
        self,
        tenant_id: int,
        ids: Sequence[int],
        prefix: Sequence[str],
        conditions: dict[str, Any],
        include_expired: bool,
        scopes: Scopes | None = None,
    ) -> dict[int, Item]:
        """Those of ``ids`` that are the tenant's and match the scope, by id."""
        if not ids:
            return {}
        query = sa.select(*_ITEM_COLUMNS).where(
            *scope(tenant_id, prefix, conditions, include_expired, scopes),
            records.c.id.in_(list(ids)),
        )
        with self.store.reading("item_matching") as conn:
            return {int(r.id): _item(r) for r in conn.execute(query)}

    def namespaces(self, tenant_id: int, query: NamespaceQuery) -> list[tuple[str, ...]]:
        """Distinct namespaces (truncated to ``max_depth``) that match, in label order."""
        depth = sa.func.cardinality(records.c.namespace)
        where: list[Any] = [records.c.tenant_id == tenant_id, IS_ITEM]
        if not query.include_expired:
            where.append(live())
        if query.prefix:
            where.append(depth >= len(query.prefix))
            for i, label in enumerate(query.prefix):
                if label != "*":
                    where.append(records.c.namespace[i + 1] == label)
        if query.suffix:
            where.append(depth >= len(query.suffix))
            for i, label in enumerate(query.suffix):
                if label != "*":
                    position = depth - (len(query.suffix) - 1 - i)
                    where.append(records.c.namespace[position] == label)
        ns: Any = records.c.namespace
        if query.max_depth is not None:
            ns = records.c.namespace[1 : query.max_depth]
        ns_col = sa.cast(ns, _TEXT_ARRAY).label("ns")
        inner = sa.select(ns_col).where(*where).distinct().subquery()
        statement = (
            sa.select(inner.c.ns).order_by(inner.c.ns).limit(query.limit).offset(query.offset)
        )
        with self.store.reading("item_namespaces") as conn:
            return [tuple(r) for r in conn.execute(statement).scalars()]

    def vectors_of(self, item_ids: Sequence[int]) -> dict[int, list[tuple[int, ItemVector]]]:
        """The stored vectors of items, by item id: (vector id, vector)."""
        if not item_ids:
            return {}
        query = sa.select(record_vectors).where(record_vectors.c.record_id.in_(list(item_ids)))
        found: dict[int, list[tuple[int, ItemVector]]] = {}
        with self.store.reading("record_vectors_of") as conn:
            for r in conn.execute(query):
                found.setdefault(int(r.record_id), []).append(
                    (int(r.id), ItemVector(r.path, [float(x) for x in r.vector]))
                )
        return found

    def items_page(
        self, tenant_id: int, after_id: int, limit: int, scopes: Scopes | None = None
    ) -> list[Item]:
        """Up to ``limit`` of the tenant's items with id greater than ``after_id``, by id
        (expired ones not yet swept included), of ``scopes`` only when given: one query per
        page, for export."""
        query = (
            sa.select(*_ITEM_COLUMNS)
            .where(records.c.tenant_id == tenant_id, IS_ITEM, records.c.id > after_id)
            .where(*scope_clauses(scopes or Scopes()))
            .order_by(records.c.id)
            .limit(limit)
        )
        with self.store.reading("items_page") as conn:
            return [_item(r) for r in conn.execute(query)]

    def count(self, tenant_id: int) -> int:
        """How many items the tenant has."""
        query = sa.select(sa.func.count()).where(records.c.tenant_id == tenant_id, IS_ITEM)
        with self.store.reading("item_count") as conn:
            return int(conn.execute(query).scalar_one())

    # -- writes -----------------------------------------------------------------------------
    def lock(
        self, uow: UnitOfWork, tenant_id: int, namespace: Sequence[str], key: str
    ) -> tuple[int, str | None] | None:
        """(id, space) of the item, locked until the transaction ends; None if absent."""
        query = (
            sa.select(records.c.id, records.c.space)
            .where(
                records.c.tenant_id == tenant_id,
                records.c.namespace_path == namespace_path(namespace),
                records.c.key == key,
            )
            .with_for_update()
        )
        with self.store.translated("item_lock"):
            row = uow.conn.execute(query).first()
        return (int(row.id), row.space) if row else None

    def reserve_ids(self, uow: UnitOfWork, vectors: int) -> tuple[int, list[int]]:
        """A new item id and ``vectors`` new vector ids, from their sequences."""
        with self.store.translated("item_reserve_ids"):
            item_id = int(
                uow.conn.execute(
                    sa.text("SELECT nextval(pg_get_serial_sequence('records', 'id'))")
                ).scalar_one()
            )
            ids = [
                int(i)
                for i in uow.conn.execute(
                    sa.text("SELECT nextval('record_vectors_id_seq') FROM generate_series(1, :n)"),
                    {"n": vectors},
                ).scalars()
            ]
        return item_id, ids

    def upsert(self, uow: UnitOfWork, tenant_id: int, write: ItemWrite, item_id: int) -> Item:
        """Insert or replace the item; a replace keeps its id and ``created_at``."""
        now = sa.func.clock_timestamp()
        expires = (
            now + sa.func.make_interval(0, 0, 0, 0, 0, 0, write.ttl_minutes * 60)
            if write.ttl_minutes is not None
            else None
        )
        insert = pg_insert(records).values(
            id=item_id,
            tenant_id=tenant_id,
            namespace=list(write.namespace),
            namespace_path=namespace_path(write.namespace),
            key=write.key,
            payload=write.value,
            text=write.text,
            space=write.space.name if write.space is not None and write.vectors else None,
            created_at=now,
            updated_at=now,
            ttl_minutes=write.ttl_minutes,
            expires_at=expires,
        )
        statement = insert.on_conflict_do_update(
            constraint="uq_records_tenant_ns_key",
            set_={
                "payload": insert.excluded.payload,
                "text": insert.excluded.text,
                "space": insert.excluded.space,
                "updated_at": insert.excluded.updated_at,
                "ttl_minutes": insert.excluded.ttl_minutes,
                "expires_at": insert.excluded.expires_at,
            },
        ).returning(*_ITEM_COLUMNS)
        with self.store.translated("item_upsert"):
            return _item(uow.conn.execute(statement).one())

    def replace_vectors(
        self, uow: UnitOfWork, item_id: int, vectors: Sequence[tuple[int, ItemVector]]
    ) -> list[int]:
        """Drop the item's vectors, store these; returns the ids of the dropped ones."""
        with self.store.translated("item_replace_vectors"):
            old = [
                int(i)
                for i in uow.conn.execute(
                    sa.delete(record_vectors)
                    .where(record_vectors.c.record_id == item_id)
                    .returning(record_vectors.c.id)
                ).scalars()
            ]
            if vectors:
                uow.conn.execute(
                    sa.insert(record_vectors),
                    [
                        {"id": vid, "record_id": item_id, "path": v.path, "vector": v.vector}
                        for vid, v in vectors
                    ],
                )
        return old

    def delete(self, uow: UnitOfWork, tenant_id: int, item_ids: Sequence[int]) -> list[int]:
        """Delete the tenant's items among ``item_ids`` (vectors cascade); returns the ids of
        the vectors they had."""
        if not item_ids:
            return []
        with self.store.translated("item_delete"):
            vector_ids = [
                int(i)
                for i in uow.conn.execute(
                    sa.delete(record_vectors)
                    .where(
                        record_vectors.c.record_id.in_(
                            sa.select(records.c.id).where(
                                records.c.tenant_id == tenant_id, records.c.id.in_(list(item_ids))
                            )
                        )
                    )
                    .returning(record_vectors.c.id)
                ).scalars()
            ]
            uow.conn.execute(
                sa.delete(records).where(
                    records.c.tenant_id == tenant_id, records.c.id.in_(list(item_ids))
                )
            )
        return vector_ids


def _refreshed_expiry() -> Any:
    return sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, records.c.ttl_minutes * 60)
