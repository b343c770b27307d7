"""Reads of the scope values a tenant's records carry (``user_id``, ``agent_id``,
``session_id``), for pickers such as the memory browser's scope filter.

Each value is found by one probe of the scope's partial index (migration 0010 indexes
``(tenant_id, <scope>)`` where the scope is set): a recursive query skips from one distinct
value to the next, so a page of ``n`` values costs ``n`` index probes however many records
carry each value.
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from somafractalmemory.models import SCOPE_FIELDS
from somafractalmemory.stores.pg_base import PostgresBase


def _distinct_values_sql(column: str) -> sa.TextClause:
    # The column name comes from SCOPE_FIELDS only, never from a request.
    return sa.text(
        f"""
WITH RECURSIVE found(value) AS (
    (SELECT {column} FROM records
     WHERE tenant_id = :tenant AND {column} IS NOT NULL AND {column} > :after
     ORDER BY {column} LIMIT 1)
    UNION ALL
    SELECT (SELECT r.{column} FROM records r
            WHERE r.tenant_id = :tenant AND r.{column} > found.value
            ORDER BY r.{column} LIMIT 1)
    FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL LIMIT :limit
"""
    )


_QUERIES: Final = {column: _distinct_values_sql(column) for column in SCOPE_FIELDS}


class ScopeReads(PostgresBase):
    """The distinct scope values of a tenant's records."""

    def scope_values(self, tenant_id: int, scope: str, after: str, limit: int) -> list[str]:
        """Up to ``limit`` distinct values of ``scope`` (one of :data:`SCOPE_FIELDS`) that the
        tenant's records carry (memories, items and conversation messages, superseded ones
        too), in the database's text order, each greater than ``after`` ("" for the first)."""
        query = _QUERIES[scope]
        with self.reading("scope_values") as conn:
            rows = conn.execute(query, {"tenant": tenant_id, "after": after, "limit": limit})
            return [str(value) for value in rows.scalars()]
