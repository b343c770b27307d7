"""A prompt-ready context block: ranked hits packed into a token budget (pure, no I/O).

Input: candidate hits, each a memory or a message with its score and signals, a message hit
with the neighbouring turns of its conversation (as many as the request's ``window``). Output
(:class:`Packed`): the block, its token count, the hits it holds (``sources``) and whether the
budget cut anything (``truncated``).

How the block is built:
- Hits are taken best first (score, then kind, conversation and key, so ties are stable). Each
  hit brings its own line, then its neighbours nearest first; a line already in the block (a
  neighbour of an earlier hit, the same message found twice) is not repeated, so overlapping
  windows merge. A line that does not fit is left out (``truncated``); a hit's neighbours stop
  at the first that does not fit; later, smaller hits may still fit.
- The top hit is never dropped: when even it does not fit, its text is cut at a token boundary
  and ends with ``…`` (its source and the block say ``truncated``).
- Lines are grouped by conversation (memories without one in a ``Memories`` group), groups in
  the order of their best hit, lines inside a group in time order (``created_at``, then the
  position in the conversation, then the key). Each line reads ``[YYYY-MM-DD HH:MM] speaker:
  text`` (UTC; what is unknown is left out), whitespace runs in a text collapsed to one space;
  a ``…`` line marks turns left out between two lines of one conversation.
- ``format="messages"``: the same selection as OpenAI-style chat messages: the memories as one
  ``system`` message, each conversation line a message with the turn's role.

Tokens are counted by the chosen tokenizer on the block exactly as returned (for messages: the
sum over their ``content``). Lines are chosen by adding up the counts of their pieces; the
finished block is then counted whole, and while that count is over the budget (a tokenizer
whose counts do not add up across lines) the last line added is taken out again. So the
answer is never over the budget, and the same input gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from somafractalmemory.context_schemas import MAX_BUDGET_TOKENS, MIN_BUDGET_TOKENS
from somafractalmemory.core.context_render import (
    CUT_MARK,
    Line,
    Rendered,
    Tally,
    Turn,
    order_groups,
    render,
    utc,
)
from somafractalmemory.core.tokens import TokenCounter
from somafractalmemory.errors import InvalidInputError

Kind = Literal["memory", "message"]
__all__ = [
    "MAX_BUDGET_TOKENS",
    "MIN_BUDGET_TOKENS",
    "Candidate",
    "Packed",
    "Source",
    "Turn",
    "check_budget",
    "pack",
]
Format = Literal["text", "messages"]


@dataclass(frozen=True)
class Candidate:
    """A ranked hit: ``kind`` says what it is; ``neighbours`` are the turns around a message
    hit (the hit itself may be among them: it is skipped)."""

    kind: Kind
    turn: Turn
    score: float
    signals: Mapping[str, int | float | None] = field(default_factory=dict)
    neighbours: Sequence[Turn] = ()


@dataclass(frozen=True)
class Source:
    """A hit the block holds; ``truncated`` when its text was cut to fit."""

    kind: Kind
    key: str
    conversation_id: str | None
    score: float
    signals: Mapping[str, int | float | None]
    truncated: bool = False


@dataclass(frozen=True)
class Packed:
    """The packed block and what it holds."""

    context: str | list[dict[str, str]]
    tokens: int
    budget_tokens: int
    sources: list[Source]
    truncated: bool
    tokenizer: str


def check_budget(budget_tokens: int) -> None:
    """422 naming ``budget_tokens`` outside ``MIN_BUDGET_TOKENS..MAX_BUDGET_TOKENS``."""
    if not MIN_BUDGET_TOKENS <= budget_tokens <= MAX_BUDGET_TOKENS:
        raise InvalidInputError(
            f"must be between {MIN_BUDGET_TOKENS} (the smallest block: a header and one "
            f"short line) and {MAX_BUDGET_TOKENS}, got {budget_tokens}",
            "budget_tokens",
        )


def pack(
    candidates: Sequence[Candidate],
    budget_tokens: int,
    counter: TokenCounter,
    fmt: Format = "text",
) -> Packed:
    """Pack ``candidates`` into at most ``budget_tokens`` tokens of ``counter`` (see the
    module docstring)."""
    check_budget(budget_tokens)
    packer = _Packer(budget_tokens, counter, fmt)
    for rank, candidate in enumerate(_ranked(candidates)):
        if not packer.add(rank, candidate):
            break
    return packer.finish()


def _ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best first, ties broken by kind, conversation and key; a hit found twice kept once
    (at its best), empty texts dropped."""
    usable = [c for c in candidates if c.turn.text.strip()]
    ordered = sorted(
        usable,
        # the last key: the same message found twice with different fields, at one score
        key=lambda c: (-c.score, c.kind, c.turn.conversation_id or "", c.turn.key, repr(c)),
    )
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for candidate in ordered:
        lid = _line_id(candidate.kind, candidate.turn)
        if lid not in seen:
            seen.add(lid)
            unique.append(candidate)
    return unique


def _line_id(kind: Kind, turn: Turn) -> tuple[str, str, str]:
    return (kind, turn.conversation_id or "", turn.key)


class _Packer:
    """The greedy selection of lines, one hit at a time."""

    def __init__(self, budget: int, counter: TokenCounter, fmt: Format) -> None:
        self.budget = budget
        self.counter = counter
        self.fmt: Format = fmt
        self.lines: dict[tuple[str, str, str], Line] = {}
        self.sources: list[tuple[tuple[str, str, str], Candidate]] = []
        self.truncated = False
        self.cut: Rendered | None = None  # the block, when the top hit had to be cut
        self._counts: dict[str, int] = {}
        self.tally = Tally(fmt, self.count)

    def count(self, text: str) -> int:
        """Tokens of one piece of the block, counted once."""
        known = self._counts.get(text)
        if known is None:
            known = self._counts[text] = self.counter.count(text)
        return known

    def try_add(self, line: Line) -> bool:
        """Whether ``line`` fits (by the tally); if so it is added."""
        if self.tally.total + self.tally.cost(line) > self.budget:
            return False
        self.tally.add(line)
        self.lines[_line_id(line.kind, line.turn)] = line
        return True

    def add(self, rank: int, candidate: Candidate) -> bool:
        """Add a hit and its neighbours; False when packing is over (the top hit was cut)."""
        lid = _line_id(candidate.kind, candidate.turn)
        line = Line.of(candidate.kind, candidate.turn, rank, len(self.lines))
        if lid not in self.lines and not self.try_add(line):
            if self.lines:  # a later hit: left out, a shorter one may still fit
                self.truncated = True
                return True
            self.lines[lid] = line  # the top hit: cut to fit
            self.sources.append((lid, candidate))
            self.cut = self._cut_block()
            return False
        self.sources.append((lid, candidate))
        for turn in _nearest_first(candidate):
            nid = _line_id("message", turn)
            if nid in self.lines:
                continue
            line = Line.of("message", turn, rank, len(self.lines))
            if not self.try_add(line):
                self.truncated = True
                break
        return True

    def _cut_block(self) -> Rendered:
        """The block of the top hit alone, cut at a token boundary to fit, ending in ``…``
        (the hit's text comes last in it, so the header and the line's date and speaker stay
        when there is room for them)."""
        self.truncated = True
        rendered = render(order_groups(list(self.lines.values())), self.fmt)
        if isinstance(rendered, str):
            return self._cut_text(rendered)
        (message,) = rendered
        return [{**message, "content": self._cut_text(message["content"])}]

    def _cut_text(self, text: str) -> str:
        """The longest prefix of ``text`` (at a token boundary) that, marked as cut, fits."""
        points = self.counter.cut_points(text)
        best, low, high = "", 0, len(points) - 1
        while low <= high:
            middle = (low + high) // 2
            trial = text[: points[middle]].rstrip() + CUT_MARK
            if self.counter.count(trial) <= self.budget:
                best, low = trial, middle + 1
            else:
                high = middle - 1
        return best

    def _exact(self, rendered: Rendered) -> int:
        if isinstance(rendered, str):
            return self.counter.count(rendered)
        return sum(self.counter.count(m["content"]) for m in rendered)

    def finish(self) -> Packed:
        """The block: counted whole, lines taken out again while it is over the budget."""
        rendered = self.cut
        tokens = 0 if rendered is None else self._exact(rendered)
        while rendered is None:
            rendered = render(order_groups(list(self.lines.values())), self.fmt)
            tokens = self._exact(rendered)
            if tokens <= self.budget:
                break
            if len(self.lines) == 1:
                rendered = self.cut = self._cut_block()
                tokens = self._exact(rendered)
                break
            # The counts did not add up: take the last line added out again.
            del self.lines[max(self.lines, key=lambda lid: self.lines[lid].order)]
            self.truncated = True
            rendered = None
        first = self.sources[0][0] if self.sources else None
        sources = [
            Source(
                c.kind,
                c.turn.key,
                c.turn.conversation_id,
                c.score,
                dict(c.signals),
                truncated=self.cut is not None and lid == first,
            )
            for lid, c in self.sources
            if lid in self.lines
        ]
        return Packed(rendered, tokens, self.budget, sources, self.truncated, self.counter.name)


def _nearest_first(candidate: Candidate) -> list[Turn]:
    """The hit's neighbours, nearest first: by distance in the conversation when positions are
    known, else by distance in time, else as given; the hit itself left out."""
    hit = candidate.turn
    others = [
        t if t.conversation_id is not None else replace(t, conversation_id=hit.conversation_id)
        for t in candidate.neighbours
        if t.key != hit.key
    ]

    def distance(item: tuple[int, Turn]) -> tuple[float, int]:
        index, turn = item
        if hit.seq is not None and turn.seq is not None:
            return (abs(turn.seq - hit.seq), index)
        if hit.created_at is not None and turn.created_at is not None:
            seconds = abs((utc(turn.created_at) - utc(hit.created_at)).total_seconds())
            return (seconds, index)
        return (0.0, index)

    return [t for _i, t in sorted(enumerate(others), key=distance)]
