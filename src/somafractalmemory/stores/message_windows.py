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

from somafractalmemory.stores.messages_postgres import CONVERSATIONS
from somafractalmemory.stores.postgres import PostgresStore
from somafractalmemory.stores.tables import records


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


def message_windows(
    store: PostgresStore, tenant_id: int, hit_ids: Sequence[int], window: int
) -> list[WindowMessage]:
    """The hits and the messages up to ``window`` positions before and after each, of the
    tenant's conversations (each message once)."""
    if not hit_ids:
        return []
    in_conversation = sa.and_(
        records.c.tenant_id == tenant_id,
        records.c.namespace[1] == CONVERSATIONS,
        sa.func.cardinality(records.c.namespace) == 2,
    )
    paths = (
        sa.select(records.c.namespace_path)
        .where(in_conversation, records.c.id.in_(list(hit_ids)))
        .scalar_subquery()
    )
    ranked = (
        sa.select(
            records.c.id,
            records.c.namespace,
            records.c.namespace_path,
            records.c.key,
            records.c.payload,
            records.c.created_at,
            sa.func.row_number()
            .over(
                partition_by=records.c.namespace_path, order_by=(records.c.created_at, records.c.id)
            )
            .label("seq"),
        )
        .where(in_conversation, records.c.namespace_path.in_(paths))
        .cte("ranked")
    )
    hits = sa.select(ranked.c.namespace_path, ranked.c.seq).where(ranked.c.id.in_(list(hit_ids)))
    hits_cte = hits.cte("hits")
    query = (
        sa.select(ranked)
        .distinct()
        .join(
            hits_cte,
            sa.and_(
                hits_cte.c.namespace_path == ranked.c.namespace_path,
                ranked.c.seq.between(hits_cte.c.seq - window, hits_cte.c.seq + window),
            ),
        )
    )
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
            for row in conn.execute(query)
        ]
