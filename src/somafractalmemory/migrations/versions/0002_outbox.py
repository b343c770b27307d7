"""Vector outbox, reconcile runs, client-supplied vectors."""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # One row per write or delete whose Milvus side is not yet known to be done. Committed
    # before Milvus is touched, removed once both stores agree; see consistency.md.
    op.create_table(
        "vector_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.BigInteger,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("coord", sa.Text, nullable=False),
        sa.Column("memory_id", sa.BigInteger, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_vector_outbox_created", "vector_outbox", ["created_at"])
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenants", sa.Integer, nullable=False),
        sa.Column("missing", sa.Integer, nullable=False),
        sa.Column("orphans", sa.Integer, nullable=False),
        sa.Column("repaired", sa.Boolean, nullable=False),
    )
    # A vector the client supplied (instead of the model's): kept so Milvus can be rebuilt
    # from PostgreSQL alone.
    op.add_column("memories", sa.Column("client_vector", postgresql.ARRAY(sa.REAL), nullable=True))


def downgrade() -> None:
    op.drop_column("memories", "client_vector")
    op.drop_table("reconcile_runs")
    op.drop_table("vector_outbox")
