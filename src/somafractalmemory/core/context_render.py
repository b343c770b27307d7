"""How a context block's lines are grouped, ordered and written out (see core/context.py).

A block is groups of lines: one group per conversation, and one (``Memories``) for memories
that belong to none; groups in the order of their best hit, lines in time order. As text, each
group is a header line and its lines, groups separated by a blank line; as chat messages, the
memories are one ``system`` message and each conversation line a message of its own.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

CUT_MARK = "…"
GAP_MARK = "…"
MEMORIES_HEADER = "## Memories"
ROLES = ("user", "assistant", "system", "tool")

LineKind = Literal["memory", "message"]
Rendered = str | list[dict[str, str]]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Turn:
    """One line's worth of content: a memory or a conversation message."""

    key: str
    text: str
    conversation_id: str | None = None
    created_at: datetime | None = None
    speaker: str | None = None
    role: str | None = None
    seq: int | None = None  # position in its conversation, when known


@dataclass(frozen=True)
class Line:
    """A turn chosen for the block: ``rank`` of the hit that brought it, ``order`` in which
    it was added."""

    kind: LineKind
    turn: Turn
    rank: int
    order: int
    text: str  # line_text(turn), written once

    @classmethod
    def of(cls, kind: LineKind, turn: Turn, rank: int, order: int) -> Line:
        """The line of ``turn``."""
        return cls(kind, turn, rank, order, line_text(turn))


@dataclass(frozen=True)
class Group:
    """The lines of one conversation (``conversation_id`` None: the memories of none)."""

    conversation_id: str | None
    lines: list[Line]

    @property
    def header(self) -> str:
        if self.conversation_id is None:
            return MEMORIES_HEADER
        return f"## Conversation {_clean(self.conversation_id)}"


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive time is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _time_key(line: Line) -> tuple[datetime, int, str, str]:
    turn = line.turn
    moment = utc(turn.created_at) if turn.created_at is not None else _EPOCH
    return (moment, turn.seq if turn.seq is not None else -1, turn.key, line.kind)


def order_groups(members: Sequence[Line]) -> list[Group]:
    """``members`` grouped by conversation (memories of none together), groups by their best
    rank, lines in time order."""
    by_conversation: dict[str | None, list[Line]] = {}
    for line in members:
        by_conversation.setdefault(line.turn.conversation_id, []).append(line)
    groups = [Group(cid, sorted(lines, key=_time_key)) for cid, lines in by_conversation.items()]
    return sorted(
        groups, key=lambda g: (min(line.rank for line in g.lines), g.conversation_id or "")
    )


def _clean(text: str) -> str:
    return " ".join(text.split())


def line_text(turn: Turn) -> str:
    """``[YYYY-MM-DD HH:MM] speaker: text``, leaving out what is unknown."""
    parts = []
    if turn.created_at is not None:
        parts.append(f"[{utc(turn.created_at):%Y-%m-%d %H:%M}]")
    who = turn.speaker or turn.role
    body = _clean(turn.text)
    parts.append(f"{_clean(who)}: {body}" if who and _clean(who) else body)
    return " ".join(parts)


def _gap(before: Line, after: Line) -> bool:
    """Whether turns of the conversation were left out between two adjacent lines."""
    a, b = before.turn.seq, after.turn.seq
    return a is not None and b is not None and b - a > 1


def _group_lines(group: Group) -> list[str]:
    out: list[str] = []
    previous: Line | None = None
    for line in group.lines:
        if previous is not None and _gap(previous, line):
            out.append(GAP_MARK)
        out.append(line.text)
        previous = line
    return out


def _role(turn: Turn) -> str:
    return turn.role if turn.role in ROLES else "user"


def render(groups: Sequence[Group], fmt: str) -> Rendered:
    """The block as text, or as chat messages (``fmt == "messages"``)."""
    if fmt != "messages":
        return "\n\n".join("\n".join([g.header, *_group_lines(g)]) for g in groups)
    messages: list[dict[str, str]] = []
    for group in groups:
        if group.conversation_id is None:
            lines = [line.text for line in group.lines]
            messages.append({"role": "system", "content": "\n".join([group.header, *lines])})
        else:
            messages.extend(
                {"role": _role(line.turn), "content": line.text} for line in group.lines
            )
    return messages


class Tally:
    """The tokens of a growing block as the sum of its pieces' counts, kept up to date line
    by line (exact for a tokenizer that splits on whitespace before anything else, like
    WordPiece; the packer counts the whole block after)."""

    def __init__(self, fmt: str, count: Callable[[str], int]) -> None:
        self.messages = fmt == "messages"
        self.count = count
        self.newline = count("\n")
        self.gap = count(GAP_MARK) + self.newline
        self.total = 0
        self._groups: dict[str | None, list[Line]] = {}

    def cost(self, line: Line) -> int:
        """How many tokens adding ``line`` adds."""
        members = self._groups.get(line.turn.conversation_id)
        own = self.count(line.text)
        header = Group(line.turn.conversation_id, []).header
        if self.messages:
            if line.turn.conversation_id is not None:
                return own
            return own + self.newline + (self.count(header) if members is None else 0)
        if members is None:
            between = self.count("\n\n") if self._groups else 0
            return self.count(header) + self.newline + own + between
        at = bisect.bisect(members, _time_key(line), key=_time_key)
        before = members[at - 1] if at > 0 else None
        after = members[at] if at < len(members) else None
        gaps = 0
        if before is not None and after is not None and _gap(before, after):
            gaps -= 1
        if before is not None and _gap(before, line):
            gaps += 1
        if after is not None and _gap(line, after):
            gaps += 1
        return own + self.newline + gaps * self.gap

    def add(self, line: Line) -> None:
        """Count ``line`` in."""
        self.total += self.cost(line)
        members = self._groups.setdefault(line.turn.conversation_id, [])
        bisect.insort(members, line, key=_time_key)
