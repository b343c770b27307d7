"""The ``webhooks`` table: a tenant's endpoints, and the dispatchers' claims and cursors.

Changes run on the caller's :class:`~somafractalmemory.stores.pg_writes.UnitOfWork` (the core
service commits it). A dispatcher *claims* a webhook by pushing its ``next_attempt_at`` one
lease ahead in a short transaction of its own (``FOR UPDATE SKIP LOCKED``: replicas claim
different webhooks, and no lock or transaction id is held while the endpoint is called); it
then records the outcome only if the cursor is still the one it read, so a cursor never goes
back when a lease expired under a slow delivery (the two deliveries overlap: at-least-once).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from somafractalmemory.models import Webhook
from somafractalmemory.stores.pg_base import PostgresBase, from_row
from somafractalmemory.stores.pg_writes import UnitOfWork
from somafractalmemory.stores.tables import webhooks

# The change feed's horizon (as in pg_history): a change is due once every older
# transaction has ended.
_HORIZON_SQL = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint"

# Due webhooks with at least one change after their cursor; idle ones cost no write.
_CLAIM_SQL = f"""
UPDATE webhooks w SET next_attempt_at = now() + make_interval(secs => :lease)
WHERE w.id IN (
    SELECT d.id FROM webhooks d
    WHERE d.next_attempt_at <= now()
      AND EXISTS (
          SELECT 1 FROM record_history h
          WHERE h.tenant_id = d.tenant_id
            AND (h.txid, h.id) > (d.cursor_txid, d.cursor_id)
            AND h.txid < {_HORIZON_SQL})
    ORDER BY d.next_attempt_at
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED)
RETURNING w.*
"""


def webhook_from_row(row: Any) -> Webhook:
    return from_row(Webhook, row, cursor=(int(row.cursor_txid), int(row.cursor_id)))


def _at_cursor(webhook: Webhook) -> sa.ColumnElement[bool]:
    return sa.and_(
        webhooks.c.id == webhook.id,
        webhooks.c.cursor_txid == webhook.cursor[0],
        webhooks.c.cursor_id == webhook.cursor[1],
    )


class WebhookStore(PostgresBase):
    """Registration, listing and the dispatchers' bookkeeping of webhooks."""

    def list_webhooks(self, tenant_id: int) -> list[Webhook]:
        """The tenant's webhooks, oldest first."""
        query = sa.select(webhooks).where(webhooks.c.tenant_id == tenant_id).order_by(webhooks.c.id)
        with self.reading("list_webhooks") as conn:
            return [webhook_from_row(row) for row in conn.execute(query)]

    def feed_horizon(self) -> int:
        """The oldest transaction still running: every change of an older one is in the
        feed already, every change of a later one will come after it."""
        with self.reading("feed_horizon") as conn:
            return int(conn.execute(sa.text(f"SELECT {_HORIZON_SQL}")).scalar_one())

    def insert_webhook(
        self, uow: UnitOfWork, tenant_id: int, url: str, secret: str, cursor: tuple[int, int]
    ) -> Webhook:
        """A new webhook of the tenant, due at once, delivering the changes after ``cursor``."""
        statement = (
            sa.insert(webhooks)
            .values(
                tenant_id=tenant_id,
                url=url,
                secret=secret,
                cursor_txid=cursor[0],
                cursor_id=cursor[1],
            )
            .returning(webhooks)
        )
        with self.translated("insert_webhook"):
            return webhook_from_row(uow.conn.execute(statement).one())

    def count_webhooks(self, uow: UnitOfWork, tenant_id: int) -> int:
        """How many webhooks the tenant has, its tenant row locked so that concurrent
        registrations count one after the other (``NO KEY``: writes' foreign key checks on
        the tenant row do not wait for it)."""
        with self.translated("count_webhooks"):
            uow.conn.execute(
                sa.text("SELECT 1 FROM tenants WHERE id = :t FOR NO KEY UPDATE"), {"t": tenant_id}
            )
            query = sa.select(sa.func.count()).where(webhooks.c.tenant_id == tenant_id)
            return int(uow.conn.execute(query).scalar_one())

    def delete_webhook(self, uow: UnitOfWork, tenant_id: int, webhook_id: int) -> bool:
        """Delete the tenant's webhook ``webhook_id``; False when the tenant has none such
        (another tenant's id included)."""
        statement = sa.delete(webhooks).where(
            webhooks.c.id == webhook_id, webhooks.c.tenant_id == tenant_id
        )
        with self.translated("delete_webhook"):
            return bool(uow.conn.execute(statement).rowcount)

    def claim_webhooks(self, uow: UnitOfWork, limit: int, lease_seconds: float) -> list[Webhook]:
        """Up to ``limit`` due webhooks with changes to deliver, leased to the caller for
        ``lease_seconds`` (no other dispatcher claims them meanwhile)."""
        with self.translated("claim_webhooks"):
            rows = uow.conn.execute(sa.text(_CLAIM_SQL), {"lease": lease_seconds, "limit": limit})
            return [webhook_from_row(row) for row in rows]

    def webhook_delivered(self, uow: UnitOfWork, webhook: Webhook, cursor: tuple[int, int]) -> bool:
        """The endpoint took every change up to ``cursor``: move the cursor there and make the
        webhook due again. False (nothing changed) when its cursor moved or it was deleted."""
        statement = (
            sa.update(webhooks)
            .where(_at_cursor(webhook))
            .values(
                cursor_txid=cursor[0],
                cursor_id=cursor[1],
                attempts=0,
                next_attempt_at=sa.func.now(),
                last_error=None,
                last_delivered_at=sa.func.now(),
            )
        )
        with self.translated("webhook_delivered"):
            return bool(uow.conn.execute(statement).rowcount)

    def webhook_failed(
        self, uow: UnitOfWork, webhook: Webhook, error: str, retry_in: float
    ) -> bool:
        """A delivery failed: count it, keep ``error``, retry in ``retry_in`` seconds. False
        when its cursor moved (another dispatcher delivered) or it was deleted."""
        statement = (
            sa.update(webhooks)
            .where(_at_cursor(webhook))
            .values(
                attempts=webhooks.c.attempts + 1,
                next_attempt_at=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, retry_in),
                last_error=error,
            )
        )
        with self.translated("webhook_failed"):
            return bool(uow.conn.execute(statement).rowcount)

    def release_webhook(self, uow: UnitOfWork, webhook: Webhook) -> None:
        """Give a claimed webhook back, due at once (it had nothing to deliver after all)."""
        statement = (
            sa.update(webhooks).where(_at_cursor(webhook)).values(next_attempt_at=sa.func.now())
        )
        with self.translated("release_webhook"):
            uow.conn.execute(statement)
