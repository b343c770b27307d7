"""SQLAlchemy Core descriptions of the item tables (made by migration 0003, never here)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from somafractalmemory.stores.tables import metadata

embedding_spaces = sa.Table(
    "embedding_spaces",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("collection", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("namespace", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("namespace_path", sa.Text(collation="C"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("value", postgresql.JSONB, nullable=False),
    sa.Column("space", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ttl_minutes", sa.Float),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)

item_vectors = sa.Table(
    "item_vectors",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("item_id", sa.BigInteger, sa.ForeignKey("items.id"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("vector", postgresql.ARRAY(sa.REAL), nullable=False),
)

item_outbox = sa.Table(
    "item_outbox",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("item_id", sa.BigInteger, nullable=False),
    sa.Column("collections", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
