"""SQLAlchemy Core descriptions of the spaces and the vectors of items (made by migrations,
never here)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from somafractalmemory.stores.tables import (
    created_at_column,
    id_column,
    metadata,
    tenant_column,
)

embedding_spaces = sa.Table(
    "embedding_spaces",
    metadata,
    id_column(),
    tenant_column(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("collection", sa.Text, nullable=False),
    created_at_column(),
)

# One row per vector of an item (several with `x[*]` paths). The id, from its own sequence,
# is the Milvus primary key in the space's collection; the vector itself is kept so that
# Milvus can be rebuilt from PostgreSQL alone.
record_vectors = sa.Table(
    "record_vectors",
    metadata,
    id_column(),
    sa.Column("record_id", sa.BigInteger, sa.ForeignKey("records.id"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("vector", postgresql.ARRAY(sa.REAL), nullable=False),
)

# Items moved into the records table by migration 0007 whose Milvus entities still carry the
# old item id (see core/record_moves.py).
record_moves = sa.Table(
    "record_moves",
    metadata,
    sa.Column("old_item_id", sa.BigInteger, primary_key=True),
    sa.Column("record_id", sa.BigInteger, nullable=False),
    sa.Column("tenant_id", sa.BigInteger, nullable=False),
)
