"""PostgreSQL side of the Milvus step of migration 0007 (see :mod:`core.record_moves`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from somafractalmemory.stores.items_tables import record_moves, record_vectors
from somafractalmemory.stores.postgres import PostgresStore, UnitOfWork
from somafractalmemory.stores.tables import records

# A moved record: its value, its space (None: no vectors), the paths of its vectors.
Moved = tuple[dict[str, Any], str | None, list[str]]


class RecordMoves:
    """The moved items still waiting for their Milvus step."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def pending(self) -> int:
        """How many moves wait (0 once the step is done, or on a database made after 0007)."""
        with self.store.reading("record_moves_pending") as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(record_moves)).scalar_one()
            )

    def batch(self, limit: int) -> list[tuple[int, int, int]]:
        """Up to ``limit`` moves as (old item id, record id, tenant id), oldest id first."""
        query = sa.select(record_moves).order_by(record_moves.c.old_item_id).limit(limit)
        with self.store.reading("record_moves_batch") as conn:
            return [
                (int(r.old_item_id), int(r.record_id), int(r.tenant_id))
                for r in conn.execute(query)
            ]

    def records_of(
        self, ids: Sequence[int]
    ) -> dict[int, tuple[dict[str, Any], str | None, list[str]]]:
        """(value, space, the paths of its vectors) of each existing record among ``ids``."""
        query = (
            sa.select(records.c.id, records.c.payload, records.c.space, record_vectors.c.path)
            .outerjoin(record_vectors, record_vectors.c.record_id == records.c.id)
            .where(records.c.id.in_(list(ids)))
        )
        found: dict[int, Moved] = {}
        with self.store.reading("record_moves_records") as conn:
            for r in conn.execute(query):
                paths = found.setdefault(int(r.id), (r.payload, r.space, []))[2]
                if r.path is not None and r.path not in paths:
                    paths.append(r.path)
        return found

    def finish(self, uow: UnitOfWork, old_ids: Sequence[int], texts: dict[int, str]) -> None:
        """Record the Milvus step of these moves as done, with the moved records' texts."""
        conn = uow.conn
        with self.store.translated("record_moves_finish"):
            if texts:
                conn.execute(
                    sa.update(records)
                    .where(records.c.id == sa.bindparam("rid"))
                    .values(text=sa.bindparam("new_text")),
                    [{"rid": rid, "new_text": text} for rid, text in texts.items()],
                )
            conn.execute(
                sa.delete(record_moves).where(record_moves.c.old_item_id.in_(list(old_ids)))
            )
