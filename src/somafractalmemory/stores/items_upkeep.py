"""Item queries of the maintenance paths: the outbox, the TTL sweep, reconciliation.

A base of :class:`~somafractalmemory.stores.items_postgres.ItemsRepository`; writes run on a
:class:`UnitOfWork` the item service commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from somafractalmemory.models import ItemOutboxEntry, Scopes
from somafractalmemory.stores.items_tables import record_vectors
from somafractalmemory.stores.milvus_filters import scope_attrs, state_attrs
from somafractalmemory.stores.postgres import PostgresStore, UnitOfWork
from somafractalmemory.stores.tables import claimable_outbox, outbox, records


class ItemUpkeep:
    """Outbox entries, expired items and the vector ids reconciliation compares."""

    store: PostgresStore

    def expired_ids(
        self, limit: int, tenant_id: int | None = None
    ) -> list[tuple[int, int, str | None]]:
        """(item id, tenant id, space) of expired items (of one tenant, or all), oldest
        expiry first."""
        query = (
            sa.select(records.c.id, records.c.tenant_id, records.c.space)
            .where(records.c.expires_at <= sa.func.now())
            .order_by(records.c.expires_at)
            .limit(limit)
        )
        if tenant_id is not None:
            query = query.where(records.c.tenant_id == tenant_id)
        with self.store.reading("item_expired") as conn:
            return [(int(r.id), int(r.tenant_id), r.space) for r in conn.execute(query)]

    def vector_ids(self, tenant_id: int, space_name: str) -> dict[int, int]:
        """Every vector id the tenant's items hold in the space, mapped to its item id."""
        query = (
            sa.select(record_vectors.c.id, record_vectors.c.record_id)
            .join(records, records.c.id == record_vectors.c.record_id)
            .where(records.c.tenant_id == tenant_id, records.c.space == space_name)
        )
        with self.store.reading("item_vector_ids") as conn:
            return {int(r.id): int(r.record_id) for r in conn.execute(query)}

    def vector_meta(self, item_ids: Sequence[int]) -> dict[int, tuple[str, dict[str, Any]]]:
        """(namespace path, attrs) of each existing record among ``item_ids``: what its
        entities carry besides the vector. The attrs are the record's state keys (those of
        the memories' entities, :func:`state_attrs`: none for a current record without a
        validity bound) and its scopes (:func:`scope_attrs`); repairs, moves and the v2
        migration take them from here."""
        if not item_ids:
            return {}
        query = sa.select(
            records.c.id,
            records.c.namespace_path,
            records.c.superseded_by,
            records.c.valid_from,
            records.c.valid_to,
            records.c.user_id,
            records.c.agent_id,
            records.c.session_id,
        ).where(records.c.id.in_(list(item_ids)))
        with self.store.reading("item_vector_meta") as conn:
            return {
                int(r.id): (
                    str(r.namespace_path),
                    {
                        **state_attrs(r.superseded_by is not None, r.valid_from, r.valid_to),
                        **scope_attrs(Scopes(r.user_id, r.agent_id, r.session_id)),
                    },
                )
                for r in conn.execute(query)
            }

    def unclaimed(self, item_ids: Sequence[int]) -> list[int]:
        """Those of ``item_ids`` that no item row has and no outbox entry names: their
        vectors belong to no write in flight and are safe to delete."""
        if not item_ids:
            return []
        query = sa.text(
            "SELECT i FROM unnest(CAST(:ids AS bigint[])) AS i "
            "WHERE NOT EXISTS (SELECT 1 FROM records WHERE records.id = i) "
            "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.record_id = i)"
        )
        with self.store.reading("item_unclaimed") as conn:
            return [int(i) for i in conn.execute(query, {"ids": list(item_ids)}).scalars()]

    def delete_expired_plain(
        self, uow: UnitOfWork, limit: int, tenant_id: int | None = None
    ) -> int:
        """Delete up to ``limit`` expired items that have no vectors (of one tenant, or
        all); returns how many."""
        where = [records.c.expires_at <= sa.func.now(), records.c.space.is_(None)]
        if tenant_id is not None:
            where.append(records.c.tenant_id == tenant_id)
        victims = (
            sa.select(records.c.id)
            .where(*where)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.store.translated("item_sweep_plain"):
            result = uow.conn.execute(sa.delete(records).where(records.c.id.in_(victims)))
        return int(result.rowcount)

    def lock_expired(self, uow: UnitOfWork, ids: Sequence[int]) -> list[int]:
        """Lock those of ``ids`` that are still expired (a refresh may have saved them)."""
        if not ids:
            return []
        query = (
            sa.select(records.c.id)
            .where(records.c.id.in_(list(ids)), records.c.expires_at <= sa.func.now())
            .with_for_update(skip_locked=True)
        )
        with self.store.translated("item_lock_expired"):
            return [int(i) for i in uow.conn.execute(query).scalars()]

    def add_outbox(
        self, uow: UnitOfWork, tenant_id: int, entries: Sequence[tuple[int, list[str]]]
    ) -> list[int]:
        """Record (item id, collections) pairs whose Milvus side is about to change."""
        if not entries:
            return []
        statement = (
            sa.insert(outbox)
            .values(
                [{"tenant_id": tenant_id, "record_id": i, "collections": c} for i, c in entries]
            )
            .returning(outbox.c.id)
        )
        with self.store.translated("item_add_outbox"):
            return [int(i) for i in uow.conn.execute(statement).scalars()]

    def remove_outbox(self, uow: UnitOfWork, ids: Sequence[int]) -> None:
        """Forget entries whose Milvus side is done."""
        if ids:
            with self.store.translated("item_remove_outbox"):
                uow.conn.execute(sa.delete(outbox).where(outbox.c.id.in_(list(ids))))

    def claim_outbox(
        self, uow: UnitOfWork, older_than_seconds: float, limit: int
    ) -> list[ItemOutboxEntry]:
        """Lock up to ``limit`` entries older than the grace period (skipping held ones)."""
        query = claimable_outbox(True, older_than_seconds, limit)
        with self.store.translated("item_claim_outbox"):
            return [
                ItemOutboxEntry(int(r.id), int(r.tenant_id), int(r.record_id), list(r.collections))
                for r in uow.conn.execute(query)
            ]

    def lock_by_id(self, uow: UnitOfWork, item_id: int) -> tuple[int, str | None] | None:
        """(tenant id, space) of the item with this id, locked; None if absent."""
        query = (
            sa.select(records.c.tenant_id, records.c.space)
            .where(records.c.id == item_id)
            .with_for_update()
        )
        with self.store.translated("item_lock_by_id"):
            row = uow.conn.execute(query).first()
        return (int(row.tenant_id), row.space) if row else None
