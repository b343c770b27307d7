"""The conversation messages source of ``POST /context`` (``include: ["messages"]``).

Hits come from the message search (``POST /conversations/search``, hybrid mode) within the
request's scopes and, when given, its conversation. Each hit brings the turns around it,
``window`` on each side in conversation order, read in one query for all hits
(:mod:`somafractalmemory.stores.message_windows`).

Scores are the message search's hybrid scores (core/fusion.py), the formula memory search
uses, so memory and message hits share one scale, the packer orders them together and
``min_score`` means the same for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from somafractalmemory.core.context import Candidate, Turn
from somafractalmemory.core.context_sources import ContextQuery, Include
from somafractalmemory.core.messages import MessageService
from somafractalmemory.models import Tenant
from somafractalmemory.stores.message_windows import WindowMessage, message_windows


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _turn(message: WindowMessage) -> Turn:
    value = message.value
    role = _text(value.get("role"))
    return Turn(
        key=message.key,
        text=_text(value.get("content")) or "",
        conversation_id=message.conversation_id,
        created_at=message.created_at,
        speaker=_text(value.get("name")) or role,
        role=role,
        seq=message.seq,
    )


def _from(seq: int) -> Callable[[WindowMessage], tuple[int, bool]]:
    """Nearest to position ``seq`` first; at one distance, the later turn first."""
    return lambda m: (abs(m.seq - seq), m.seq < seq)


class MessageCandidates:
    """The tenant's conversation messages, by a hybrid message search of the query."""

    include: Include = "messages"

    def __init__(self, messages: MessageService) -> None:
        self.messages = messages

    def candidates(self, tenant: Tenant, query: ContextQuery) -> list[Candidate]:
        """Message hits (the text is the message's ``content``, the speaker its ``name``,
        else its role), each with up to ``query.window`` turns on each side, nearest first
        and, at one distance, the later turn first (the packer keeps that order for ties: a
        question's reply comes before what preceded it). ``filters`` are payload fields of
        memories: they do not apply to messages."""
        hits = self.messages.search(
            tenant,
            query.text,
            "hybrid",
            query.limit,
            query.scopes,
            query.conversation_id,
            min_score=query.min_score,
        )
        ids = [(hit.item.id, hit.item.namespace[1]) for hit in hits if len(hit.item.namespace) == 2]
        near = message_windows(self.messages.items.postgres, tenant.id, ids, query.window)
        by_id = {m.id: m for m in near}
        by_conversation: dict[str, list[WindowMessage]] = {}
        for message in near:
            by_conversation.setdefault(message.conversation_id, []).append(message)
        found = []
        for hit in hits:
            own = by_id.get(hit.item.id)
            if own is None:  # deleted between the search and the window read
                continue
            around = [
                _turn(m)
                for m in sorted(by_conversation[own.conversation_id], key=_from(own.seq))
                if m.id != own.id and abs(m.seq - own.seq) <= query.window
            ]
            signals = asdict(hit.signals)
            found.append(Candidate("message", _turn(own), hit.score or 0.0, signals, around))
        return found
