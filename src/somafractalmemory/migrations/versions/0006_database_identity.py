"""The database's identity: one row, a uuid made when this migration runs.

Milvus collections are stamped with it (``stores/ownership.py``), so that two SFM databases
pointed at one collection are refused at start-up instead of answering each other's vectors.
It is a row, not a server setting, so it travels with ``pg_dump`` and ``pg_restore``.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "database_identity",
        # Always true, and the primary key: the table holds one row at most.
        sa.Column("one_row", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column(
            "uuid",
            postgresql.UUID(as_uuid=False),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("one_row", name="database_identity_one_row"),
    )
    op.execute("INSERT INTO database_identity DEFAULT VALUES")


def downgrade() -> None:
    op.drop_table("database_identity")
