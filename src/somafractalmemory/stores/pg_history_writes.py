"""The history's writes, part of every :class:`~.pg_writes.UnitOfWork`: supersession, purges,
imported versions and the retention sweep. (The versions themselves are written by the
trigger on ``records``.)"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from somafractalmemory.stores.pg_base import PostgresBase
from somafractalmemory.stores.tables import record_history, records


class HistoryWrites:
    """Statements on the history and the records' state, inside the unit of work."""

    _store: PostgresBase

    @property
    def conn(self) -> Connection:  # pragma: no cover - provided by UnitOfWork
        raise NotImplementedError

    def supersede(
        self, tenant_id: int, namespace_path: str, keys: Sequence[str], successor: str
    ) -> None:
        """Mark the records at ``keys`` superseded by ``successor`` (a key of the same
        namespace): from now on they leave default search and listing; a fact without an end
        of validity ends now."""
        now = sa.func.clock_timestamp()
        statement = (
            sa.update(records)
            .where(
                records.c.tenant_id == tenant_id,
                records.c.namespace_path == namespace_path,
                records.c.key.in_(list(keys)),
            )
            .values(
                superseded_by=successor,
                superseded_at=now,
                valid_to=sa.func.coalesce(
                    records.c.valid_to,
                    sa.func.greatest(
                        now, records.c.valid_from + sa.text("interval '1 microsecond'")
                    ),
                ),
            )
        )
        with self._store.translated("supersede"):
            self.conn.execute(statement)

    def purge_history(
        self, tenant_id: int, namespace_path: str | None, keys: Sequence[str] | None
    ) -> int:
        """Delete the history of the records at ``keys`` (every record of the tenant when
        ``namespace_path`` is None); returns how many versions went."""
        statement = sa.delete(record_history).where(record_history.c.tenant_id == tenant_id)
        if namespace_path is not None:
            statement = statement.where(record_history.c.namespace_path == namespace_path)
        if keys is not None:
            statement = statement.where(record_history.c.key.in_(list(keys)))
        with self._store.translated("purge_history"):
            return int(self.conn.execute(statement).rowcount)

    def insert_versions(self, tenant_id: int, rows: Sequence[dict[str, Any]]) -> int:
        """Add imported versions to the tenant's history, each unless a version of the same
        key, change and recording time is there; returns how many were added."""
        statement = sa.text(
            "INSERT INTO record_history (tenant_id, record_id, namespace_path, key, change, "
            "namespace, payload, memory_type, importance, text, valid_from, valid_to, "
            "superseded_by, recorded_at) "
            "SELECT :tenant, coalesce((SELECT id FROM records r WHERE r.tenant_id = :tenant "
            "AND r.namespace_path = :path AND r.key = :key), 0), :path, :key, :change, "
            "CAST(:namespace AS text[]), CAST(:payload AS jsonb), :memory_type, :importance, "
            ":text, :valid_from, :valid_to, :superseded_by, :recorded_at "
            "WHERE NOT EXISTS (SELECT 1 FROM record_history h WHERE h.tenant_id = :tenant "
            "AND h.namespace_path = :path AND h.key = :key AND h.change = :change "
            "AND h.recorded_at = :recorded_at)"
        )
        added = 0
        with self._store.translated("insert_versions"):
            for row in rows:
                params = {
                    **row,
                    "tenant": tenant_id,
                    "path": ".".join(row["namespace"]),
                    "payload": json.dumps(row["payload"]),
                }
                added += int(self.conn.execute(statement, params).rowcount)
        return added

    def sweep_history(self, retention_days: float, limit: int) -> int:
        """Delete up to ``limit`` versions no longer current since before the retention
        cut-off: a newer version of the key was recorded before it, or the version is a
        deletion recorded before it; never one a webhook of the tenant has still to
        deliver."""
        statement = sa.text(
            "DELETE FROM record_history WHERE id IN ("
            "SELECT h.id FROM record_history h "
            "WHERE h.recorded_at < now() - :keep * interval '1 day' "
            "AND (h.change = 'deleted' OR EXISTS (SELECT 1 FROM record_history n "
            "WHERE n.tenant_id = h.tenant_id AND n.namespace_path = h.namespace_path "
            "AND n.key = h.key AND (n.recorded_at, n.id) > (h.recorded_at, h.id) "
            "AND n.recorded_at < now() - :keep * interval '1 day')) "
            # A change a webhook has not received yet waits for it.
            "AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = h.tenant_id "
            "AND (w.cursor_txid, w.cursor_id) < (h.txid, h.id)) "
            "ORDER BY h.id LIMIT :limit)"
        )
        with self._store.translated("sweep_history"):
            result = self.conn.execute(statement, {"keep": retention_days, "limit": limit})
        return int(result.rowcount)
