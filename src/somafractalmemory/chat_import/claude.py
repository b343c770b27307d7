"""Claude.ai's data export: ``conversations.json``, a list of conversations
(``uuid``, ``name``, ``chat_messages``), each message with its ``uuid``, ``sender``
(``human`` or ``assistant``), ``created_at`` and its text (``text``, else the ``text`` blocks
of ``content`` joined by blank lines). A message with no text (an attachment alone) is
reported and skipped."""

from __future__ import annotations

from typing import Any

from somafractalmemory.chat_import.model import (
    ChatFormatError,
    ChatMessage,
    Conversation,
    Parsed,
    Problem,
    iso_time,
    text_of,
)

SENDERS = {"human": "user", "user": "user", "assistant": "assistant"}


def parse(data: Any) -> Parsed:
    """The conversations of a Claude.ai export (its parsed ``conversations.json``)."""
    if not isinstance(data, list):
        raise ChatFormatError("a Claude export's conversations.json is a JSON list")
    parsed = Parsed()
    for index, item in enumerate(data):
        where = f"conversations[{index}]"
        if not isinstance(item, dict):
            parsed.problems.append(Problem(where, "not an object"))
            continue
        conversation_id = text_of(item.get("uuid"))
        chat = item.get("chat_messages")
        if conversation_id is None or not isinstance(chat, list):
            parsed.problems.append(Problem(where, "no uuid or no chat_messages list"))
            continue
        messages = []
        for position, raw in enumerate(chat):
            try:
                messages.append(_message(raw))
            except ValueError as exc:
                parsed.problems.append(Problem(f"{where}.chat_messages[{position}]", str(exc)))
        parsed.conversations.append(
            Conversation(conversation_id, messages, text_of(item.get("name")))
        )
    return parsed


def _message(raw: Any) -> ChatMessage:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    message_id = text_of(raw.get("uuid"))
    if message_id is None:
        raise ValueError("no uuid")
    role = SENDERS.get(str(raw.get("sender")))
    if role is None:
        raise ValueError(f"unknown sender {raw.get('sender')!r}")
    content = text_of(raw.get("text")) or _blocks(raw.get("content"))
    if content is None:
        raise ValueError("no text (an attachment alone?)")
    return ChatMessage(message_id, role, content, created_at=iso_time(raw.get("created_at")))


def _blocks(content: Any) -> str | None:
    if not isinstance(content, list):
        return None
    texts = [
        b["text"]
        for b in content
        if isinstance(b, dict) and b.get("type") == "text" and text_of(b.get("text"))
    ]
    return "\n\n".join(texts) if texts else None
