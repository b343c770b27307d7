"""One record model: memories and items in one table of records, one vectors table, one outbox.

The memories table becomes ``records`` in place (a rename: its ids, the links' foreign keys,
the listing cursors and the Milvus primary keys of the memories' collection stay valid). A
record has a namespace (``'{}'`` and path ``''`` for the coordinate memories) and a key (a
memory's canonical coordinate, an item's string key). The items are moved into it with new
ids from the records' sequence; ``item_vectors`` becomes ``record_vectors`` and
``vector_outbox`` becomes ``outbox`` (an item's entry names its collections, a memory's
none), the item outbox's entries moved into it.

Nothing is re-embedded. The item collections in Milvus still name each vector's item by its
old id: ``record_moves`` lists (old item id, record id) for every moved item, and
``somafractalmemory migrate`` (bootstrap too) rewrites those entities from
``record_vectors`` before the service starts; ``validate-infra`` refuses to serve while any
move is pending. See docs/technical-manual/records.md. The downgrade splits the table again,
the items keeping their record ids.
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"


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
    op.rename_table("memories", "records")
    op.alter_column("records", "coord", new_column_name="key")
    op.execute("ALTER INDEX ix_memories_tenant_created RENAME TO ix_records_tenant_created")
    op.execute("ALTER INDEX ix_memories_tenant_tsv RENAME TO ix_records_tenant_tsv")
    op.execute("ALTER TABLE records RENAME CONSTRAINT memories_pkey TO records_pkey")
    op.execute("ALTER SEQUENCE memories_id_seq RENAME TO records_id_seq")
    # Adding columns with constant defaults rewrites no row (PostgreSQL 11+).
    op.add_column(
        "records",
        sa.Column(
            "namespace", postgresql.ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")
        ),
    )
    # The labels joined by "." (labels never contain one); '' for the memories. The btree
    # of the unique constraint serves prefix queries with `LIKE 'a.b.%'` (C collation).
    op.add_column(
        "records",
        sa.Column("namespace_path", sa.Text(collation="C"), nullable=False, server_default=""),
    )
    op.add_column("records", sa.Column("space", sa.Text, nullable=True))
    op.add_column("records", sa.Column("ttl_minutes", sa.Float, nullable=True))
    op.add_column("records", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.alter_column("records", "memory_type", nullable=True)
    op.alter_column("records", "importance", nullable=True)
    op.create_unique_constraint(
        "uq_records_tenant_ns_key", "records", ["tenant_id", "namespace_path", "key"]
    )
    op.drop_constraint("uq_memories_tenant_coord", "records", type_="unique")
    op.create_check_constraint(
        "ck_records_memory_fields",
        "records",
        "namespace_path <> '' OR (memory_type IS NOT NULL AND importance IS NOT NULL)",
    )
    op.create_check_constraint(
        "ck_records_namespace_depth", "records", "cardinality(namespace) <= 10"
    )
    op.create_check_constraint(
        "ck_records_key_length", "records", "char_length(key) BETWEEN 1 AND 512"
    )
    op.create_check_constraint(
        "ck_records_ttl", "records", "ttl_minutes IS NULL OR ttl_minutes > 0"
    )
    op.create_index("ix_records_tenant_updated", "records", ["tenant_id", "updated_at", "id"])
    op.create_index(
        "ix_records_expires",
        "records",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )

    # The items, with new ids; record_moves keeps the old id of each for the Milvus step.
    op.create_table(
        "record_moves",
        sa.Column("old_item_id", sa.BigInteger, primary_key=True),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("tenant_id", sa.BigInteger, nullable=False),
    )
    # New ids above every old item id, so that no old id is ever also a new one (the Milvus
    # step finds an item's old entities by the old id). An outbox entry of an item already
    # deleted gets a move too: its stale entities are deleted by that step.
    op.execute(
        "SELECT setval(pg_get_serial_sequence('records', 'id'), greatest("
        "(SELECT last_value FROM records_id_seq), "
        "(SELECT coalesce(max(id), 1) FROM items), "
        "(SELECT coalesce(max(item_id), 1) FROM item_outbox)))"
    )
    op.execute(
        "INSERT INTO record_moves (old_item_id, record_id, tenant_id) "
        "SELECT id, nextval(pg_get_serial_sequence('records', 'id')), tenant_id FROM ("
        "SELECT id, tenant_id FROM items UNION "
        "SELECT item_id, tenant_id FROM item_outbox WHERE item_id NOT IN (SELECT id FROM items)"
        ") AS old ORDER BY id"
    )
    op.execute(
        "INSERT INTO records (id, tenant_id, namespace, namespace_path, key, payload, text, "
        "space, created_at, updated_at, ttl_minutes, expires_at) "
        "SELECT m.record_id, i.tenant_id, i.namespace, i.namespace_path, i.key, i.value, '', "
        "i.space, i.created_at, i.updated_at, i.ttl_minutes, i.expires_at "
        "FROM items i JOIN record_moves m ON m.old_item_id = i.id"
    )

    op.rename_table("item_vectors", "record_vectors")
    op.execute("ALTER SEQUENCE item_vectors_id_seq RENAME TO record_vectors_id_seq")
    op.execute(
        "ALTER TABLE record_vectors ALTER COLUMN id SET DEFAULT nextval('record_vectors_id_seq')"
    )
    op.execute(
        "ALTER TABLE record_vectors RENAME CONSTRAINT item_vectors_pkey TO record_vectors_pkey"
    )
    op.drop_constraint("item_vectors_item_id_fkey", "record_vectors", type_="foreignkey")
    op.alter_column("record_vectors", "item_id", new_column_name="record_id")
    op.execute(
        "UPDATE record_vectors v SET record_id = m.record_id "
        "FROM record_moves m WHERE m.old_item_id = v.record_id"
    )
    op.create_foreign_key(
        "record_vectors_record_id_fkey",
        "record_vectors",
        "records",
        ["record_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.execute("ALTER INDEX ix_item_vectors_item RENAME TO ix_record_vectors_record")

    op.rename_table("vector_outbox", "outbox")
    op.execute("ALTER INDEX ix_vector_outbox_created RENAME TO ix_outbox_created")
    op.alter_column("outbox", "memory_id", new_column_name="record_id")
    op.alter_column("outbox", "coord", nullable=True)
    # NULL: the memories' collection; else every item collection the write may have touched.
    op.add_column("outbox", sa.Column("collections", postgresql.ARRAY(sa.Text), nullable=True))
    op.execute(
        "INSERT INTO outbox (tenant_id, record_id, collections, created_at) "
        "SELECT o.tenant_id, m.record_id, o.collections, o.created_at "
        "FROM item_outbox o JOIN record_moves m ON m.old_item_id = o.item_id"
    )
    op.drop_table("item_outbox")
    op.drop_table("items")


def downgrade() -> None:
    # Back to two tables: the items keep their record ids as item ids (the Milvus entities
    # name them so once the Milvus step has run; a pending move is dropped with its table).
    op.create_table(
        "items",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        sa.Column("namespace", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("namespace_path", sa.Text(collation="C"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", postgresql.JSONB, nullable=False),
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
    op.execute(
        "INSERT INTO items (id, tenant_id, namespace, namespace_path, key, value, space, "
        "created_at, updated_at, ttl_minutes, expires_at) OVERRIDING SYSTEM VALUE "
        "SELECT id, tenant_id, namespace, namespace_path, key, payload, space, created_at, "
        "updated_at, ttl_minutes, expires_at FROM records WHERE namespace_path <> ''"
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('items', 'id'), "
        "(SELECT last_value FROM records_id_seq))"
    )
    op.create_table(
        "item_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        _owned_by("tenants", "tenant_id"),
        sa.Column("item_id", sa.BigInteger, nullable=False),
        sa.Column("collections", postgresql.ARRAY(sa.Text), nullable=False),
        _now("created_at"),
    )
    op.create_index("ix_item_outbox_created", "item_outbox", ["created_at"])
    op.execute(
        "INSERT INTO item_outbox (tenant_id, item_id, collections, created_at) "
        "SELECT tenant_id, record_id, collections, created_at FROM outbox "
        "WHERE collections IS NOT NULL"
    )
    op.execute("DELETE FROM outbox WHERE collections IS NOT NULL")
    op.drop_column("outbox", "collections")
    op.alter_column("outbox", "coord", nullable=False)
    op.alter_column("outbox", "record_id", new_column_name="memory_id")
    op.execute("ALTER INDEX ix_outbox_created RENAME TO ix_vector_outbox_created")
    op.rename_table("outbox", "vector_outbox")

    op.drop_constraint("record_vectors_record_id_fkey", "record_vectors", type_="foreignkey")
    op.alter_column("record_vectors", "record_id", new_column_name="item_id")
    op.create_foreign_key(
        "item_vectors_item_id_fkey",
        "record_vectors",
        "items",
        ["item_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.execute("ALTER INDEX ix_record_vectors_record RENAME TO ix_item_vectors_item")
    op.execute(
        "ALTER TABLE record_vectors RENAME CONSTRAINT record_vectors_pkey TO item_vectors_pkey"
    )
    op.execute("ALTER SEQUENCE record_vectors_id_seq RENAME TO item_vectors_id_seq")
    op.execute(
        "ALTER TABLE record_vectors ALTER COLUMN id SET DEFAULT nextval('item_vectors_id_seq')"
    )
    op.rename_table("record_vectors", "item_vectors")
    op.drop_table("record_moves")

    op.execute("DELETE FROM records WHERE namespace_path <> ''")
    op.drop_index("ix_records_expires", table_name="records")
    op.drop_index("ix_records_tenant_updated", table_name="records")
    for name in ("ttl", "key_length", "namespace_depth", "memory_fields"):
        op.drop_constraint(f"ck_records_{name}", "records", type_="check")
    op.create_unique_constraint("uq_memories_tenant_coord", "records", ["tenant_id", "key"])
    op.drop_constraint("uq_records_tenant_ns_key", "records", type_="unique")
    op.alter_column("records", "importance", nullable=False)
    op.alter_column("records", "memory_type", nullable=False)
    for column in ("expires_at", "ttl_minutes", "space", "namespace_path", "namespace"):
        op.drop_column("records", column)
    op.execute("ALTER SEQUENCE records_id_seq RENAME TO memories_id_seq")
    op.execute("ALTER TABLE records RENAME CONSTRAINT records_pkey TO memories_pkey")
    op.execute("ALTER INDEX ix_records_tenant_tsv RENAME TO ix_memories_tenant_tsv")
    op.execute("ALTER INDEX ix_records_tenant_created RENAME TO ix_memories_tenant_created")
    op.alter_column("records", "key", new_column_name="coord")
    op.rename_table("records", "memories")
