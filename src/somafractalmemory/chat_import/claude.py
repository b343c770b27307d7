"""Claude.ai's data export: ``conversations.json``, a list of conversations
(``uuid``, ``name``, ``chat_messages``), each message with its ``uuid``, ``sender``
(``human`` or ``assistant``), ``created_at`` and its text (``text``, else the ``text`` blocks
of ``content`` joined by blank lines). A message with no text (an attachment alone) is
reported and skipped."""

from __future__ import annotations

from typing import Any

from somafractalmemory.chat_import.model import (
    ChatMessage,
    Conversation,
    Parsed,
    Problem,
    iso_time,
    parse_export,
    required_text,
    text_of,
)

SENDERS = {"human": "user", "user": "user", "assistant": "assistant"}


def parse(data: Any) -> Parsed:
    """The conversations of a Claude.ai export (its parsed ``conversations.json``)."""
    return parse_export(data, "Claude", _conversation)


def _conversation(item: Any, where: str, problems: list[Problem]) -> Conversation:
    if not isinstance(item, dict):
        raise ValueError("not an object")
    conversation_id = text_of(item.get("uuid"))
    chat = item.get("chat_messages")
    if conversation_id is None or not isinstance(chat, list):
        raise ValueError("no uuid or no chat_messages list")
    messages = []
    for position, raw in enumerate(chat):
        try:
            messages.append(_message(raw))
        except ValueError as exc:
            problems.append(Problem(f"{where}.chat_messages[{position}]", str(exc)))
    return Conversation(conversation_id, messages, text_of(item.get("name")))


def _message(raw: Any) -> ChatMessage:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    message_id = required_text(raw.get("uuid"), "no uuid")
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
