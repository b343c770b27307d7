"""The memory and link lines of the export format, and the report of an import."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from somafractalmemory.schemas import LinkCreate, MemoryCreate

MAX_KEPT_ERRORS = 1000


class MemoryLine(MemoryCreate):
    """A memory line: the fields of ``POST /memories`` plus ``kind`` and ``created_at``.
    Unknown fields are ignored, so files from a newer version-1 writer still import."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["memory"]
    # Checked by canonical_coord, which accepts every spelling the service stores.
    coord: str = Field(max_length=1024)
    created_at: datetime | None = None
    # Version 3: the coordinate of the memory that superseded it, applied after every line.
    superseded_by: str | None = Field(default=None, max_length=1024)

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-01-31T12:00:00+00:00")
        return value


class LinkLine(LinkCreate):
    """A link line: the fields of ``POST /graph/link`` plus ``kind``."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["link"]
    from_coord: str = Field(max_length=1024)
    to_coord: str = Field(max_length=1024)


@dataclass(frozen=True)
class LineError:
    """A line of the file that was not imported, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    """What an import did. ``errors`` keeps the first :data:`MAX_KEPT_ERRORS` bad lines;
    ``error_count`` counts them all."""

    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    links_created: int = 0
    links_updated: int = 0
    links_unchanged: int = 0
    items_created: int = 0
    items_replaced: int = 0
    items_unchanged: int = 0
    spaces_created: int = 0
    versions_imported: int = 0
    versions_unchanged: int = 0
    error_count: int = 0
    errors: list[LineError] = field(default_factory=list)
    vectors_used: bool = True

    @property
    def failed(self) -> bool:
        """Whether any line was not imported."""
        return self.error_count > 0

    def summary(self) -> str:
        """One line for people."""
        return (
            f"memories: {self.created} created, {self.replaced} replaced, "
            f"{self.unchanged} unchanged; links: {self.links_created} created, "
            f"{self.links_updated} updated, {self.links_unchanged} unchanged; "
            f"items: {self.items_created} created, {self.items_replaced} replaced, "
            f"{self.items_unchanged} unchanged; spaces: {self.spaces_created} created; "
            f"versions: {self.versions_imported} imported, {self.versions_unchanged} unchanged; "
            f"errors: {self.error_count}"
        )
