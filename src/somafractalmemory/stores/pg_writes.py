"""The write transaction: every statement that changes a table runs on a :class:`UnitOfWork`,
and only the core services commit it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from somafractalmemory.models import (
    ApiKeyInfo,
    Memory,
    NewMemory,
    OutboxEntry,
    Tenant,
)
from somafractalmemory.stores.pg_base import PostgresBase
from somafractalmemory.stores.pg_history_writes import HistoryWrites
from somafractalmemory.stores.pg_memories import MEMORY_COLUMNS, memory_from_row
from somafractalmemory.stores.tables import (
    IS_MEMORY,
    api_keys,
    claimable_outbox,
    links,
    outbox,
    reconcile_runs,
    records,
    tenants,
)


class UnitOfWork(HistoryWrites):
    """One PostgreSQL transaction. Rolled back on close unless :meth:`commit` was called;
    only the core services call ``commit``."""

    def __init__(self, store: PostgresBase, key_id: int | None = None) -> None:
        self._store = store
        self._key_id = key_id
        self._conn: Connection | None = None
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        with self._store.translated("begin"):
            self._conn = self._store.engine.connect()
            self._conn.begin()
            if self._key_id is not None:
                # Read by the history trigger: who made the changes of this transaction.
                self._conn.execute(
                    sa.text("SELECT set_config('sfm.api_key_id', :id, true)"),
                    {"id": str(self._key_id)},
                )
        return self

    def __exit__(self, *exc_info: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not self._committed:
                conn.rollback()
        except sa.exc.SQLAlchemyError:
            conn.invalidate()  # the connection is broken; the server rolls back on its own
        finally:
            conn.close()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._conn

    def commit(self) -> None:
        """Make the transaction durable."""
        with self._store.translated("commit"):
            self.conn.commit()
        self._committed = True

    # -- tenants and keys -------------------------------------------------------------------
    def ensure_tenant(self, name: str) -> Tenant:
        """The tenant called ``name``, created if it does not exist."""
        with self._store.translated("ensure_tenant"):
            self.conn.execute(
                pg_insert(tenants).values(name=name).on_conflict_do_nothing(index_elements=["name"])
            )
            row = self.conn.execute(
                sa.select(tenants.c.id, tenants.c.name).where(tenants.c.name == name)
            ).one()
        return Tenant(id=row.id, name=row.name)

    def insert_key(self, tenant_id: int, key_hash: bytes, prefix: str) -> ApiKeyInfo:
        """Store a key's hash for the tenant."""
        with self._store.translated("insert_key"):
            row = self.conn.execute(
                sa.insert(api_keys)
                .values(tenant_id=tenant_id, key_hash=key_hash, prefix=prefix)
                .returning(api_keys.c.id, api_keys.c.created_at)
            ).one()
            name = self.conn.execute(
                sa.select(tenants.c.name).where(tenants.c.id == tenant_id)
            ).scalar_one()
        return ApiKeyInfo(
            id=row.id, tenant=name, prefix=prefix, created_at=row.created_at, revoked_at=None
        )

    def revoke_key(self, key_id: int) -> bool:
        """Revoke a key; False when no unrevoked key has that id."""
        with self._store.translated("revoke_key"):
            result = self.conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=sa.func.now())
            )
        return bool(result.rowcount)

    # -- memories ---------------------------------------------------------------------------
    def lock_memories(self, tenant_id: int, coords: Sequence[str]) -> dict[str, Memory]:
        """The existing memories at ``coords``, locked until the transaction ends."""
        query = (
            sa.select(*MEMORY_COLUMNS)
            .where(records.c.tenant_id == tenant_id, IS_MEMORY, records.c.key.in_(list(coords)))
            .with_for_update()
        )
        with self._store.translated("lock_memories"):
            return {row.coord: memory_from_row(row) for row in self.conn.execute(query)}

    def reserve_ids(self, tenant_id: int, coords: Sequence[str]) -> dict[str, int]:
        """The id each coordinate's memory has, or will have if it is new (taken from the
        identity sequence now, so the outbox can name it before the row exists)."""
        with self._store.translated("reserve_ids"):
            existing = {
                row.coord: row.id
                for row in self.conn.execute(
                    sa.select(records.c.key.label("coord"), records.c.id).where(
                        records.c.tenant_id == tenant_id, IS_MEMORY, records.c.key.in_(list(coords))
                    )
                )
            }
            new = [c for c in coords if c not in existing]
            if new:
                fresh = self.conn.execute(
                    sa.text(
                        "SELECT nextval(pg_get_serial_sequence('records', 'id')) "
                        "FROM generate_series(1, :n)"
                    ),
                    {"n": len(new)},
                ).scalars()
                existing.update(zip(new, (int(i) for i in fresh), strict=True))
        return existing

    def add_outbox(self, tenant_id: int, entries: Sequence[tuple[str, int]]) -> list[int]:
        """Record (coord, memory id) pairs whose Milvus side is about to change."""
        statement = sa.insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True)
        rows = [{"tenant_id": tenant_id, "coord": c, "record_id": m} for c, m in entries]
        with self._store.translated("add_outbox"):
            return [int(i) for i in self.conn.execute(statement, rows).scalars()]

    def remove_outbox(self, ids: Sequence[int]) -> None:
        """Forget outbox entries whose Milvus side is done."""
        if ids:
            with self._store.translated("remove_outbox"):
                self.conn.execute(sa.delete(outbox).where(outbox.c.id.in_(list(ids))))

    def claim_outbox(self, older_than_seconds: float, limit: int) -> list[OutboxEntry]:
        """Lock up to ``limit`` outbox entries older than the grace period; entries another
        drainer holds are skipped."""
        query = claimable_outbox(False, older_than_seconds, limit)
        with self._store.translated("claim_outbox"):
            return [
                OutboxEntry(id=r.id, tenant_id=r.tenant_id, coord=r.coord, memory_id=r.record_id)
                for r in self.conn.execute(query)
            ]

    def memories_for_sync(
        self, tenant_id: int, coords: Sequence[str]
    ) -> dict[str, tuple[Memory, list[float] | None]]:
        """The rows at ``coords`` with their client vectors, locked until the end."""
        query = (
            sa.select(records.c.client_vector, *MEMORY_COLUMNS)
            .where(records.c.tenant_id == tenant_id, IS_MEMORY, records.c.key.in_(list(coords)))
            .with_for_update()
        )
        with self._store.translated("memories_for_sync"):
            return {
                r.coord: (memory_from_row(r), r.client_vector) for r in self.conn.execute(query)
            }

    def record_reconcile(
        self, tenants_seen: int, missing: int, orphans: int, repaired: bool
    ) -> None:
        """Keep the outcome of a reconcile run (read back for the drift gauge)."""
        with self._store.translated("record_reconcile"):
            self.conn.execute(
                sa.insert(reconcile_runs).values(
                    finished_at=sa.func.now(),
                    tenants=tenants_seen,
                    missing=missing,
                    orphans=orphans,
                    repaired=repaired,
                )
            )

    def upsert_memories(
        self,
        tenant_id: int,
        items: Sequence[NewMemory],
        ids: dict[str, int] | None = None,
    ) -> dict[str, Memory]:
        """Insert or replace memories by coordinate; a replace keeps ``created_at`` and its id.
        ``ids`` gives new memories the ids reserved for them.

        An item with its own ``created_at`` (import) is created with it, and a replace takes
        it too, so the row ends as the export file describes it."""
        stored: dict[str, Memory] = {}
        given = [item for item in items if item.created_at is not None]
        for group, keep_created in (
            ([item for item in items if item.created_at is None], True),
            (given, False),
        ):
            if group:
                stored.update(self._upsert_group(tenant_id, group, ids, keep_created))
        return stored

    def _upsert_group(
        self,
        tenant_id: int,
        items: Sequence[NewMemory],
        ids: dict[str, int] | None,
        keep_created: bool,
    ) -> dict[str, Memory]:
        # One statement compiled once and sent as executemany: SQLAlchemy's "insertmanyvalues"
        # batches the rows into multi-row INSERTs itself. (Building one .values([...]) per
        # batch instead compiled a statement of rows x columns parameters on every request.)
        now = sa.func.clock_timestamp()
        times = {"created_at": now, "updated_at": now} if keep_created else {"updated_at": now}
        insert = pg_insert(records).values(**times)
        rows = [
            {
                **({"id": ids[item.coord]} if ids else {}),
                "tenant_id": tenant_id,
                "key": item.coord,
                "memory_type": item.memory_type.value,
                "payload": item.payload,
                "text": item.text,
                "importance": item.importance,
                "client_vector": item.vector,
                "valid_from": item.valid_from,
                "valid_to": item.valid_to,
                "user_id": item.user_id,
                "agent_id": item.agent_id,
                "session_id": item.session_id,
                **({} if keep_created else {"created_at": item.created_at}),
            }
            for item in items
        ]
        replaced: dict[str, Any] = {
            "memory_type": insert.excluded.memory_type,
            "payload": insert.excluded.payload,
            "text": insert.excluded.text,
            "importance": insert.excluded.importance,
            "client_vector": insert.excluded.client_vector,
            "updated_at": insert.excluded.updated_at,
            "valid_from": insert.excluded.valid_from,
            "valid_to": insert.excluded.valid_to,
            "user_id": insert.excluded.user_id,
            "agent_id": insert.excluded.agent_id,
            "session_id": insert.excluded.session_id,
            # A write at a key makes its record current again.
            "superseded_by": None,
            "superseded_at": None,
        }
        if not keep_created:
            replaced["created_at"] = insert.excluded.created_at
        statement = insert.on_conflict_do_update(
            constraint="uq_records_tenant_ns_key", set_=replaced
        ).returning(*MEMORY_COLUMNS)
        with self._store.translated("upsert_memories"):
            return {row.coord: memory_from_row(row) for row in self.conn.execute(statement, rows)}

    def delete_memories(self, tenant_id: int, coords: Sequence[str]) -> list[Memory]:
        """Delete the tenant's memories at ``coords`` (their links go with them); returns
        those that were there."""
        if not coords:
            return []
        statement = (
            sa.delete(records)
            .where(records.c.tenant_id == tenant_id, IS_MEMORY, records.c.key.in_(list(coords)))
            .returning(*MEMORY_COLUMNS)
        )
        with self._store.translated("delete_memories"):
            return [memory_from_row(row) for row in self.conn.execute(statement)]

    def upsert_link(
        self,
        tenant_id: int,
        from_id: int,
        to_id: int,
        link_type: str,
        strength: float,
        metadata: dict[str, Any],
    ) -> datetime:
        """Create or update the link (from, to, type); returns its creation time."""
        insert = pg_insert(links).values(
            tenant_id=tenant_id,
            from_id=from_id,
            to_id=to_id,
            link_type=link_type,
            strength=strength,
            metadata=metadata,
        )
        statement = insert.on_conflict_do_update(
            constraint="uq_links_edge",
            set_={"strength": insert.excluded.strength, "metadata": insert.excluded.metadata},
        ).returning(links.c.created_at)
        with self._store.translated("upsert_link"):
            created: datetime = self.conn.execute(statement).scalar_one()
        return created
