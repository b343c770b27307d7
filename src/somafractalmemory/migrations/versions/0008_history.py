"""History: every version of every record, supersession, validity and a text hash.

``record_history`` is append-only (a purge and the retention sweep are the only deletes): a
trigger on ``records`` writes one row per inserted, replaced, superseded and deleted record,
in the same transaction, with the API key the service names in ``sfm.api_key_id`` and the
writing transaction's id (``txid``: the change feed serves a change once every older
transaction has ended, so a resumed reader never skips one that committed late). An update
that changes none of a version's fields (a TTL refresh) writes no row.

``records`` gets ``valid_from`` / ``valid_to`` (when the fact holds in the world),
``superseded_by`` / ``superseded_at`` (the key of the record that replaced it in the same
namespace) and ``text_hash`` (md5 of the indexed text, lower-cased, whitespace collapsed:
exact duplicates). Every existing record gets a ``created`` version recorded at its
``updated_at``, so ``as_of`` reads work for what was stored before this release.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"

# The fields of a version: a change to any of them is a new version.
VERSION_FIELDS = (
    "namespace",
    "payload",
    "memory_type",
    "importance",
    "text",
    "valid_from",
    "valid_to",
    "superseded_by",
)
_COPIED = ", ".join(VERSION_FIELDS)
_CHANGED = " OR ".join(f"OLD.{f} IS DISTINCT FROM NEW.{f}" for f in VERSION_FIELDS)

TRIGGER_FUNCTION = f"""
CREATE FUNCTION sfm_record_history() RETURNS trigger LANGUAGE plpgsql AS $$
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
    ELSIF NOT ({_CHANGED}) THEN
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
        tenant_id, record_id, namespace_path, key, change, {_COPIED}, api_key_id
    ) VALUES (
        version.tenant_id, version.id, version.namespace_path, version.key, kind,
        {", ".join(f"version.{f}" for f in VERSION_FIELDS)},
        nullif(current_setting('sfm.api_key_id', true), '')::bigint
    );
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.add_column("records", sa.Column("valid_from", sa.DateTime(timezone=True)))
    op.add_column("records", sa.Column("valid_to", sa.DateTime(timezone=True)))
    op.add_column("records", sa.Column("superseded_by", sa.Text))
    op.add_column("records", sa.Column("superseded_at", sa.DateTime(timezone=True)))
    op.create_check_constraint(
        "ck_records_validity",
        "records",
        "valid_from IS NULL OR valid_to IS NULL OR valid_to > valid_from",
    )
    # A stored generated column: PostgreSQL computes it on every write, the same rule for
    # every writer (adding it rewrites the table once).
    op.add_column(
        "records",
        sa.Column(
            "text_hash",
            sa.Text,
            sa.Computed(
                "CASE WHEN btrim(text) = '' THEN NULL ELSE "
                "md5(lower(btrim(regexp_replace(text, '\\s+', ' ', 'g')))) END",
                persisted=True,
            ),
        ),
    )
    op.create_index(
        "ix_records_text_hash",
        "records",
        ["tenant_id", "namespace_path", "text_hash"],
        postgresql_where=sa.text("text_hash IS NOT NULL AND superseded_by IS NULL"),
    )

    # Search asks whether a tenant has superseded records at all (a probe of this index).
    op.create_index(
        "ix_records_superseded",
        "records",
        ["tenant_id", "namespace_path"],
        postgresql_where=sa.text("superseded_by IS NOT NULL"),
    )

    op.create_table(
        "record_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.BigInteger,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("namespace_path", sa.Text(collation="C"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("change", sa.Text, nullable=False),
        sa.Column("namespace", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("memory_type", sa.Text),
        sa.Column("importance", sa.Float),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True)),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.Column("superseded_by", sa.Text),
        sa.Column("api_key_id", sa.BigInteger),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
        sa.Column(
            "txid",
            postgresql.BIGINT,
            nullable=False,
            server_default=sa.text("pg_current_xact_id()::text::bigint"),
        ),
        sa.CheckConstraint(
            "change IN ('created', 'replaced', 'superseded', 'deleted')",
            name="ck_record_history_change",
        ),
    )
    op.create_index(
        "ix_record_history_key", "record_history", ["tenant_id", "namespace_path", "key", "id"]
    )
    op.create_index("ix_record_history_record", "record_history", ["record_id"])
    op.create_index("ix_record_history_feed", "record_history", ["tenant_id", "txid", "id"])
    op.create_index("ix_record_history_recorded", "record_history", ["recorded_at"])

    fields = ", ".join(VERSION_FIELDS)
    op.execute(
        f"INSERT INTO record_history (tenant_id, record_id, namespace_path, key, change, "
        f"{fields}, recorded_at) SELECT tenant_id, id, namespace_path, key, 'created', "
        f"{fields}, updated_at FROM records ORDER BY id"
    )
    op.execute(TRIGGER_FUNCTION)
    op.execute(
        "CREATE TRIGGER records_history AFTER INSERT OR UPDATE OR DELETE ON records "
        "FOR EACH ROW EXECUTE FUNCTION sfm_record_history()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER records_history ON records")
    op.execute("DROP FUNCTION sfm_record_history()")
    op.drop_table("record_history")
    op.drop_index("ix_records_superseded", table_name="records")
    op.drop_index("ix_records_text_hash", table_name="records")
    op.drop_column("records", "text_hash")
    op.drop_constraint("ck_records_validity", "records", type_="check")
    for column in ("superseded_at", "superseded_by", "valid_to", "valid_from"):
        op.drop_column("records", column)
