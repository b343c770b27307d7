"""Context calls: one function per client method, as in
:mod:`._calls`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from somafractalmemory.client._calls import Call, Retry, parse
from somafractalmemory.context_schemas import ContextResponse


def context(
    query: str | None = None,
    budget_tokens: int = 1000,
    *,
    messages: Sequence[Mapping[str, Any]] | None = None,
    include: Sequence[str] | None = None,
    window: int | None = None,
    format: str | None = None,
    tokenizer: str | None = None,
    filters: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Call[ContextResponse]:
    """A prompt-ready block of the most relevant records for ``query`` (or for the recent
    turns ``messages``, dicts with ``role`` and ``content``), at most ``budget_tokens``
    tokens as ``tokenizer`` counts them (default: the server's embedding model's own).

    ``format="messages"`` answers OpenAI-style chat messages instead of one text; ``include``
    picks the kinds of records (``"memories"``, ``"messages"``), ``window`` the neighbouring
    turns of a message hit. ``extra`` keys go into the body as they are (e.g. scopes on
    servers that support them).
    """
    options = {
        "messages": [dict(m) for m in messages] if messages is not None else None,
        "include": list(include) if include is not None else None,
        "window": window,
        "format": format,
        "tokenizer": tokenizer,
        "filters": dict(filters) if filters is not None else None,
    }
    body: dict[str, Any] = {"budget_tokens": budget_tokens}
    if query is not None:
        body["query"] = query
    body.update({k: v for k, v in options.items() if v is not None})
    body.update(extra)
    return Call("POST", "/context", lambda r: parse(ContextResponse, r), Retry.READ, body=body)
