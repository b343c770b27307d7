"""The records the chat parsers produce (plain data, no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ROLES = ("user", "assistant", "system", "tool")


class ChatFormatError(ValueError):
    """The file as a whole is not an export of the format named (not JSON, not a list...)."""


@dataclass(frozen=True)
class ChatMessage:
    """One message as ``POST /conversations/{id}/messages`` takes it."""

    id: str
    role: str
    content: str
    name: str | None = None
    created_at: datetime | None = None

    def body(self) -> dict[str, Any]:
        """The message as the endpoint's JSON (absent fields left out)."""
        out: dict[str, Any] = {"id": self.id, "role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.created_at is not None:
            out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class Conversation:
    """A conversation's id (the export's own), its title if any, and its messages in order."""

    id: str
    messages: list[ChatMessage]
    title: str | None = None


@dataclass(frozen=True)
class Problem:
    """A bad entry, skipped: where it is in the file (``conversations[3].mapping[ab1]``,
    ``line 7``) and what is wrong with it."""

    position: str
    reason: str

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


@dataclass
class Parsed:
    """What a file held: its conversations, and the entries skipped."""

    conversations: list[Conversation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(len(c.messages) for c in self.conversations)


def text_of(value: Any) -> str | None:
    """``value`` if it is a string with something other than whitespace in it."""
    return value if isinstance(value, str) and value.strip() else None


def required_text(value: Any, problem: str) -> str:
    """``value`` as :func:`text_of` reads it; ``ValueError(problem)`` when it is not text."""
    text = text_of(value)
    if text is None:
        raise ValueError(problem)
    return text


def epoch_time(value: Any) -> datetime | None:
    """A Unix time in seconds (ChatGPT's ``create_time``) as a UTC datetime; ValueError when
    it is not a number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"create_time {value!r} is not a number of seconds")
    return datetime.fromtimestamp(value, UTC)


def iso_time(value: Any) -> datetime | None:
    """An RFC 3339 time (Claude's ``created_at``, JSON Lines' ``created_at``), naive ones read
    as UTC; ValueError when it is not one."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"created_at {value!r} is not an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"created_at {value!r} is not an RFC 3339 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_export(
    data: Any, export: str, conversation: Callable[[Any, str, list[Problem]], Conversation]
) -> Parsed:
    """The conversations of an export's ``conversations.json`` (a list): ``conversation``
    reads the entry at ``where``, noting its unreadable messages in the problems it is given;
    its ValueError reports and skips the whole entry."""
    if not isinstance(data, list):
        raise ChatFormatError(f"a {export} export's conversations.json is a JSON list")
    parsed = Parsed()
    for index, item in enumerate(data):
        where = f"conversations[{index}]"
        try:
            parsed.conversations.append(conversation(item, where, parsed.problems))
        except ValueError as exc:
            parsed.problems.append(Problem(where, str(exc)))
    return parsed
