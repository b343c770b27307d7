"""Initial schema: tenants, API keys, memories (with full-text column), links."""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None


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
    op.create_table(
        "tenants",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        _now("created_at"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("prefix", sa.Text, nullable=False),
        _now("created_at"),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "memories",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        sa.Column("coord", sa.Text, nullable=False),
        sa.Column("memory_type", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("importance", sa.Float, nullable=False),
        _now("created_at"),
        _now("updated_at"),
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
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        _owned_by("memories", "from_id"),
        _owned_by("memories", "to_id"),
        sa.Column("link_type", sa.Text, nullable=False),
        sa.Column("strength", sa.Float, nullable=False),
        sa.Column("metadata", postgresql.JSONB, nullable=False, server_default="{}"),
        _now("created_at"),
        sa.UniqueConstraint("tenant_id", "from_id", "to_id", "link_type", name="uq_links_edge"),
    )
    op.create_index("ix_links_from", "links", ["tenant_id", "from_id"])
    op.create_index("ix_links_to", "links", ["tenant_id", "to_id"])


def downgrade() -> None:
    op.drop_table("links")
    op.drop_table("memories")
    op.drop_table("api_keys")
    op.drop_table("tenants")
