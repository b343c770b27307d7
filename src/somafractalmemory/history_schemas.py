"""Request and response models of the history endpoints: versions and the change feed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from somafractalmemory.models import MemoryType, RecordVersion


class VersionPublic(BaseModel):
    """One version of a record, as the history keeps it."""

    version_id: int
    change: Literal["created", "replaced", "superseded", "deleted"]
    recorded_at: datetime = Field(description="When SFM recorded this version")
    payload: dict[str, Any] = Field(description="A memory's payload, an item's value")
    memory_type: MemoryType | None = None
    importance: float | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    superseded_by: str | None = None
    api_key_id: int | None = Field(default=None, description="The API key that made it")


class HistoryResponse(BaseModel):
    """A page of versions, newest first; pass ``next_cursor`` back as ``cursor``."""

    versions: list[VersionPublic]
    next_cursor: str | None


class ChangePublic(VersionPublic):
    """A change of one of the tenant's records: a memory (``namespace`` empty, ``key`` its
    coordinate) or an item."""

    kind: Literal["memory", "item"]
    namespace: list[str]
    key: str


def version_entry(version: RecordVersion) -> VersionPublic:
    """A version as the history endpoints show it (its fields by name, ``id`` as ``version_id``)."""
    return VersionPublic.model_validate(vars(version) | {"version_id": version.id})


def change_public(version: RecordVersion) -> ChangePublic:
    """A version as the change feed (and a webhook delivery) shows it."""
    return ChangePublic(
        **version_entry(version).model_dump(),
        kind="item" if version.namespace else "memory",
        namespace=list(version.namespace),
        key=version.key,
    )


class ChangesResponse(BaseModel):
    """The next changes in transaction order; ``next_cursor`` resumes after the last one
    (the same cursor when nothing new is there yet)."""

    changes: list[ChangePublic]
    next_cursor: str
