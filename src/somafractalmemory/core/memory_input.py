"""Memories as callers give them: validated and made canonical before any store is touched."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from somafractalmemory.core.coords import canonical_coord
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import MemoryType, NewMemory

OnDuplicate = Literal["store", "skip", "supersede"]
ON_DUPLICATE: tuple[OnDuplicate, ...] = ("store", "skip", "supersede")


def text_to_embed(payload: dict[str, Any]) -> str:
    """``payload["text"]`` when it is a non-empty string, else the payload as sorted JSON."""
    text = payload.get("text")
    if isinstance(text, str) and text.strip():
        return text
    if "text" in payload:
        raise InvalidInputError("must be a non-empty string when present", "payload.text")
    if not payload:
        raise InvalidInputError("must not be empty: give it a `text` or other fields", "payload")
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class MemoryInput:
    """A memory as a caller gives it, before canonicalisation and embedding.

    ``supersedes`` names memories this one replaces (they leave default search, stay readable
    by coordinate); ``if_absent`` makes the write create-only; ``on_duplicate`` says what to
    do when a current memory has the same text (``store`` it anyway, ``skip`` the write, or
    ``supersede`` the duplicates)."""

    coord: str
    payload: dict[str, Any]
    memory_type: MemoryType
    importance: float
    vector: list[float] | None = None
    created_at: datetime | None = None  # import only: keep the exported creation time
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    supersedes: tuple[str, ...] = ()
    if_absent: bool = False
    on_duplicate: OnDuplicate = "store"
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class PreparedWrite:
    """A validated memory and what its write asks for, coordinates canonical."""

    memory: NewMemory
    supersedes: tuple[str, ...]
    if_absent: bool
    on_duplicate: OnDuplicate


def prepare(items: Sequence[MemoryInput], dimension: int) -> list[PreparedWrite]:
    """Validate and canonicalise a request's memories; a 422 names the first bad field."""
    prepared: list[PreparedWrite] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        prefix = f"memories[{index}]." if len(items) > 1 else ""
        coord = canonical_coord(item.coord, f"{prefix}coord")
        if coord in seen:
            raise InvalidInputError(
                f"coordinate {coord!r} also appears at memories[{seen[coord]}]", f"{prefix}coord"
            )
        seen[coord] = index
        try:
            text = text_to_embed(item.payload)
        except InvalidInputError as exc:
            raise InvalidInputError(exc.detail) from None
        if item.vector is not None and len(item.vector) != dimension:
            raise InvalidInputError(
                f"must have {dimension} numbers, got {len(item.vector)}", f"{prefix}vector"
            )
        _check_validity(item, prefix)
        if item.on_duplicate not in ON_DUPLICATE:
            raise InvalidInputError(f"must be one of {', '.join(ON_DUPLICATE)}", "on_duplicate")
        supersedes = tuple(
            dict.fromkeys(
                canonical_coord(c, f"{prefix}supersedes[{i}]")
                for i, c in enumerate(item.supersedes)
            )
        )
        if coord in supersedes:
            raise InvalidInputError("a memory cannot supersede itself", f"{prefix}supersedes")
        memory = NewMemory(
            coord,
            item.payload,
            item.memory_type,
            item.importance,
            text,
            item.vector,
            item.created_at,
            item.valid_from,
            item.valid_to,
            item.user_id,
            item.agent_id,
            item.session_id,
        )
        prepared.append(PreparedWrite(memory, supersedes, item.if_absent, item.on_duplicate))
    written = set(seen)
    for index, write in enumerate(prepared):
        both = written.intersection(write.supersedes)
        if both:
            prefix = f"memories[{index}]." if len(items) > 1 else ""
            raise InvalidInputError(
                f"{sorted(both)[0]!r} is written by this request too", f"{prefix}supersedes"
            )
    return prepared


def _check_validity(item: MemoryInput, prefix: str) -> None:
    for name in ("valid_from", "valid_to"):
        moment = getattr(item, name)
        if moment is not None and moment.tzinfo is None:
            raise InvalidInputError("must carry a time zone (RFC 3339)", f"{prefix}{name}")
    if item.valid_from is not None and item.valid_to is not None:
        if item.valid_to <= item.valid_from:
            raise InvalidInputError("must be after valid_from", f"{prefix}valid_to")
