"""Initial schema: tenants, API keys, memories (with full-text column), links."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from somafractalmemory.migrations.ddl import id_column, now, owned_by

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        id_column(),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        now("created_at"),
    )
    op.create_table(
        "api_keys",
        id_column(),
        owned_by("tenants", "tenant_id"),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        now("created_at"),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "memories",
        id_column(),
        owned_by("tenants", "tenant_id"),
        sa.Column("coord", sa.Text, nullable=False),
        sa.Column("memory_type", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("importance", sa.Float, nullable=False),
        now("created_at"),
        now("updated_at"),
        # Keyword recall: a stored tsvector kept by PostgreSQL itself, indexed with GIN.
        sa.Column(
            "text_tsv",
            postgresql.TSVECTOR,
            sa.Computed("to_tsvector('english'::regconfig, text)", persisted=True),
        ),
        sa.UniqueConstraint("tenant_id", "coord", name="uq_memories_tenant_coord"),
        sa.CheckConstraint("memory_type IN ('episodic', 'semantic')", name="ck_memories_type"),
        sa.CheckConstraint("importance >= 0 AND importance <= 1", name="ck_memories_importance"),
    )
    op.create_index("ix_memories_tenant_created", "memories", ["tenant_id", "created_at"])
    op.create_index("ix_memories_text_tsv", "memories", ["text_tsv"], postgresql_using="gin")
    op.create_table(
        "links",
        id_column(),
        owned_by("tenants", "tenant_id"),
        owned_by("memories", "from_id"),
        owned_by("memories", "to_id"),
        sa.Column("link_type", sa.Text, nullable=False),
        sa.Column("strength", sa.Float, nullable=False),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default="{}"),
        now("created_at"),
        sa.UniqueConstraint("tenant_id", "from_id", "to_id", "link_type", name="uq_links_edge"),
    )
    op.create_index("ix_links_from", "links", ["tenant_id", "from_id"])
    op.create_index("ix_links_to", "links", ["tenant_id", "to_id"])


def downgrade() -> None:
    op.drop_table("links")
    op.drop_table("memories")
    op.drop_table("api_keys")
    op.drop_table("tenants")
