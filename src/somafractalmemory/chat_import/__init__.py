"""Chat exports read as conversations of messages, ready for ``POST /conversations/{id}/messages``.

Three formats (:func:`read_chat`): a ChatGPT data export (``conversations.json``, or the
export's ``.zip``), a Claude.ai export (its ``conversations.json``, or the ``.zip``) and plain
JSON Lines, one message an object. Each message has an ``id`` (the export's own, so a second
import of the same file stores nothing new), a ``role`` (``user``, ``assistant``, ``system`` or
``tool``), an optional ``name``, its ``content`` and, when the export has one, ``created_at``.
A bad entry (a conversation or message that cannot be read) is reported by its position in
the file and skipped; the rest is imported. Client side only: nothing here imports the server.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Literal

from somafractalmemory.chat_import.model import (
    ROLES,
    ChatFormatError,
    ChatMessage,
    Conversation,
    Parsed,
    Problem,
)

Format = Literal["chatgpt", "claude", "jsonl"]
FORMATS: tuple[Format, ...] = ("chatgpt", "claude", "jsonl")
EXPORT_MEMBER = "conversations.json"

__all__ = [
    "FORMATS",
    "ROLES",
    "ChatFormatError",
    "ChatMessage",
    "Conversation",
    "Format",
    "Parsed",
    "Problem",
    "parse_chat",
    "read_chat",
]


def read_chat(path: Path, fmt: Format) -> Parsed:
    """The conversations in the file at ``path`` (an export's ``.zip``: its
    ``conversations.json``); :class:`ChatFormatError` when the file as a whole cannot be read."""
    if path.suffix.lower() == ".zip" and fmt != "jsonl":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if Path(n).name == EXPORT_MEMBER]
            if not names:
                raise ChatFormatError(f"{path}: no {EXPORT_MEMBER} in the archive")
            text = archive.read(min(names, key=len)).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    return parse_chat(text, fmt)


def parse_chat(text: str, fmt: Format) -> Parsed:
    """The conversations in ``text``, an export in format ``fmt``."""
    from somafractalmemory.chat_import import chatgpt, claude, jsonl

    if fmt == "jsonl":
        return jsonl.parse(text)
    data = _json(text)
    if fmt == "chatgpt":
        return chatgpt.parse(data)
    if fmt == "claude":
        return claude.parse(data)
    raise ChatFormatError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChatFormatError(f"not JSON: {exc}") from None
