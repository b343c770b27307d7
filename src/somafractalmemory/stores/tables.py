"""SQLAlchemy Core descriptions of the tables, for building queries.

These never create anything: the schema is made by the Alembic migrations alone, and
``validate_infrastructure()`` checks that the database is at the migrations' head.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("key_hash", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

# One table of records: the coordinate memories (namespace '{}', path '') and the namespaced
# items. A memory's key is its canonical coordinate; an item's, the caller's string key.
records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("namespace", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("namespace_path", sa.Text(collation="C"), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("memory_type", sa.Text),
    sa.Column("payload", postgresql.JSONB, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("importance", sa.Float),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("text_tsv", postgresql.TSVECTOR),
    sa.Column("client_vector", postgresql.ARRAY(sa.REAL)),
    sa.Column("space", sa.Text),
    sa.Column("ttl_minutes", sa.Float),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)
# The memories are the records of the empty namespace.
IS_MEMORY = records.c.namespace_path == ""
IS_ITEM = records.c.namespace_path != ""

links = sa.Table(
    "links",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("from_id", sa.BigInteger, sa.ForeignKey("records.id"), nullable=False),
    sa.Column("to_id", sa.BigInteger, sa.ForeignKey("records.id"), nullable=False),
    sa.Column("link_type", sa.Text, nullable=False),
    sa.Column("strength", sa.Float, nullable=False),
    sa.Column("metadata", postgresql.JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# One outbox: an entry names a record whose Milvus side is about to change; ``coord`` and no
# ``collections`` for a memory (the memories' collection), ``collections`` for an item.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("tenant_id", sa.BigInteger, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("coord", sa.Text),
    sa.Column("record_id", sa.BigInteger, nullable=False),
    sa.Column("collections", postgresql.ARRAY(sa.Text)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

reconcile_runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tenants", sa.Integer, nullable=False),
    sa.Column("missing", sa.Integer, nullable=False),
    sa.Column("orphans", sa.Integer, nullable=False),
    sa.Column("repaired", sa.Boolean, nullable=False),
)

# One row: the database's uuid (migration 0006); Milvus collections carry it as their owner.
database_identity = sa.Table(
    "database_identity",
    metadata,
    sa.Column("one_row", sa.Boolean, primary_key=True),
    sa.Column("uuid", postgresql.UUID(as_uuid=False), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
