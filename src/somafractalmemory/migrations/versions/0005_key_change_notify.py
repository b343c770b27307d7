"""Notify servers when an API key or tenant changes, so they may cache key lookups.

A statement that updates, deletes or truncates ``api_keys`` or ``tenants`` (a revocation,
``DELETE``, a tenant removed with its keys, an operator's own SQL) sends ``NOTIFY
sfm_api_keys`` when it commits. Each server listens on that channel and forgets every cached
key lookup (``core.keys.TenantCache``), so a revocation takes effect at once everywhere.
"""

from alembic import op

revision = "0005"
down_revision = "0004"

_TABLES = ("api_keys", "tenants")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION sfm_notify_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('sfm_api_keys', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    for table in _TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_changed AFTER UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION sfm_notify_key_change()"
        )


def downgrade() -> None:
    for table in _TABLES:
        op.execute(f"DROP TRIGGER {table}_changed ON {table}")
    op.execute("DROP FUNCTION sfm_notify_key_change()")
