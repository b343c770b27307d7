"""Reads of the history (``record_history``, written by a trigger on ``records``): a record's
versions, the version current at a time, the tenant's change feed, and exact duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from somafractalmemory.models import MemoryType, RecordVersion, Scopes
from somafractalmemory.stores.pg_base import PostgresBase, from_row
from somafractalmemory.stores.tables import record_history, text_hash_sql

# A change is served by the feed once every transaction older than its own has ended: any
# change not yet visible then belongs to a younger transaction, so it sorts after the cursor.
_FEED_HORIZON = sa.text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def version_from_row(row: Any) -> RecordVersion:
    return from_row(
        RecordVersion,
        row,
        namespace=tuple(row.namespace),
        memory_type=MemoryType(row.memory_type) if row.memory_type else None,
    )


def _newest_first(tenant_id: int, namespace_path: str, key: str) -> sa.Select[Any]:
    """The versions of the record at ``key``, newest first."""
    return (
        sa.select(record_history)
        .where(
            record_history.c.tenant_id == tenant_id,
            record_history.c.namespace_path == namespace_path,
            record_history.c.key == key,
        )
        .order_by(record_history.c.recorded_at.desc(), record_history.c.id.desc())
    )


class HistoryReads(PostgresBase):
    """A record's past, and the tenant's changes in order."""

    def versions(
        self, tenant_id: int, namespace_path: str, key: str, before_id: int | None, limit: int
    ) -> list[RecordVersion]:
        """Up to ``limit`` versions of the record at ``key``, newest first, older than the
        version ``before_id`` (a page cursor) when given."""
        query = _newest_first(tenant_id, namespace_path, key).limit(limit)
        if before_id is not None:
            query = query.where(
                sa.text(
                    "(record_history.recorded_at, record_history.id) < "
                    "(SELECT recorded_at, id FROM record_history WHERE id = :before)"
                ).bindparams(before=before_id)
            )
        with self.reading("versions") as conn:
            return [version_from_row(row) for row in conn.execute(query)]

    def version_at(
        self, tenant_id: int, namespace_path: str, key: str, as_of: datetime
    ) -> tuple[RecordVersion, datetime] | None:
        """The version of the record at ``key`` that was current at ``as_of`` (the last one
        recorded by then) and when that record was created, or None when there was none or
        it had been deleted."""
        query = (
            _newest_first(tenant_id, namespace_path, key)
            .where(record_history.c.recorded_at <= as_of)
            .limit(1)
        )
        with self.reading("version_at") as conn:
            row = conn.execute(query).first()
            if row is None or row.change == "deleted":
                return None
            created = conn.execute(
                sa.select(sa.func.min(record_history.c.recorded_at)).where(
                    record_history.c.tenant_id == tenant_id,
                    record_history.c.record_id == row.record_id,
                )
            ).scalar_one()
        return version_from_row(row), created

    def changes(
        self, tenant_id: int, after: tuple[int, int], limit: int
    ) -> list[tuple[int, RecordVersion]]:
        """Up to ``limit`` of the tenant's changes after the (txid, id) cursor ``after``, in
        transaction order, each with its txid (for the next cursor)."""
        txid, history_id = after
        query = (
            sa.select(record_history)
            .where(
                record_history.c.tenant_id == tenant_id,
                sa.tuple_(record_history.c.txid, record_history.c.id) > sa.tuple_(txid, history_id),
                record_history.c.txid < _FEED_HORIZON,
            )
            .order_by(record_history.c.txid, record_history.c.id)
            .limit(limit)
        )
        with self.reading("changes") as conn:
            return [(int(row.txid), version_from_row(row)) for row in conn.execute(query)]

    def history_page(
        self, tenant_id: int, after_id: int, limit: int, scopes: Scopes | None = None
    ) -> list[RecordVersion]:
        """Up to ``limit`` of the tenant's versions with id greater than ``after_id``, by id,
        of ``scopes`` only when given (the scopes the version was written with; for
        export)."""
        scoped = [record_history.c[name] == v for name, v in (scopes or Scopes()).given().items()]
        query = (
            sa.select(record_history)
            .where(record_history.c.tenant_id == tenant_id, record_history.c.id > after_id)
            .where(*scoped)
            .order_by(record_history.c.id)
            .limit(limit)
        )
        with self.reading("history_page") as conn:
            return [version_from_row(row) for row in conn.execute(query)]

    def exact_duplicates(
        self,
        tenant_id: int,
        namespace_path: str,
        texts: Sequence[str],
        users: Sequence[str | None] | None = None,
    ) -> list[list[str]]:
        """For each of ``texts``, the keys of the tenant's current records in the namespace
        whose text is the same once normalised (PostgreSQL's own hash: one rule); of the
        end user ``users[i]`` only, when one is given for it."""
        query = sa.text(
            "SELECT g.n, r.key FROM unnest(CAST(:texts AS text[]), CAST(:users AS text[])) "
            "WITH ORDINALITY AS g(t, u, n) "
            f"JOIN records r ON r.text_hash = {text_hash_sql('g.t')} "
            "WHERE r.tenant_id = :tenant AND r.namespace_path = :ns "
            "AND r.superseded_by IS NULL AND (g.u IS NULL OR r.user_id = g.u) "
            "ORDER BY g.n, r.id"
        )
        found: list[list[str]] = [[] for _ in texts]
        with self.reading("exact_duplicates") as conn:
            params = {
                "texts": list(texts),
                "users": list(users) if users is not None else [None] * len(texts),
                "tenant": tenant_id,
                "ns": namespace_path,
            }
            for row in conn.execute(query, params):
                found[int(row.n) - 1].append(row.key)
        return found
