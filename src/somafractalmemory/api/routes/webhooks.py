"""Webhooks: a tenant registers endpoints that are POSTed every change (see core.webhooks)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Header, Path, Response

from somafractalmemory.api.deps import CallerDep
from somafractalmemory.api.responses import json_response
from somafractalmemory.api.strict import api_router
from somafractalmemory.core.history import feed_cursor
from somafractalmemory.models import Webhook
from somafractalmemory.webhook_schemas import (
    WebhookCreate,
    WebhookDeleted,
    WebhookDelivery,
    WebhookPublic,
    WebhooksResponse,
)

router = api_router("webhooks", (400, 401, 404, 409, 422, 503))


def webhook_public(webhook: Webhook) -> WebhookPublic:
    """The tenant's view of a webhook: its fields by name (never the secret), the cursor as
    ``GET /changes`` takes it."""
    return WebhookPublic.model_validate(vars(webhook) | {"cursor": feed_cursor(webhook.cursor)})


@router.post("/webhooks", status_code=201, response_model=WebhookPublic)
def create_webhook(body: WebhookCreate, caller: CallerDep) -> Response:
    """Register an endpoint to be POSTed the tenant's changes, signed with the secret."""
    tenant = caller.tenant()
    webhook = caller.stack.webhooks.register(tenant, body.url, body.secret, body.after)
    return json_response(webhook_public(webhook), status_code=201)


@router.get("/webhooks", response_model=WebhooksResponse)
def list_webhooks(caller: CallerDep) -> Response:
    """The tenant's webhooks and how far each has been delivered (never their secrets)."""
    tenant = caller.tenant()
    found = caller.stack.webhooks.of_tenant(tenant)
    return json_response(WebhooksResponse(webhooks=[webhook_public(w) for w in found]))


@router.delete("/webhooks/{webhook_id}", response_model=WebhookDeleted)
def delete_webhook(
    webhook_id: Annotated[int, Path(ge=1, le=2**63 - 1)], caller: CallerDep
) -> Response:
    """Stop delivering to a webhook and forget it; 404 when the tenant has no such one."""
    tenant = caller.tenant()
    caller.stack.webhooks.delete(tenant, webhook_id)
    return json_response(WebhookDeleted(deleted=True))


def document_deliveries(app: FastAPI) -> None:
    """Describe what SFM POSTs to a webhook in the OpenAPI document's ``webhooks``."""

    @app.webhooks.post("changes", status_code=204)
    def changes(
        body: WebhookDelivery,
        sfm_signature: Annotated[
            str, Header(description="sha256=<hex HMAC-SHA256 of the raw body with the secret>")
        ],
        sfm_delivery: Annotated[
            str, Header(description="<webhook id>-<txid>-<history id>: the same changes")
        ],
    ) -> None:
        """The next changes of the tenant's records; answer 2xx once they are stored (any
        other answer is retried with backoff). Deduplicate on ``version_id``."""
