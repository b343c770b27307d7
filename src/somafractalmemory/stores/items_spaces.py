"""The tenants' registered embedding spaces (a base of ``ItemsRepository``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from somafractalmemory.models import (
    Space,
)
from somafractalmemory.stores.items_tables import embedding_spaces
from somafractalmemory.stores.postgres import PostgresStore, UnitOfWork
from somafractalmemory.stores.tables import records


def _space(row: Any) -> Space:
    return Space(row.name, int(row.dimension), row.metric, row.collection, int(row.tenant_id))


class SpaceQueries:
    """Reads and writes of ``embedding_spaces``."""

    store: PostgresStore

    def spaces(self, tenant_id: int | None = None) -> list[Space]:
        """The tenant's registered spaces (every tenant's when ``tenant_id`` is None)."""
        query = sa.select(embedding_spaces).order_by(embedding_spaces.c.id)
        if tenant_id is not None:
            query = query.where(embedding_spaces.c.tenant_id == tenant_id)
        with self.store.reading("item_spaces") as conn:
            return [_space(r) for r in conn.execute(query)]

    def space(self, tenant_id: int, name: str) -> Space | None:
        """The tenant's space called ``name``, or None."""
        query = sa.select(embedding_spaces).where(
            embedding_spaces.c.tenant_id == tenant_id, embedding_spaces.c.name == name
        )
        with self.store.reading("item_space") as conn:
            row = conn.execute(query).first()
        return _space(row) if row else None

    def insert_space(self, uow: UnitOfWork, tenant_id: int, space: Space) -> None:
        """Register a space (the unique name per tenant turns a duplicate into a conflict)."""
        with self.store.translated("item_insert_space"):
            uow.conn.execute(
                sa.insert(embedding_spaces).values(
                    tenant_id=tenant_id,
                    name=space.name,
                    dimension=space.dimension,
                    metric=space.metric,
                    collection=space.collection,
                )
            )

    def delete_space(
        self, uow: UnitOfWork, tenant_id: int, name: str
    ) -> list[tuple[tuple[str, ...], str]]:
        """Forget a space and every item that had vectors in it; returns their (namespace,
        key)."""
        with self.store.translated("item_delete_space"):
            deleted = uow.conn.execute(
                sa.delete(records)
                .where(records.c.tenant_id == tenant_id, records.c.space == name)
                .returning(records.c.namespace, records.c.key)
            ).all()
            uow.conn.execute(
                sa.delete(embedding_spaces).where(
                    embedding_spaces.c.tenant_id == tenant_id, embedding_spaces.c.name == name
                )
            )
        return [(tuple(row.namespace), row.key) for row in deleted]
