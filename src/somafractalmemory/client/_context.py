"""Context calls: one function per client method, as in :mod:`._calls`."""

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
    user_id: str | None = None,
    agent_id: str | None = None,
    session_id: str | None = None,
    conversation_id: str | None = None,
    min_score: float | None = None,
    **extra: Any,
) -> Call[ContextResponse]:
    """A prompt-ready block of the most relevant records for ``query`` (or for the recent
    turns ``messages``, dicts with ``role`` and ``content``), at most ``budget_tokens``
    tokens as ``tokenizer`` counts them (default: the server's embedding model's own).

    ``format="messages"`` answers OpenAI-style chat messages instead of one text; ``include``
    picks the kinds of records (``"memories"``, ``"messages"``), ``window`` the neighbouring
    turns of a message hit. ``user_id``, ``agent_id`` and ``session_id`` keep it to the
    records of those scopes, ``conversation_id`` keeps messages to one conversation.
    ``min_score`` (0 to 1) drops records less relevant than that; left out, the server's
    default applies (0.3; pass 0 for no threshold). ``extra`` keys go into the body as they are.
    """
    options = {
        "messages": [dict(m) for m in messages] if messages is not None else None,
        "include": list(include) if include is not None else None,
        "window": window,
        "format": format,
        "tokenizer": tokenizer,
        "filters": dict(filters) if filters is not None else None,
        "user_id": user_id,
        "agent_id": agent_id,
        "session_id": session_id,
        "conversation_id": conversation_id,
        "min_score": min_score,
    }
    body: dict[str, Any] = {"budget_tokens": budget_tokens}
    if query is not None:
        body["query"] = query
    body.update({k: v for k, v in options.items() if v is not None})
    body.update(extra)
    return Call("POST", "/context", lambda r: parse(ContextResponse, r), Retry.READ, body=body)
