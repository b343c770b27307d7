"""Webhook, liveness, metrics and export calls: one function per client method, as in
:mod:`._calls`.

``export`` is streamed: its call is sent with ``stream=True`` (see :attr:`Call.stream`), a
retry happens only before the first line (a 503 or a refused connection), and
:class:`~._endpoint.lines` reads the JSON Lines one at a time as the server sends them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from somafractalmemory.client._calls import Call, Retry, parse, raise_for_error
from somafractalmemory.client.errors import ServerError
from somafractalmemory.webhook_schemas import WebhookDeleted, WebhookPublic, WebhooksResponse


def create_webhook(url: str, secret: str, after: str | None = None) -> Call[WebhookPublic]:
    """Register ``url`` to be POSTed the tenant's changes, each delivery signed with
    ``secret`` (HMAC-SHA256 of the body; see docs/webhooks.md); ``after`` is a
    :meth:`changes` cursor to start after (default: the changes from now on)."""
    body: dict[str, Any] = {"url": url, "secret": secret}
    if after is not None:
        body["after"] = after
    return Call("POST", "/webhooks", lambda r: parse(WebhookPublic, r), Retry.WRITE, body=body)


def list_webhooks() -> Call[WebhooksResponse]:
    """The tenant's webhooks, oldest first, and how far each has been delivered."""
    return Call("GET", "/webhooks", lambda r: parse(WebhooksResponse, r), Retry.READ)


def delete_webhook(webhook_id: int) -> Call[WebhookDeleted]:
    """Stop delivering to a webhook; :class:`NotFound` when the tenant has no such one."""
    return Call(
        "DELETE", f"/webhooks/{int(webhook_id)}", lambda r: parse(WebhookDeleted, r), Retry.WRITE
    )


def _live(response: httpx.Response) -> dict[str, str]:
    raise_for_error(response)
    body = response.json()
    if not isinstance(body, dict):
        raise ServerError(f"/livez answered {body!r}", status_code=response.status_code)
    return {str(k): str(v) for k, v in body.items()}


def live() -> Call[dict[str, str]]:
    """Liveness: ``{"status": "alive"}`` while the server process runs (touches no store)."""
    return Call("GET", "/livez", _live, Retry.PROBE)


def _text(response: httpx.Response) -> str:
    raise_for_error(response)
    return response.text


def metrics() -> Call[str]:
    """The server's Prometheus metrics, as text."""
    return Call("GET", "/metrics", _text, Retry.PROBE)


def _opened(response: httpx.Response) -> httpx.Response:
    # An error answer's body has been read by the client before this (see Call.stream).
    raise_for_error(response)
    return response


def export(
    with_vectors: bool = False,
    *,
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> Call[httpx.Response]:
    """The tenant's memories, links, spaces and items in the export format (docs/
    export-import.md), one dict a line, the header line first, read as they arrive;
    ``with_vectors`` adds each record's vectors; ``user_id``, ``agent_id``,
    ``session_id``: only the records of those scopes."""
    params = {"with_vectors": "true"} if with_vectors else {}
    scopes = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id}
    params.update({k: v for k, v in scopes.items() if v is not None})
    return Call("GET", "/export", _opened, Retry.READ, params=params, stream=True)


def export_line(line: str, response: httpx.Response) -> dict[str, Any]:
    """One line of an export, parsed; :class:`ServerError` when it is not a JSON object."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        raise ServerError(
            f"an export line is not a JSON object: {line[:200]}",
            status_code=response.status_code,
            error="UnexpectedResponse",
        )
    return record
