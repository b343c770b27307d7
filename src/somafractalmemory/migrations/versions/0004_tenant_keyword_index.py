"""Keyword search index per tenant: GIN over (tenant_id, text_tsv) with btree_gin.

Every keyword query is scoped to one tenant. With GIN over ``text_tsv`` alone, a word's whole
posting list (every tenant's rows) was read and each row's tenant checked on the heap, so a
small tenant paid for the big ones. The composite index intersects a word with the tenant inside
the index. It replaces ``ix_memories_text_tsv``, which no query needs any more.
``btree_gin`` ships with PostgreSQL (contrib) and is a trusted extension: the database owner
may create it.
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.create_index(
        "ix_memories_tenant_tsv", "memories", ["tenant_id", "text_tsv"], postgresql_using="gin"
    )
    op.drop_index("ix_memories_text_tsv", table_name="memories")


def downgrade() -> None:
    op.create_index("ix_memories_text_tsv", "memories", ["text_tsv"], postgresql_using="gin")
    op.drop_index("ix_memories_tenant_tsv", table_name="memories")
