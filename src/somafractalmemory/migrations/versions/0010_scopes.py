"""Scopes: records (and their versions) carry an optional ``user_id``, ``agent_id`` and
``session_id``.

An end user's data is found by ``user_id`` in both tables, so ``DELETE /users/{user_id}``
erases the records and every version of them (also of records deleted before). The history
trigger copies the three columns into each version, and a change of scope is a new version.
Each column gets a partial index per tenant (rows without the scope are not indexed);
conversation messages are records of the namespace ``("conversations", <id>)``.
"""

import sqlalchemy as sa
from alembic import op

from somafractalmemory.migrations.ddl import HISTORY_FIELDS_0008, history_trigger_function

revision = "0010"
down_revision = "0009"

SCOPES = ("user_id", "agent_id", "session_id")
# The fields of a version as migration 0008 defined them, and with the scopes.
BEFORE = HISTORY_FIELDS_0008
AFTER = (*BEFORE, *SCOPES)


def upgrade() -> None:
    for column in SCOPES:
        op.add_column("records", sa.Column(column, sa.Text))
        op.add_column("record_history", sa.Column(column, sa.Text))
        op.create_index(
            f"ix_records_{column}",
            "records",
            ["tenant_id", column],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
        )
    op.create_index(
        "ix_record_history_user_id",
        "record_history",
        ["tenant_id", "user_id"],
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.execute(history_trigger_function(AFTER))


def downgrade() -> None:
    op.execute(history_trigger_function(BEFORE))
    op.drop_index("ix_record_history_user_id", table_name="record_history")
    for column in SCOPES:
        op.drop_index(f"ix_records_{column}", table_name="records")
        op.drop_column("record_history", column)
        op.drop_column("records", column)
