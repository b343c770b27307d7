"""The version lines of the export format (version 3): every version the history keeps of
the tenant's records, by id, after the items. An import adds the versions it does not hold
yet (the same key, change and recording time), so importing a file twice adds nothing; the
import's own writes add versions of their own, recorded at the time of the import."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from somafractalmemory.core.item_paths import check_key, check_namespace
from somafractalmemory.models import MemoryType, RecordVersion, Scopes, Tenant
from somafractalmemory.stores.postgres import PostgresStore

VERSION_BATCH = 500


class VersionLine(BaseModel):
    """A version line: one version of a memory (``namespace`` empty, ``key`` its coordinate)
    or of an item."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["version"]
    namespace: list[str] = Field(default_factory=list, max_length=10)
    key: str = Field(min_length=1, max_length=1024)
    change: Literal["created", "replaced", "superseded", "deleted"]
    payload: dict[str, Any]
    memory_type: MemoryType | None = None
    importance: float | None = None
    text: str = ""
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None
    superseded_by: str | None = None
    recorded_at: AwareDatetime


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def version_records(
    postgres: PostgresStore, tenant: Tenant, page_size: int, scopes: Scopes | None = None
) -> Iterator[dict[str, Any]]:
    """The tenant's history as version lines, oldest first, a page at a time; of ``scopes``
    only when given."""
    after = 0
    while page := postgres.history_page(tenant.id, after, page_size, scopes):
        for version in page:
            yield _line(version)
        after = page[-1].id


def _line(version: RecordVersion) -> dict[str, Any]:
    return {
        "kind": "version",
        "namespace": list(version.namespace),
        "key": version.key,
        "change": version.change,
        "payload": version.payload,
        "memory_type": version.memory_type.value if version.memory_type else None,
        "importance": version.importance,
        "text": version.text,
        "valid_from": _time(version.valid_from),
        "valid_to": _time(version.valid_to),
        "superseded_by": version.superseded_by,
        "recorded_at": _time(version.recorded_at),
    }


class VersionImport:
    """Version lines waiting to be written, in batches."""

    def __init__(self, postgres: PostgresStore, tenant: Tenant) -> None:
        self.postgres = postgres
        self.tenant = tenant
        self._pending: list[VersionLine] = []
        self.imported = 0
        self.unchanged = 0

    def add(self, line: VersionLine) -> None:
        """Queue a version (its namespace and key checked: a 422 names them)."""
        if line.namespace:
            check_namespace(line.namespace)
            check_key(line.key)
        self._pending.append(line)
        if len(self._pending) >= VERSION_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write the queued versions the history does not hold yet."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        rows = [line.model_dump(exclude={"kind"}) for line in batch]
        for row in rows:
            row["memory_type"] = row["memory_type"].value if row["memory_type"] else None
        with self.postgres.unit_of_work(self.tenant.key_id) as uow:
            added = uow.insert_versions(self.tenant.id, rows)
            uow.commit()
        self.imported += added
        self.unchanged += len(batch) - added
