"""Conversations: each message a record of the namespace ``("conversations", <id>)``.

A message is keyed by the caller's id (or ``#<sequence>`` when it has none), holds
``{"role", "content", "name"?}``, is full-text indexed on its content and embedded (a long one
in overlapping chunks, :mod:`core.chunks`; search takes its best chunk, so it is found once).
Writes are create-only and idempotent: the same message again is ``unchanged`` and writes
nothing; the same id with other content is a 409 naming it, and nothing of the request is
written. They follow the items' outbox protocol (``docs/technical-manual/consistency.md``):

1. validate and embed (before touching any store);
2. transaction 1: reserve the record and vector ids, one outbox entry per new message naming
   the default item collection; commit;
3. transaction 2: insert the rows (a key a concurrent write created first is skipped and
   compared), their vectors, then the Milvus entities; commit;
4. remove the outbox entries; acknowledge.

A crash anywhere leaves outbox entries that :meth:`ItemService.drain_outbox` settles (a
reserved id without a row: its entities are deleted). See ``docs/conversations.md``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from somafractalmemory.core.chunks import chunk_text
from somafractalmemory.core.item_paths import check_labels
from somafractalmemory.core.items import ItemService
from somafractalmemory.core.page_cursor import NOT_OURS, pack, pack_numbers, unpack, unpack_numbers
from somafractalmemory.errors import ConflictError, InvalidInputError, NotFoundError
from somafractalmemory.models import ItemHit, ItemSearch, Scopes, Tenant
from somafractalmemory.stores.items_milvus import ItemVectorRecord
from somafractalmemory.stores.items_tables import record_vectors
from somafractalmemory.stores.messages_postgres import (
    CONVERSATIONS,
    ConversationSummary,
    MessageQueries,
    MessageRow,
    StoredMessage,
    conversation_path,
)
from somafractalmemory.stores.milvus_filters import scope_attrs
from somafractalmemory.stores.postgres import UnitOfWork

Role = Literal["user", "assistant", "system", "tool"]
ROLES: tuple[Role, ...] = ("user", "assistant", "system", "tool")
MessageStatus = Literal["created", "unchanged"]
ASSIGNED = "#"  # the first character of an id the service assigned (callers' ids never)


@dataclass(frozen=True)
class NewMessage:
    """A message as the caller gives it (``id`` None: the service assigns one)."""

    role: str
    content: str
    id: str | None = None
    name: str | None = None
    created_at: datetime | None = None


def message_value(message: NewMessage) -> dict[str, Any]:
    """What a message record holds as its value."""
    value: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        value["name"] = message.name
    return value


def encode_position(created_at: datetime, record_id: int) -> str:
    """An opaque cursor for the messages after this one."""
    return pack(json.dumps([created_at.isoformat(), record_id]))


def decode_position(cursor: str | None) -> tuple[datetime, int] | None:
    """The position a cursor stands for (None: the start)."""
    if not cursor:
        return None
    raw = unpack(cursor)
    try:
        moment, record_id = json.loads(raw)
        if not isinstance(record_id, int):
            raise ValueError(raw)
        return datetime.fromisoformat(moment), record_id
    except (ValueError, TypeError):
        raise InvalidInputError(NOT_OURS, "cursor") from None


def check_conversation_id(conversation_id: str) -> None:
    """A conversation id is one namespace label: non-empty, no ``.``, at most 256 chars."""
    try:
        check_labels([conversation_id], "conversation_id")
    except InvalidInputError as exc:
        raise InvalidInputError(exc.detail, "conversation_id") from None


class MessageService:
    """Posts, lists, searches and deletes a tenant's conversation messages."""

    def __init__(self, items: ItemService) -> None:
        self.items = items
        self.queries = MessageQueries(items.postgres)

    # -- writes -----------------------------------------------------------------------------
    def post(
        self,
        tenant: Tenant,
        conversation_id: str,
        scopes: Scopes,
        messages: Sequence[NewMessage],
        imported: bool = False,
    ) -> list[tuple[str, MessageStatus]]:
        """Store the messages not stored yet; answers (id, status) per message, in order.
        ``imported``: ids may be ones the service assigned (``#<n>``, from an export)."""
        check_conversation_id(conversation_id)
        _check_messages(messages, imported)
        path = conversation_path(conversation_id)
        given = [m.id for m in messages if m.id is not None]
        stored = self.queries.existing(tenant.id, path, given)
        unchanged: set[int] = set()
        for index, message in enumerate(messages):
            if message.id is not None and message.id in stored:
                _compare(stored[message.id], message, scopes, index)
                unchanged.add(index)
        new = [(i, m) for i, m in enumerate(messages) if i not in unchanged]
        chunks = [chunk_text(m.content) for _, m in new]
        vectors = iter(self.items.embedder.embed([c for group in chunks for c in group]))
        collection = self.items.index.default_collection
        keys: dict[int, str] = {}
        if new:
            with self.items.postgres.unit_of_work() as intent:
                record_ids, vector_ids = _reserve(intent, len(new), sum(map(len, chunks)))
                outbox = self.items.repo.add_outbox(
                    intent, tenant.id, [(r, [collection]) for r in record_ids]
                )
                intent.commit()
            rows: list[MessageRow] = []
            entities: list[ItemVectorRecord] = []
            vector_rows: list[dict[str, Any]] = []
            ids = iter(vector_ids)
            attrs = scope_attrs(scopes)
            for (index, message), record_id, group in zip(new, record_ids, chunks, strict=True):
                key = message.id if message.id is not None else f"{ASSIGNED}{record_id}"
                keys[index] = key
                rows.append(
                    MessageRow(
                        record_id,
                        key,
                        message_value(message),
                        message.content,
                        message.created_at,
                        scopes,
                        True,
                    )
                )
                for number in range(len(group)):
                    vector_id, vector = next(ids), next(vectors)
                    chunk_path = "content" if len(group) == 1 else f"content#{number}"
                    vector_rows.append(
                        {
                            "id": vector_id,
                            "record_id": record_id,
                            "path": chunk_path,
                            "vector": vector,
                        }
                    )
                    entities.append(
                        ItemVectorRecord(vector_id, record_id, tenant.id, vector, path, attrs)
                    )
            try:
                with self.items.postgres.unit_of_work(tenant.key_id) as uow:
                    inserted = self.queries.insert(uow, tenant.id, conversation_id, rows)
                    raced = [r for r in rows if r.key not in inserted]
                    if raced:
                        # A concurrent post created these first (committed: the insert waited).
                        now = self.queries.existing(tenant.id, path, [r.key for r in raced])
                        for index, message in new:
                            if keys[index] in now:
                                _compare(now[keys[index]], message, scopes, index)
                                unchanged.add(index)
                    mine = {r.id for r in rows if r.key in inserted}
                    kept = [v for v in vector_rows if v["record_id"] in mine]
                    if kept:
                        with self.items.postgres.translated("message_vectors"):
                            uow.conn.execute(sa.insert(record_vectors), kept)
                    self.items.index.insert(collection, [e for e in entities if e.item_id in mine])
                    uow.commit()
            except ConflictError:
                self._settle(outbox)  # nothing of the request reached either store
                raise
            self._settle(outbox)
        return [
            (str(m.id) if i in unchanged else keys[i], "unchanged" if i in unchanged else "created")
            for i, m in enumerate(messages)
        ]

    def _settle(self, outbox_ids: list[int]) -> None:
        with self.items.postgres.unit_of_work() as uow:
            self.items.repo.remove_outbox(uow, outbox_ids)
            uow.commit()

    def delete_conversation(self, tenant: Tenant, conversation_id: str, purge: bool) -> int:
        """Delete every message of the conversation (its history too with ``purge``);
        returns how many messages went. :class:`NotFoundError` when it has none."""
        check_conversation_id(conversation_id)
        path = conversation_path(conversation_id)
        rows = self.queries.records_of(tenant.id, path=path)
        if not rows:
            raise NotFoundError(f"no conversation {conversation_id!r}")
        self.delete_records(tenant, rows, path=path if purge else None, purge=purge)
        return len(rows)

    def delete_records(
        self,
        tenant: Tenant,
        rows: Sequence[tuple[int, str, str, tuple[str, ...], str | None]],
        purge: bool,
        path: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """Delete namespaced records (from :meth:`MessageQueries.records_of`) and their
        vectors with the outbox protocol; with ``purge`` their history too, and every version
        of the namespace ``path`` or of ``user_id``. Returns how many versions were purged."""
        ids = [r[0] for r in rows]
        collections = sorted(
            {c for r in rows if (c := self.items.collection_of(tenant.id, r[4])) is not None}
        )
        outbox: list[int] = []
        if collections:
            with self.items.postgres.unit_of_work() as intent:
                outbox = self.items.repo.add_outbox(
                    intent, tenant.id, [(r[0], collections) for r in rows if r[4] is not None]
                )
                intent.commit()
        with self.items.postgres.unit_of_work(tenant.key_id) as uow:
            vector_ids = self.queries.delete_items(uow, tenant.id, ids)
            for collection in collections:
                self.items.index.delete(collection, vector_ids)
            purged = self.queries.purge_versions(uow, tenant.id, ids, user_id, path) if purge else 0
            uow.commit()
        self.items.cache.invalidate_items(tenant.id, [(r[3], r[2]) for r in rows])
        if outbox:
            self._settle(outbox)
        return purged

    # -- reads ------------------------------------------------------------------------------
    def page(
        self, tenant: Tenant, conversation_id: str, cursor: str | None, limit: int
    ) -> tuple[list[StoredMessage], str | None]:
        """A page of the conversation's messages in conversation order (``created_at``,
        then the order they were posted in), and the cursor of the next page."""
        check_conversation_id(conversation_id)
        found = self.queries.page(
            tenant.id, conversation_path(conversation_id), decode_position(cursor), limit
        )
        last = found[-1] if len(found) == limit else None
        return found, encode_position(last.created_at, last.id) if last else None

    def conversations(
        self, tenant: Tenant, scopes: Scopes, limit: int, cursor: str | None
    ) -> tuple[list[ConversationSummary], str | None]:
        """The conversations with messages of ``scopes``, newest first, a page at a time
        (the cursor is a position in that order)."""
        offset = _decode_offset(cursor)
        found = self.queries.conversations(tenant.id, scopes, limit, offset)
        return found, _encode_offset(offset + limit) if len(found) == limit else None

    def search(
        self,
        tenant: Tenant,
        query: str,
        mode: str,
        top_k: int,
        scopes: Scopes,
        conversation_id: str | None = None,
        filters: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[ItemHit]:
        """The best messages for ``query`` (one hit per message: its best chunk), of one
        conversation or of all, of ``scopes``; the item search's modes, fusion and
        ``min_score``."""
        prefix: tuple[str, ...] = (CONVERSATIONS,)
        if conversation_id is not None:
            check_conversation_id(conversation_id)
            prefix = (CONVERSATIONS, conversation_id)
        search = ItemSearch(
            namespace_prefix=prefix,
            filter=filters or {},
            limit=top_k,
            query=query,
            mode=mode,
            refresh_ttl=False,
            scopes=scopes,
            min_score=min_score,
        )
        return self.items.search(tenant, search)


def _reserve(uow: UnitOfWork, records: int, vectors: int) -> tuple[list[int], list[int]]:
    """``records`` new record ids (ascending: posting order) and ``vectors`` vector ids."""
    conn = uow.conn
    record_ids = sorted(
        int(i)
        for i in conn.execute(
            sa.text(
                "SELECT nextval(pg_get_serial_sequence('records', 'id')) "
                "FROM generate_series(1, :n)"
            ),
            {"n": records},
        ).scalars()
    )
    vector_ids = [
        int(i)
        for i in conn.execute(
            sa.text("SELECT nextval('record_vectors_id_seq') FROM generate_series(1, :n)"),
            {"n": vectors},
        ).scalars()
    ]
    return record_ids, vector_ids


def _check_messages(messages: Sequence[NewMessage], imported: bool = False) -> None:
    """422 naming the first bad field: an unknown role, blank content, an id used twice in
    the request or starting with ``#`` (ids the service assigns), a time without a zone."""
    if not messages:
        raise InvalidInputError("must hold at least one message", "messages")
    seen: dict[str, int] = {}
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if message.role not in ROLES:
            raise InvalidInputError(f"must be one of {', '.join(ROLES)}", f"{where}.role")
        if not message.content.strip():
            raise InvalidInputError("must not be empty", f"{where}.content")
        if message.created_at is not None and message.created_at.tzinfo is None:
            raise InvalidInputError("must carry a time zone (RFC 3339)", f"{where}.created_at")
        if message.id is None:
            continue
        if message.id.startswith(ASSIGNED) and not imported:
            raise InvalidInputError(
                f"must not start with {ASSIGNED!r} (the ids the service assigns)", f"{where}.id"
            )
        if message.id in seen:
            raise InvalidInputError(
                f"{message.id!r} also appears at messages[{seen[message.id]}]", f"{where}.id"
            )
        seen[message.id] = index


def _compare(stored: StoredMessage, message: NewMessage, scopes: Scopes, index: int) -> None:
    """Nothing when ``message`` is the stored one again; else a 409 naming its id."""
    same = (
        stored.value == message_value(message)
        and (message.created_at is None or message.created_at == stored.created_at)
        and (stored.user_id, stored.agent_id, stored.session_id)
        == (scopes.user_id, scopes.agent_id, scopes.session_id)
    )
    if not same:
        raise ConflictError(
            f"messages[{index}].id: message {stored.key!r} exists with other content, role, "
            "name, time or scopes (a message is never replaced)"
        )


def _encode_offset(offset: int) -> str:
    return pack_numbers("c", offset)


def _decode_offset(cursor: str | None) -> int:
    return unpack_numbers(cursor, "c", 1)[0] if cursor else 0
