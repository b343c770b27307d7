"""Namespaced items (LangGraph-style), their vectors, embedding spaces, the item outbox."""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"


# This migration's own column helpers (a migration imports nothing that may change later).
def _owned_by(table: str, column: str) -> sa.Column[int]:
    """A NOT NULL reference to ``table``; the row goes when the row it references does."""
    fk = sa.ForeignKey(f"{table}.id", ondelete="CASCADE")
    return sa.Column(column, sa.BigInteger, fk, nullable=False)


def _now(column: str) -> sa.Column[datetime]:
    """A NOT NULL timestamp with time zone, the transaction's time by default."""
    return sa.Column(
        column, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    # A tenant's own embedding spaces (vectors it computes itself); each is one Milvus
    # collection, created by an explicit call, never by a write.
    op.create_table(
        "embedding_spaces",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("collection", sa.Text, nullable=False, unique=True),
        _now("created_at"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_embedding_spaces_tenant_name"),
        sa.CheckConstraint("metric IN ('cosine', 'ip', 'l2')", name="ck_embedding_spaces_metric"),
        sa.CheckConstraint(
            "dimension >= 1 AND dimension <= 4096", name="ck_embedding_spaces_dimension"
        ),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        sa.Column("namespace", postgresql.ARRAY(sa.Text), nullable=False),
        # The labels joined by "." (labels never contain one): the btree below serves
        # prefix queries with `LIKE 'a.b.%'` thanks to the C collation.
        sa.Column("namespace_path", sa.Text(collation="C"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", postgresql.JSONB, nullable=False),
        # The space the item's vectors live in; NULL when it has none (index false).
        sa.Column("space", sa.Text, nullable=True),
        _now("created_at"),
        _now("updated_at"),
        sa.Column("ttl_minutes", sa.Float, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant_id", "namespace_path", "key", name="uq_items_tenant_ns_key"),
        sa.CheckConstraint(
            "cardinality(namespace) BETWEEN 1 AND 10", name="ck_items_namespace_depth"
        ),
        sa.CheckConstraint("char_length(key) BETWEEN 1 AND 512", name="ck_items_key_length"),
        sa.CheckConstraint("ttl_minutes IS NULL OR ttl_minutes > 0", name="ck_items_ttl"),
    )
    op.create_index("ix_items_tenant_updated", "items", ["tenant_id", "updated_at", "id"])
    op.create_index(
        "ix_items_expires",
        "items",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    # One row per vector of an item (several with `x[*]` paths). The id, from its own
    # sequence, is the Milvus primary key; the vector itself is kept so that Milvus can be
    # rebuilt from PostgreSQL alone.
    op.execute("CREATE SEQUENCE item_vectors_id_seq AS bigint")
    op.create_table(
        "item_vectors",
        sa.Column(
            "id",
            sa.BigInteger,
            primary_key=True,
            server_default=sa.text("nextval('item_vectors_id_seq')"),
        ),
        _owned_by("items", "item_id"),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("vector", postgresql.ARRAY(sa.REAL), nullable=False),
    )
    op.execute("ALTER SEQUENCE item_vectors_id_seq OWNED BY item_vectors.id")
    op.create_index("ix_item_vectors_item", "item_vectors", ["item_id"])
    # The items' mirror of vector_outbox: committed before Milvus is touched, removed once
    # both stores agree. `collections` names every collection the write may have touched.
    op.create_table(
        "item_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        sa.Column("item_id", sa.BigInteger, nullable=False),
        sa.Column("collections", postgresql.ARRAY(sa.Text), nullable=False),
        _now("created_at"),
    )
    op.create_index("ix_item_outbox_created", "item_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_table("item_outbox")
    op.drop_table("item_vectors")
    op.execute("DROP SEQUENCE IF EXISTS item_vectors_id_seq")
    op.drop_table("items")
    op.drop_table("embedding_spaces")
