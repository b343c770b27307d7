"""The DDL pieces several migrations write alike.

A released migration must create the same schema forever, so nothing here may change what
it emits once a migration uses it: a new shape is a new function. (These import only
SQLAlchemy, nothing of the application, which is free to change.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def id_column() -> sa.Column[int]:
    """The ``id`` primary key, from the table's own identity sequence."""
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def owned_by(table: str, column: str) -> sa.Column[int]:
    """A NOT NULL reference to ``table``; the row goes when the row it references does."""
    fk = sa.ForeignKey(f"{table}.id", ondelete="CASCADE")
    return sa.Column(column, sa.BigInteger, fk, nullable=False)


def now(column: str) -> sa.Column[datetime]:
    """A NOT NULL timestamp with time zone, the transaction's time by default."""
    return sa.Column(
        column, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def create_expires_index(table: str) -> None:
    """The partial index the TTL sweep reads: rows that expire, by ``expires_at``."""
    op.create_index(
        f"ix_{table}_expires",
        table,
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )


def create_items_table() -> None:
    """The ``items`` table as migration 0003 made it (0007's downgrade makes it again)."""
    op.create_table(
        "items",
        id_column(),
        owned_by("tenants", "tenant_id"),
        sa.Column("namespace", postgresql.ARRAY(sa.Text), nullable=False),
        # The labels joined by "." (labels never contain one): the btree below serves
        # prefix queries with `LIKE 'a.b.%'` thanks to the C collation.
        sa.Column("namespace_path", sa.Text(collation="C"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", postgresql.JSONB, nullable=False),
        # The space the item's vectors live in; NULL when it has none (index false).
        sa.Column("space", sa.Text, nullable=True),
        now("created_at"),
        now("updated_at"),
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
    create_expires_index("items")


def create_item_outbox_table() -> None:
    """The ``item_outbox`` table as migration 0003 made it (0007's downgrade makes it again):
    the items' mirror of ``vector_outbox``, committed before Milvus is touched and removed once
    both stores agree; ``collections`` names every collection the write may have touched."""
    op.create_table(
        "item_outbox",
        id_column(),
        owned_by("tenants", "tenant_id"),
        sa.Column("item_id", sa.BigInteger, nullable=False),
        sa.Column("collections", postgresql.ARRAY(sa.Text), nullable=False),
        now("created_at"),
    )
    op.create_index("ix_item_outbox_created", "item_outbox", ["created_at"])


# The fields of a record's version as migration 0008 defined them (0010 adds the scopes).
HISTORY_FIELDS_0008 = (
    "namespace",
    "payload",
    "memory_type",
    "importance",
    "text",
    "valid_from",
    "valid_to",
    "superseded_by",
)


def history_trigger_function(fields: Sequence[str]) -> str:
    """The function of the ``records_history`` trigger (migration 0008) over the version
    ``fields``: one ``record_history`` row per inserted, changed or deleted record."""
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
