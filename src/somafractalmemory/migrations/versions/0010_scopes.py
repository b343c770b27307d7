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

revision = "0010"
down_revision = "0009"

SCOPES = ("user_id", "agent_id", "session_id")
# The fields of a version as migration 0008 defined them, and with the scopes.
BEFORE = (
    "namespace",
    "payload",
    "memory_type",
    "importance",
    "text",
    "valid_from",
    "valid_to",
    "superseded_by",
)
AFTER = (*BEFORE, *SCOPES)


def trigger_function(fields: tuple[str, ...]) -> str:
    """Migration 0008's trigger function over ``fields``."""
    copied = ", ".join(fields)
    changed = " OR ".join(f"OLD.{f} IS DISTINCT FROM NEW.{f}" for f in fields)
    values = ", ".join(f"version.{f}" for f in fields)
    return f"""
CREATE OR REPLACE FUNCTION sfm_record_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    version records;
    kind text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        version := OLD;
        kind := 'deleted';
    ELSIF TG_OP = 'INSERT' THEN
        version := NEW;
        kind := 'created';
    ELSIF NOT ({changed}) THEN
        RETURN NULL;
    ELSIF NEW.superseded_by IS NOT NULL
        AND OLD.superseded_by IS DISTINCT FROM NEW.superseded_by THEN
        version := NEW;
        kind := 'superseded';
    ELSE
        version := NEW;
        kind := 'replaced';
    END IF;
    INSERT INTO record_history (
        tenant_id, record_id, namespace_path, key, change, {copied}, api_key_id
    ) VALUES (
        version.tenant_id, version.id, version.namespace_path, version.key, kind,
        {values},
        nullif(current_setting('sfm.api_key_id', true), '')::bigint
    );
    RETURN NULL;
END $$
"""


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
    op.execute(trigger_function(AFTER))


def downgrade() -> None:
    op.execute(trigger_function(BEFORE))
    op.drop_index("ix_record_history_user_id", table_name="record_history")
    for column in SCOPES:
        op.drop_index(f"ix_records_{column}", table_name="records")
        op.drop_column("record_history", column)
        op.drop_column("records", column)
