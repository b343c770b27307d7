"""Webhooks: a tenant's HTTPS endpoints, each with the position it has been delivered up to.

The queue of a webhook is the change feed itself (``record_history``, migration 0008) read
after the webhook's cursor (``cursor_txid``, ``cursor_id``: the feed's (txid, id) order); the
cursor moves only once the endpoint answered 2xx, so every change is delivered at least once
and nothing waits in a second copy. ``next_attempt_at`` is both the backoff after a failure
and the lease of a dispatcher delivering it (several replicas may run one). Writes never
touch this table. Deleting a tenant deletes its webhooks.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.BigInteger,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("url", sa.Text, nullable=False),
        # Kept as given: signing needs it (it is never returned or logged).
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("cursor_txid", sa.BigInteger, nullable=False),
        sa.Column("cursor_id", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
        sa.Column("last_error", sa.Text),
        sa.Column("last_delivered_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_webhooks_tenant", "webhooks", ["tenant_id", "id"])
    op.create_index("ix_webhooks_due", "webhooks", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("webhooks")
