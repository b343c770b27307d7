"""PostgreSQL read of the turns around message hits, for ``POST /context``.

One query for all hits of a request: the messages of the hits' conversations numbered in
conversation order (``created_at``, then the record id, as the listing
``GET /conversations/{id}/messages`` runs), and those within ``window`` positions of a hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from somafractalmemory.stores.messages_postgres import conversation_path
from somafractalmemory.stores.postgres import PostgresStore


@dataclass(frozen=True)
class WindowMessage:
    """A message near a hit: its record id, conversation, key, value, time and position
    (1 = the conversation's first message)."""

    id: int
    conversation_id: str
    key: str
    value: dict[str, Any]
    created_at: datetime
    seq: int


# The hits' conversations numbered in conversation order (light columns only), the hits'
# positions, the positions within ``window`` of one (equality on the path: a hash join), and
# only then the rows themselves, by primary key.
_WINDOWS = sa.text(
    """
    WITH ranked AS MATERIALIZED (
        SELECT id, namespace_path,
               row_number() OVER (PARTITION BY namespace_path ORDER BY created_at, id) AS seq
        FROM records
        WHERE tenant_id = :tenant_id AND namespace_path = ANY(:paths)
    ),
    hits AS (SELECT namespace_path, seq FROM ranked WHERE id = ANY(:hit_ids)),
    wanted AS (
        SELECT DISTINCT r.id, r.seq
        FROM ranked r JOIN hits h ON r.namespace_path = h.namespace_path
        WHERE r.seq BETWEEN h.seq - :window AND h.seq + :window
    )
    SELECT records.id, records.namespace, records.key, records.payload, records.created_at,
           wanted.seq
    FROM wanted JOIN records ON records.id = wanted.id
    """
)


def message_windows(
    store: PostgresStore,
    tenant_id: int,
    hits: Sequence[tuple[int, str]],
    window: int,
) -> list[WindowMessage]:
    """The hits (record id, conversation id) and the messages up to ``window`` positions
    before and after each, of the tenant's conversations (each message once)."""
    if not hits:
        return []
    params = {
        "tenant_id": tenant_id,
        "paths": sorted({conversation_path(cid) for _id, cid in hits}),
        "hit_ids": [record_id for record_id, _cid in hits],
        "window": window,
    }
    with store.reading("message_windows") as conn:
        return [
            WindowMessage(
                id=int(row.id),
                conversation_id=str(row.namespace[1]),
                key=row.key,
                value=row.payload,
                created_at=row.created_at,
                seq=int(row.seq),
            )
            for row in conn.execute(_WINDOWS, params)
        ]
