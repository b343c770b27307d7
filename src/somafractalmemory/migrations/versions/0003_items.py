"""Namespaced items (LangGraph-style), their vectors, embedding spaces, the item outbox."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from somafractalmemory.migrations.ddl import (
    create_item_outbox_table,
    create_items_table,
    id_column,
    now,
    owned_by,
)

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    # A tenant's own embedding spaces (vectors it computes itself); each is one Milvus
    # collection, created by an explicit call, never by a write.
    op.create_table(
        "embedding_spaces",
        id_column(),
        owned_by("tenants", "tenant_id"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("collection", sa.Text, nullable=False, unique=True),
        now("created_at"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_embedding_spaces_tenant_name"),
        sa.CheckConstraint("metric IN ('cosine', 'ip', 'l2')", name="ck_embedding_spaces_metric"),
        sa.CheckConstraint(
            "dimension >= 1 AND dimension <= 4096", name="ck_embedding_spaces_dimension"
        ),
    )
    create_items_table()
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
        owned_by("items", "item_id"),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("vector", postgresql.ARRAY(sa.REAL), nullable=False),
    )
    op.execute("ALTER SEQUENCE item_vectors_id_seq OWNED BY item_vectors.id")
    op.create_index("ix_item_vectors_item", "item_vectors", ["item_id"])
    # The items' mirror of vector_outbox: committed before Milvus is touched, removed once
    # both stores agree. `collections` names every collection the write may have touched.
    create_item_outbox_table()


def downgrade() -> None:
    op.drop_table("item_outbox")
    op.drop_table("item_vectors")
    op.execute("DROP SEQUENCE IF EXISTS item_vectors_id_seq")
    op.drop_table("items")
    op.drop_table("embedding_spaces")
