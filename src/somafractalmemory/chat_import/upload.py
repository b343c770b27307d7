"""Posting parsed conversations to SFM through the Python client, in batches."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from somafractalmemory.chat_import.model import Conversation, Parsed
from somafractalmemory.client import SFMClient

DEFAULT_BATCH = 100


@dataclass
class Uploaded:
    """What the server did: conversations posted, and messages by ``status``
    (``created``, ``unchanged``, ...)."""

    conversations: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


def upload(
    client: SFMClient,
    parsed: Parsed,
    user_id: str,
    *,
    agent_id: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[Conversation, int], None] | None = None,
) -> Uploaded:
    """Post every conversation's messages, ``batch_size`` at a time and in order, to
    ``POST /conversations/{id}/messages``; idempotent, since each message carries its id.
    A conversation with no message left is not posted. Client errors propagate (the
    batches posted before stay stored; posting again stores only what is missing)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    done = Uploaded()
    for conversation in parsed.conversations:
        if not conversation.messages:
            continue
        for start in range(0, len(conversation.messages), batch_size):
            batch = conversation.messages[start : start + batch_size]
            answer = client.add_messages(
                conversation.id, [m.body() for m in batch], user_id=user_id, agent_id=agent_id
            )
            for item in answer.messages:
                done.statuses[item.status] += 1
            if progress is not None:
                progress(conversation, start + len(batch))
        done.conversations += 1
    return done
