"""What changed: a record's versions, the version current at a time, and the tenant's change
feed, all read from the history PostgreSQL keeps (migration 0008's trigger).

Cursors are opaque: a version cursor is ``v:<history id>`` (older versions follow), a feed
cursor ``c:<txid>:<history id>`` (the feed is in transaction order; a change is served once
every transaction older than its own has ended, so a resumed reader never skips one).
"""

from __future__ import annotations

from datetime import datetime

from somafractalmemory.core.page_cursor import pack_numbers, unpack_numbers
from somafractalmemory.errors import InvalidInputError, NotFoundError
from somafractalmemory.models import RecordVersion, Tenant
from somafractalmemory.stores.postgres import PostgresStore


def feed_cursor(position: tuple[int, int]) -> str:
    """The change feed's cursor for the (txid, history id) position."""
    return pack_numbers("c", *position)


def feed_position(cursor: str, field: str = "cursor") -> tuple[int, int]:
    """The (txid, history id) position of a change feed cursor; 422 naming ``field`` when it
    is not one this service returned."""
    txid, history_id = unpack_numbers(cursor, "c", 2, field)
    return txid, history_id


def _aware(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInputError("must carry a time zone (RFC 3339)", field)
    return moment


class History:
    """Reads of the history of every kind of record (memories: namespace path ``''``)."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres

    def versions(
        self, tenant: Tenant, namespace_path: str, key: str, limit: int, cursor: str | None
    ) -> tuple[list[RecordVersion], str | None]:
        """A page of the record's versions, newest first, and the cursor of the next page;
        404 when the key never had a record (or its history was purged)."""
        before = unpack_numbers(cursor, "v", 1)[0] if cursor else None
        page = self.postgres.versions(tenant.id, namespace_path, key, before, limit)
        if not page and cursor is None:
            raise NotFoundError(f"no history for key {key!r}")
        next_cursor = pack_numbers("v", page[-1].id) if len(page) == limit else None
        return page, next_cursor

    def version_at(
        self, tenant: Tenant, namespace_path: str, key: str, as_of: datetime
    ) -> tuple[RecordVersion, datetime]:
        """The version current at ``as_of`` and when its record was created; 404 when there
        was none then (not yet created, or deleted)."""
        found = self.postgres.version_at(tenant.id, namespace_path, key, _aware(as_of, "as_of"))
        if found is None:
            raise NotFoundError(f"no record at key {key!r} as of {as_of.isoformat()}")
        return found

    def changes(
        self, tenant: Tenant, after: str | None, limit: int
    ) -> tuple[list[RecordVersion], str]:
        """The tenant's next changes after the cursor (from the start without one), and the
        cursor to resume from (the same one when nothing new is there yet)."""
        position = (0, 0) if not after else feed_position(after)
        rows = self.postgres.changes(tenant.id, position, limit)
        if not rows:
            return [], after or feed_cursor((0, 0))
        txid, last = rows[-1]
        return [version for _txid, version in rows], feed_cursor((txid, last.id))

    def sweep(self, retention_days: float, limit: int = 5000) -> int:
        """Delete up to ``limit`` versions that stopped being current more than
        ``retention_days`` ago (a newer version, or the record's deletion, was recorded
        before then); a record's current version is kept however old. Returns how many."""
        with self.postgres.unit_of_work() as uow:
            swept = uow.sweep_history(retention_days, limit)
            uow.commit()
        return swept
