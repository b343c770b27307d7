"""Reads of memories: by coordinate, by id, pages for listing and export, counts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from somafractalmemory.models import (
    Memory,
    MemoryType,
    Scopes,
)
from somafractalmemory.stores.pg_base import PostgresBase, from_row
from somafractalmemory.stores.tables import (
    IS_CURRENT,
    IS_MEMORY,
    links,
    outbox,
    records,
    scope_clauses,
)

MEMORY_COLUMNS = (
    records.c.id,
    records.c.key.label("coord"),
    records.c.payload,
    records.c.memory_type,
    records.c.importance,
    records.c.text,
    records.c.created_at,
    records.c.updated_at,
    records.c.valid_from,
    records.c.valid_to,
    records.c.superseded_by,
    records.c.superseded_at,
    records.c.user_id,
    records.c.agent_id,
    records.c.session_id,
)
# The two reads of every search run as plain SQL on the pooled psycopg connection, without
# SQLAlchemy's execution layer: on two cores that layer costs about 0.5 ms a statement, more
MEMORY_SQL_COLUMNS = (
    "id, key, payload, memory_type, importance, text, created_at, updated_at, "
    "valid_from, valid_to, superseded_by, superseded_at, user_id, agent_id, session_id"
)
_MEMORIES_BY_IDS_SQL = (
    f"SELECT {MEMORY_SQL_COLUMNS} FROM records "
    "WHERE tenant_id = %s AND id = ANY(%s) AND namespace_path = ''"
)


_HAS_SUPERSEDED_SQL = (
    "SELECT EXISTS (SELECT 1 FROM records WHERE tenant_id = %s AND namespace_path = '' "
    "AND superseded_by IS NOT NULL)"
)


# The fields of a memory, in the order of MEMORY_SQL_COLUMNS (``key`` is its ``coord``).
_MEMORY_FIELDS = tuple(column.name for column in MEMORY_COLUMNS)


def memory_from_tuple(row: tuple[Any, ...]) -> Memory:
    """A :class:`Memory` from a row of :data:`MEMORY_SQL_COLUMNS`, in that order."""
    values = dict(zip(_MEMORY_FIELDS, row, strict=False))
    values["memory_type"] = MemoryType(values["memory_type"])
    return Memory(**values)


def memory_from_row(row: Any) -> Memory:
    return from_row(Memory, row, memory_type=MemoryType(row.memory_type))


class MemoryReads(PostgresBase):
    """Reads of the memories table."""

    # -- memories ---------------------------------------------------------------------------
    def get_memory(self, tenant_id: int, coord: str) -> Memory | None:
        """The tenant's memory at ``coord`` (canonical), or None."""
        query = sa.select(*MEMORY_COLUMNS).where(
            records.c.tenant_id == tenant_id, IS_MEMORY, records.c.key == coord
        )
        with self.reading("get_memory") as conn:
            row = conn.execute(query).first()
        return memory_from_row(row) if row else None

    def get_memories_by_ids(self, tenant_id: int, ids: Sequence[int]) -> dict[int, Memory]:
        """The tenant's memories among ``ids``; ids of other tenants or deleted rows are absent."""
        if not ids:
            return {}
        with self.driver_reading("get_memories_by_ids") as conn:
            rows = conn.execute(_MEMORIES_BY_IDS_SQL, (tenant_id, list(ids))).fetchall()
        return {row[0]: memory_from_tuple(row) for row in rows}

    def has_superseded(self, tenant_id: int) -> bool:
        """Whether any of the tenant's memories is superseded (a partial-index probe)."""
        with self.driver_reading("has_superseded") as conn:
            row = conn.execute(_HAS_SUPERSEDED_SQL, (tenant_id,)).fetchone()
        return bool(row and row[0])

    def list_memories(
        self,
        tenant_id: int,
        memory_type: MemoryType | None,
        after_id: int,
        limit: int,
        include_superseded: bool = False,
        scopes: Scopes | None = None,
    ) -> list[Memory]:
        """Up to ``limit`` memories with id greater than ``after_id``, oldest first (current
        ones only unless ``include_superseded``; of ``scopes`` when given)."""
        query = (
            sa.select(*MEMORY_COLUMNS)
            .where(records.c.tenant_id == tenant_id, IS_MEMORY, records.c.id > after_id)
            .order_by(records.c.id)
            .limit(limit)
        )
        if memory_type is not None:
            query = query.where(records.c.memory_type == memory_type.value)
        if not include_superseded:
            query = query.where(IS_CURRENT)
        if scopes is not None:
            query = query.where(*scope_clauses(scopes))
        with self.reading("list_memories") as conn:
            return [memory_from_row(row) for row in conn.execute(query)]

    def memory_ids(self, tenant_id: int, coords: Sequence[str]) -> dict[str, int]:
        """Map each of the tenant's coordinates among ``coords`` to its memory id."""
        query = sa.select(records.c.key.label("coord"), records.c.id).where(
            records.c.tenant_id == tenant_id, IS_MEMORY, records.c.key.in_(list(coords))
        )
        with self.reading("memory_ids") as conn:
            return {row.coord: row.id for row in conn.execute(query)}

    def coords_for_ids(self, tenant_id: int, ids: Sequence[int]) -> dict[int, str]:
        """Map each of the tenant's memory ids among ``ids`` to its coordinate."""
        if not ids:
            return {}
        query = sa.select(records.c.id, records.c.key.label("coord")).where(
            records.c.tenant_id == tenant_id, IS_MEMORY, records.c.id.in_(list(ids))
        )
        with self.reading("coords_for_ids") as conn:
            return {row.id: row.coord for row in conn.execute(query)}

    def count_by_type(self, tenant_id: int) -> tuple[dict[str, int], int]:
        """The tenant's memory counts by type, and its link count."""
        by_type_query = (
            sa.select(records.c.memory_type, sa.func.count())
            .where(records.c.tenant_id == tenant_id, IS_MEMORY)
            .group_by(records.c.memory_type)
        )
        links_query = sa.select(sa.func.count()).where(links.c.tenant_id == tenant_id)
        with self.reading("count_by_type") as conn:
            by_type = {t.value: 0 for t in MemoryType}
            by_type.update({row[0]: int(row[1]) for row in conn.execute(by_type_query)})
            link_count = int(conn.execute(links_query).scalar_one())
        return by_type, link_count

    def all_memory_ids(self, tenant_id: int) -> list[int]:
        """Every memory id of the tenant (for reconciliation and tests)."""
        query = sa.select(records.c.id).where(records.c.tenant_id == tenant_id, IS_MEMORY)
        with self.reading("all_memory_ids") as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    def memories_with_ids(self, ids: Sequence[int]) -> list[tuple[int, Memory, list[float] | None]]:
        """(tenant id, memory, client vector) for each existing id among ``ids``."""
        if not ids:
            return []
        query = sa.select(records.c.tenant_id, records.c.client_vector, *MEMORY_COLUMNS).where(
            records.c.id.in_(list(ids)), IS_MEMORY
        )
        with self.reading("memories_with_ids") as conn:
            return [(r.tenant_id, memory_from_row(r), r.client_vector) for r in conn.execute(query)]

    def unclaimed_orphans(self, ids: Sequence[int]) -> list[int]:
        """Those of ``ids`` that no row has and no outbox entry names: vectors no write in
        flight can still claim, safe to delete."""
        if not ids:
            return []
        query = sa.text(
            "SELECT i FROM unnest(CAST(:ids AS bigint[])) AS i "
            "WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.id = i) "
            "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.record_id = i)"
        )
        with self.reading("unclaimed_orphans") as conn:
            return [int(i) for i in conn.execute(query, {"ids": list(ids)}).scalars()]

    def outbox_size(self) -> int:
        """How many outbox entries wait, memories' and items' (writes whose Milvus side is
        not confirmed)."""
        with self.reading("outbox_size") as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one())

    def memories_page(
        self, tenant_id: int, after_id: int, limit: int, scopes: Scopes | None = None
    ) -> list[tuple[Memory, list[float] | None]]:
        """Up to ``limit`` of the tenant's memories with id greater than ``after_id``, by id,
        each with its client vector (None when the model embedded it), of ``scopes`` only
        when given. One query per page, so a long export never holds a connection between
        pages."""
        query = (
            sa.select(records.c.client_vector, *MEMORY_COLUMNS)
            .where(records.c.tenant_id == tenant_id, IS_MEMORY, records.c.id > after_id)
            .where(*scope_clauses(scopes or Scopes()))
            .order_by(records.c.id)
            .limit(limit)
        )
        with self.reading("memories_page") as conn:
            return [(memory_from_row(r), r.client_vector) for r in conn.execute(query)]

    def memories_at(
        self, tenant_id: int, coords: Sequence[str]
    ) -> dict[str, tuple[Memory, list[float] | None]]:
        """The tenant's memories at ``coords`` (canonical) with their client vectors; absent
        coordinates are missing from the answer. Nothing is locked."""
        if not coords:
            return {}
        query = sa.select(records.c.client_vector, *MEMORY_COLUMNS).where(
            records.c.tenant_id == tenant_id, IS_MEMORY, records.c.key.in_(list(coords))
        )
        with self.reading("memories_at") as conn:
            return {r.coord: (memory_from_row(r), r.client_vector) for r in conn.execute(query)}
