"""Request and response models of the webhook endpoints, and the body of a delivery."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from somafractalmemory.history_schemas import ChangePublic
from somafractalmemory.schemas import RequestModel


class WebhookCreate(RequestModel):
    """A new webhook: where to POST the tenant's changes, and the secret that signs them."""

    url: str = Field(
        min_length=1,
        max_length=2048,
        description="An https:// URL (plain http only to a loopback host, when the server "
        "allows it: SOMA_WEBHOOK_ALLOW_HTTP_LOOPBACK)",
    )
    secret: str = Field(
        min_length=16,
        max_length=256,
        description="Signs every delivery (HMAC-SHA256 of the raw body); never returned",
    )
    after: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="A `GET /changes` cursor to deliver the changes after; default: the "
        "changes from now on",
    )


class WebhookPublic(BaseModel):
    """A webhook as its tenant sees it (never its secret)."""

    id: int
    url: str
    created_at: datetime
    cursor: str = Field(description="Delivered up to here: a `GET /changes` cursor")
    attempts: int = Field(description="Failed attempts since the last delivery")
    next_attempt_at: datetime
    last_error: str | None
    last_delivered_at: datetime | None


class WebhooksResponse(BaseModel):
    """The tenant's webhooks, oldest first."""

    webhooks: list[WebhookPublic]


class WebhookDeleted(BaseModel):
    """The answer to a delete."""

    deleted: bool


class WebhookDelivery(BaseModel):
    """The JSON body of one delivery: the next changes after the webhook's cursor, in the
    change feed's order. The same ``delivery_id`` (also the ``SFM-Delivery`` header) always
    carries the same changes; a change may come again in a later delivery (at-least-once):
    deduplicate on ``version_id``."""

    webhook_id: int
    delivery_id: str
    sent_at: datetime
    changes: list[ChangePublic]
    next_cursor: str = Field(description="A `GET /changes` cursor after the last change")
