"""Plain JSON Lines: one message an object, ``{"conversation_id", "id", "role", "name",
"content", "created_at"}``; ``conversation_id``, ``role`` and ``content`` are required. A
message without ``id`` is given ``<conversation_id>:<n>``, its place among that conversation's
messages in the file (stable while the file is). Blank lines are ignored; conversations come
in the order they first appear, their messages in file order."""

from __future__ import annotations

import json

from somafractalmemory.chat_import.model import (
    ROLES,
    ChatMessage,
    Conversation,
    Parsed,
    Problem,
    iso_time,
    required_text,
    text_of,
)


def parse(text: str) -> Parsed:
    """The conversations of a JSON Lines file's text."""
    parsed = Parsed()
    by_id: dict[str, list[ChatMessage]] = {}
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            parsed.problems.append(Problem(where, f"not JSON: {exc.msg}"))
            continue
        try:
            conversation_id, message = _message(raw, seen)
        except ValueError as exc:
            parsed.problems.append(Problem(where, str(exc)))
            continue
        by_id.setdefault(conversation_id, []).append(message)
    parsed.conversations = [Conversation(cid, messages) for cid, messages in by_id.items()]
    return parsed


def _message(raw: object, seen: dict[str, int]) -> tuple[str, ChatMessage]:
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    conversation_id = raw.get("conversation_id")
    if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
        conversation_id = str(conversation_id)
    conversation_id = required_text(conversation_id, "no conversation_id")
    role = raw.get("role")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    content = required_text(raw.get("content"), "no content")
    name = raw.get("name")
    if name is not None and text_of(name) is None:
        raise ValueError("name must be a non-blank string")
    raw_id = raw.get("id")
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    message_id = text_of(raw_id)
    if raw_id is not None and message_id is None:
        raise ValueError("id must be a non-blank string or a number")
    created_at = iso_time(raw.get("created_at"))
    place = seen.get(conversation_id, 0)
    seen[conversation_id] = place + 1
    message = ChatMessage(
        id=message_id or f"{conversation_id}:{place}",
        role=str(role),
        content=content,
        name=name,
        created_at=created_at,
    )
    return conversation_id, message
