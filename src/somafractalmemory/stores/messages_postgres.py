"""PostgreSQL access for conversation messages: records of the namespace
``("conversations", <conversation id>)``, and the records of one end user.

A message is created once and never replaced (the API's idempotence: the same message again
changes nothing, the same id with other content is refused), so its write is a plain insert
that skips a key a concurrent write created first. Listing runs in conversation order:
``created_at`` (the message's own time), then the record id, which the service reserves in
posting order. Writes run on a :class:`UnitOfWork` only the core services commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from somafractalmemory.models import Scopes
from somafractalmemory.stores.items_sql import in_prefix
from somafractalmemory.stores.items_tables import record_vectors
from somafractalmemory.stores.pg_base import from_row
from somafractalmemory.stores.postgres import PostgresStore, UnitOfWork
from somafractalmemory.stores.tables import (
    IS_ITEM,
    IS_MEMORY,
    record_history,
    records,
    scope_clauses,
)

CONVERSATIONS = "conversations"  # the first label of every conversation's namespace


def conversation_path(conversation_id: str) -> str:
    """The namespace path of a conversation's messages."""
    return f"{CONVERSATIONS}.{conversation_id}"


@dataclass(frozen=True)
class MessageRow:
    """A message to insert: its reserved record id, key, value, text, time and scopes."""

    id: int
    key: str
    value: dict[str, Any]
    text: str
    created_at: datetime | None
    scopes: Scopes
    has_vectors: bool


@dataclass(frozen=True)
class StoredMessage:
    """A message as stored."""

    id: int
    conversation_id: str
    key: str
    value: dict[str, Any]
    created_at: datetime
    user_id: str | None
    agent_id: str | None
    session_id: str | None


@dataclass(frozen=True)
class ConversationSummary:
    """One conversation of a listing: its size, first and last message times, scopes."""

    conversation_id: str
    messages: int
    first_at: datetime
    last_at: datetime
    user_id: str | None
    agent_id: str | None


_COLUMNS = (
    records.c.id,
    records.c.namespace,
    records.c.key,
    records.c.payload,
    records.c.created_at,
    records.c.user_id,
    records.c.agent_id,
    records.c.session_id,
)


def _message(row: Any) -> StoredMessage:
    return from_row(
        StoredMessage,
        row,
        id=int(row.id),
        conversation_id=str(row.namespace[1]),
        value=row.payload,
    )


class MessageQueries:
    """Typed queries over the messages of conversations and the records of end users."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def existing(self, tenant_id: int, path: str, keys: Sequence[str]) -> dict[str, Any]:
        """The stored messages among ``keys`` of the conversation at ``path``, by key."""
        if not keys:
            return {}
        query = sa.select(*_COLUMNS).where(
            records.c.tenant_id == tenant_id,
            records.c.namespace_path == path,
            records.c.key.in_(list(keys)),
        )
        with self.store.reading("messages_existing") as conn:
            return {row.key: _message(row) for row in conn.execute(query)}

    def insert(
        self, uow: UnitOfWork, tenant_id: int, conversation_id: str, rows: Sequence[MessageRow]
    ) -> set[str]:
        """Insert the messages; a key another write created first is skipped. Returns the
        keys inserted by this call."""
        if not rows:
            return set()
        # A message without its own time gets the moment it was stored (one for the batch:
        # the record ids, reserved in posting order, then keep the batch's order).
        now = datetime.now(UTC)
        values = [
            {
                "id": r.id,
                "tenant_id": tenant_id,
                "namespace": [CONVERSATIONS, conversation_id],
                "namespace_path": conversation_path(conversation_id),
                "key": r.key,
                "payload": r.value,
                "text": r.text,
                "space": "default" if r.has_vectors else None,
                "created_at": r.created_at or now,
                "updated_at": now,
                "user_id": r.scopes.user_id,
                "agent_id": r.scopes.agent_id,
                "session_id": r.scopes.session_id,
            }
            for r in rows
        ]
        statement = (
            pg_insert(records)
            .values(values)
            .on_conflict_do_nothing(constraint="uq_records_tenant_ns_key")
            .returning(records.c.key)
        )
        with self.store.translated("messages_insert"):
            return {str(k) for k in uow.conn.execute(statement).scalars()}

    def page(
        self,
        tenant_id: int,
        path: str,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[StoredMessage]:
        """Up to ``limit`` messages of a conversation in conversation order, after the
        position ``after`` (created_at, id)."""
        query = (
            sa.select(*_COLUMNS)
            .where(records.c.tenant_id == tenant_id, records.c.namespace_path == path)
            .order_by(records.c.created_at, records.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(sa.tuple_(records.c.created_at, records.c.id) > sa.tuple_(*after))
        with self.store.reading("messages_page") as conn:
            return [_message(row) for row in conn.execute(query)]

    def conversations(
        self, tenant_id: int, scopes: Scopes, limit: int, offset: int
    ) -> list[ConversationSummary]:
        """The tenant's conversations with a message of ``scopes``, newest (last message)
        first."""
        last_at = sa.func.max(records.c.created_at)
        query = (
            sa.select(
                records.c.namespace_path,
                sa.func.count().label("messages"),
                sa.func.min(records.c.created_at).label("first_at"),
                last_at.label("last_at"),
                sa.func.min(records.c.user_id).label("user_id"),
                sa.func.min(records.c.agent_id).label("agent_id"),
            )
            .where(
                records.c.tenant_id == tenant_id,
                in_prefix([CONVERSATIONS]),
                sa.func.cardinality(records.c.namespace) == 2,
                *scope_clauses(scopes),
            )
            .group_by(records.c.namespace_path)
            .order_by(last_at.desc(), records.c.namespace_path)
            .limit(limit)
            .offset(offset)
        )
        with self.store.reading("conversations") as conn:
            return [
                ConversationSummary(
                    conversation_id=str(row.namespace_path)[len(CONVERSATIONS) + 1 :],
                    messages=int(row.messages),
                    first_at=row.first_at,
                    last_at=row.last_at,
                    user_id=row.user_id,
                    agent_id=row.agent_id,
                )
                for row in conn.execute(query)
            ]

    def records_of(
        self, tenant_id: int, path: str | None = None, user_id: str | None = None
    ) -> list[tuple[int, str, str, tuple[str, ...], str | None]]:
        """(id, namespace path, key, namespace, space) of the tenant's records in the
        namespace at ``path`` or of the end user ``user_id`` (memories and items alike)."""
        query = sa.select(
            records.c.id,
            records.c.namespace_path,
            records.c.key,
            records.c.namespace,
            records.c.space,
        ).where(records.c.tenant_id == tenant_id)
        if path is not None:
            query = query.where(records.c.namespace_path == path)
        if user_id is not None:
            query = query.where(records.c.user_id == user_id)
        with self.store.reading("records_of") as conn:
            return [
                (int(r.id), str(r.namespace_path), r.key, tuple(r.namespace), r.space)
                for r in conn.execute(query)
            ]

    def delete_items(self, uow: UnitOfWork, tenant_id: int, ids: Sequence[int]) -> list[int]:
        """Delete the tenant's namespaced records among ``ids`` (never a memory); returns the
        ids of the vectors they had."""
        if not ids:
            return []
        mine = sa.select(records.c.id).where(
            records.c.tenant_id == tenant_id, IS_ITEM, records.c.id.in_(list(ids))
        )
        with self.store.translated("messages_delete"):
            vector_ids = [
                int(i)
                for i in uow.conn.execute(
                    sa.delete(record_vectors)
                    .where(record_vectors.c.record_id.in_(mine))
                    .returning(record_vectors.c.id)
                ).scalars()
            ]
            uow.conn.execute(
                sa.delete(records).where(
                    records.c.tenant_id == tenant_id, IS_ITEM, records.c.id.in_(list(ids))
                )
            )
        return vector_ids

    def purge_versions(
        self,
        uow: UnitOfWork,
        tenant_id: int,
        record_ids: Sequence[int],
        user_id: str | None = None,
        path: str | None = None,
    ) -> int:
        """Erase from the history the versions of ``record_ids``, and every version that
        carries ``user_id`` or lies in the namespace at ``path``; returns how many."""
        where: list[Any] = []
        if record_ids:
            where.append(record_history.c.record_id.in_(list(record_ids)))
        if user_id is not None:
            where.append(record_history.c.user_id == user_id)
        if path is not None:
            where.append(record_history.c.namespace_path == path)
        if not where:
            return 0
        statement = sa.delete(record_history).where(
            record_history.c.tenant_id == tenant_id, sa.or_(*where)
        )
        with self.store.translated("purge_versions"):
            return int(uow.conn.execute(statement).rowcount)

    def memory_coords(self, tenant_id: int, user_id: str) -> list[str]:
        """The coordinates of the end user's memories."""
        query = sa.select(records.c.key).where(
            records.c.tenant_id == tenant_id, IS_MEMORY, records.c.user_id == user_id
        )
        with self.store.reading("user_memories") as conn:
            return [str(k) for k in conn.execute(query).scalars()]
