"""Webhooks: a tenant's HTTPS endpoints, each sent every change of the tenant's records.

The queue is the change feed itself (``record_history``) and each webhook's cursor in it,
both in PostgreSQL: a delivery POSTs the next changes after the cursor (up to
``SOMA_WEBHOOK_BATCH_SIZE``, in the feed's order), and the cursor moves only once the
endpoint answered 2xx. So every change is delivered at least once, a restart (or another
replica) resumes from the stored cursor, and the writes themselves never touch a webhook: a
dead endpoint costs them nothing. A failure is retried after an exponential backoff
(``SOMA_WEBHOOK_BACKOFF_SECONDS`` doubling per failed attempt, at most
``SOMA_WEBHOOK_BACKOFF_MAX_SECONDS``, less up to a fifth at random).

Each POST carries ``SFM-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the
secret>`` and ``SFM-Delivery: <webhook id>-<txid>-<history id>`` (the position of its last
change: the same delivery id always carries the same changes).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from somafractalmemory import __version__
from somafractalmemory.core.history import feed_cursor, feed_position
from somafractalmemory.errors import ConflictError, InvalidInputError, NotFoundError
from somafractalmemory.history_schemas import change_public
from somafractalmemory.models import Tenant, Webhook
from somafractalmemory.observability.metrics import WEBHOOK_CHANGES, WEBHOOK_DELIVERIES
from somafractalmemory.settings import Settings
from somafractalmemory.stores.postgres import PostgresStore
from somafractalmemory.webhook_schemas import WebhookDelivery

MAX_PER_TENANT = 10
SIGNATURE_HEADER = "SFM-Signature"
DELIVERY_HEADER = "SFM-Delivery"
ERROR_CHARS = 500  # of an endpoint's failure kept in ``last_error``


def sign(secret: str, body: bytes) -> str:
    """The ``SFM-Signature`` header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_http_loopback: bool) -> str:
    """``url`` when it is an absolute https:// URL (or http:// to a loopback host, when
    allowed); 422 naming ``url`` otherwise."""
    try:
        parts = urlsplit(url)
        _port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise InvalidInputError(f"is not a URL ({exc})", "url") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInputError("must be an absolute https:// URL", "url")
    if parts.scheme == "http" and not (allow_http_loopback and _loopback(parts.hostname)):
        raise InvalidInputError(
            "must use https:// (plain http:// only to a loopback host, when the server sets "
            "SOMA_WEBHOOK_ALLOW_HTTP_LOOPBACK=true)",
            "url",
        )
    if parts.fragment:
        raise InvalidInputError("must not carry a #fragment", "url")
    return url


def retry_delay(attempts: int, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (1 or more): ``base``
    doubled per failure after the first, at most ``cap``, less up to a fifth at random (so
    endpoints that failed together are not retried together)."""
    doubled = base * 2.0 ** min(attempts - 1, 60)  # the exponent capped: no overflow
    return min(cap, doubled) * random.uniform(0.8, 1.0)


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did."""

    webhook_id: int
    delivered: int  # changes acknowledged (0 when it failed or had nothing to send)
    error: str | None = None


class WebhookService:
    """Registration of a tenant's webhooks, and the delivery of their changes."""

    def __init__(self, postgres: PostgresStore, settings: Settings) -> None:
        self.postgres = postgres
        self.settings = settings

    # -- a tenant's webhooks ---------------------------------------------------------------
    def register(self, tenant: Tenant, url: str, secret: str, after: str | None) -> Webhook:
        """A new webhook of ``tenant``, delivering the changes after the feed cursor
        ``after`` or, without one, every change not yet in the feed (from now on); 409 when
        the tenant has :data:`MAX_PER_TENANT` already."""
        check_url(url, self.settings.webhook_allow_http_loopback)
        # Every transaction older than the horizon has ended, so its changes are before
        # now; everything else sorts after (horizon, 0) and will be delivered.
        start = feed_position(after, "after") if after else (self.postgres.feed_horizon(), 0)
        with self.postgres.unit_of_work(tenant.key_id) as uow:
            if self.postgres.count_webhooks(uow, tenant.id) >= MAX_PER_TENANT:
                raise ConflictError(f"a tenant has at most {MAX_PER_TENANT} webhooks")
            webhook = self.postgres.insert_webhook(uow, tenant.id, url, secret, start)
            uow.commit()
        return webhook

    def of_tenant(self, tenant: Tenant) -> list[Webhook]:
        """The tenant's webhooks, oldest first."""
        return self.postgres.list_webhooks(tenant.id)

    def delete(self, tenant: Tenant, webhook_id: int) -> None:
        """Delete the tenant's webhook; 404 when it has none with that id (whoever else
        does). A delivery already under way may still arrive."""
        with self.postgres.unit_of_work(tenant.key_id) as uow:
            if not self.postgres.delete_webhook(uow, tenant.id, webhook_id):
                raise NotFoundError(f"no webhook {webhook_id}")
            uow.commit()

    # -- deliveries ------------------------------------------------------------------------
    def lease_seconds(self) -> float:
        """How long a claim keeps other dispatchers off a webhook: a delivery's time out,
        twice, and a margin for the PostgreSQL calls around it."""
        return 2 * self.settings.webhook_timeout_seconds + 10

    def claim(self, limit: int) -> list[Webhook]:
        """Up to ``limit`` due webhooks with changes waiting, leased to this caller."""
        with self.postgres.unit_of_work() as uow:
            claimed = self.postgres.claim_webhooks(uow, limit, self.lease_seconds())
            uow.commit()
        return claimed

    def deliver(self, webhook: Webhook, http: httpx.Client) -> Outcome:
        """POST the next changes after the claimed webhook's cursor, then record the outcome
        (cursor moved on 2xx; a failure counted and retried after a backoff)."""
        rows = self.postgres.changes(
            webhook.tenant_id, webhook.cursor, self.settings.webhook_batch_size
        )
        if not rows:  # purged since the claim
            with self.postgres.unit_of_work() as uow:
                self.postgres.release_webhook(uow, webhook)
                uow.commit()
            return Outcome(webhook.id, 0)
        txid, last = rows[-1]
        end = (txid, last.id)
        delivery_id = f"{webhook.id}-{end[0]}-{end[1]}"
        body = (
            WebhookDelivery(
                webhook_id=webhook.id,
                delivery_id=delivery_id,
                sent_at=datetime.now(UTC),
                changes=[change_public(version) for _txid, version in rows],
                next_cursor=feed_cursor(end),
            )
            .model_dump_json()
            .encode()
        )
        error = self._post(http, webhook, body, delivery_id)
        with self.postgres.unit_of_work() as uow:
            if error is None:
                self.postgres.webhook_delivered(uow, webhook, end)
            else:
                s = self.settings
                retry_in = retry_delay(
                    webhook.attempts + 1, s.webhook_backoff_seconds, s.webhook_backoff_max_seconds
                )
                self.postgres.webhook_failed(uow, webhook, error, retry_in)
            uow.commit()
        WEBHOOK_DELIVERIES.labels("failed" if error else "delivered").inc()
        if error is not None:
            return Outcome(webhook.id, 0, error)
        WEBHOOK_CHANGES.inc(len(rows))
        return Outcome(webhook.id, len(rows))

    def _post(self, http: httpx.Client, webhook: Webhook, body: bytes, delivery: str) -> str | None:
        """POST ``body``; None on a 2xx answer, else what went wrong (the answer's body is
        not read: an endpoint cannot make a delivery slow or large)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"somafractalmemory-webhooks/{__version__}",
            SIGNATURE_HEADER: sign(webhook.secret, body),
            DELIVERY_HEADER: delivery,
        }
        try:
            with http.stream("POST", webhook.url, content=body, headers=headers) as answer:
                if 200 <= answer.status_code < 300:
                    return None
                return f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


def create_http_client(settings: Settings) -> httpx.Client:
    """The client deliveries are POSTed with: short time outs, no redirects followed (a 3xx
    is a failure), a connection pool as large as the deliveries at once."""
    limit = max(1, settings.webhook_concurrency)
    return httpx.Client(
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
    )
