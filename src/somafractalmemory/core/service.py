"""MemoryService: the one place that writes memories, and the only one that commits.

Write protocol (an outbox in PostgreSQL closes the crash window between the two stores):

1. embed the texts (before touching any store);
2. transaction 1: reserve the memory ids and record one outbox entry per memory; commit;
3. transaction 2: lock and write the rows, write the vectors to Milvus, commit;
4. remove the outbox entries; acknowledge.

If step 3 fails, its transaction rolls back and the client gets an error. Whatever happened
to Milvus meanwhile (a half-done write, a vector without a committed row), the outbox entry
names the memory, and the drainer later brings Milvus in line with what PostgreSQL holds.
A process killed at any point leaves the same outbox entries. Delete follows the same steps
(outbox entry, then delete the row and the vector in one transaction). See
``docs/technical-manual/consistency.md``.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Sequence

from somafractalmemory.core.coords import canonical_coord
from somafractalmemory.core.duplicates import DuplicatePlan, Duplicates
from somafractalmemory.core.embedding import Embedder
from somafractalmemory.core.graph import Graph
from somafractalmemory.core.memory_input import (
    MemoryInput,
    PreparedWrite,
    prepare,
)
from somafractalmemory.core.page_cursor import pack_numbers, unpack_numbers
from somafractalmemory.core.search import Searcher
from somafractalmemory.errors import ConflictError, NotFoundError
from somafractalmemory.models import (
    Link,
    Memory,
    MemoryType,
    NewMemory,
    OutboxEntry,
    Scopes,
    SearchHit,
    SearchQuery,
    Tenant,
    TenantStats,
    VectorRecord,
    WriteResult,
)
from somafractalmemory.observability.metrics import DELETE_SUCCESS, OUTBOX_DRAINED
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.milvus_filters import scope_attrs, searchable_attrs, state_attrs
from somafractalmemory.stores.postgres import PostgresStore
from somafractalmemory.stores.redis import MemoryCache

logger = logging.getLogger(__name__)


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for listing after ``last_id``."""
    return pack_numbers("m", last_id)


def decode_cursor(cursor: str | None) -> int:
    """The id a cursor stands for; 0 for none."""
    return unpack_numbers(cursor, "m", 1)[0] if cursor else 0


class MemoryService:
    """Stores, reads, searches, links and deletes memories across the three stores."""

    def __init__(
        self,
        postgres: PostgresStore,
        milvus: MilvusStore,
        cache: MemoryCache,
        embedder: Embedder,
    ) -> None:
        self.postgres = postgres
        self.milvus = milvus
        self.cache = cache
        self.embedder = embedder
        self.searcher = Searcher(postgres, milvus, embedder, cache)
        self.duplicates = Duplicates(postgres, milvus)
        self.graph = Graph(postgres)

    # -- writes -----------------------------------------------------------------------------
    def store(self, tenant: Tenant, item: MemoryInput) -> WriteResult:
        """Store one memory; replaces the memory at the same coordinate."""
        return self.store_batch(tenant, [item])[0]

    def store_batch(self, tenant: Tenant, items: Sequence[MemoryInput]) -> list[WriteResult]:
        """Store memories as one unit: all are acknowledged, or none is kept. Each answer
        says what happened (created, replaced, unchanged, skipped), the current memories with
        the same text and the near duplicates; see :mod:`core.memory_input` for options."""
        writes = prepare(items, self.embedder.dimension)
        plan = self.duplicates.plan(tenant, writes)
        to_write = [w.memory for w in writes if w.memory.coord not in plan.skipped]
        to_embed = [m for m in to_write if m.vector is None]
        embedded = iter(self.embedder.embed([m.text for m in to_embed]))
        vectors = {m.coord: m.vector if m.vector is not None else next(embedded) for m in to_write}
        similar = self.duplicates.similar(tenant, vectors, plan)
        coords = [m.coord for m in to_write]
        targets = sorted({t for c in coords for t in plan.supersedes.get(c, ())})
        if not coords:  # every write skipped: nothing to store
            return [self.duplicates.result(w.memory.coord, plan, {}, {}, {}) for w in writes]
        known = self.postgres.memory_ids(tenant.id, [*coords, *targets])
        _check_preconditions(writes, plan, known)

        with self.postgres.unit_of_work() as intent:
            ids = intent.reserve_ids(tenant.id, [*coords, *targets])
            outbox = intent.add_outbox(tenant.id, [(c, ids[c]) for c in [*coords, *targets]])
            intent.commit()
        try:
            with self.postgres.unit_of_work(tenant.key_id) as uow:
                current = uow.memories_for_sync(tenant.id, [*coords, *targets])
                _check_preconditions(writes, plan, {c: m.id for c, (m, _v) in current.items()})
                changed = [m for m in to_write if not _unchanged(current.get(m.coord), m)]
                stored = uow.upsert_memories(tenant.id, changed, ids)
                for coord in coords:
                    if plan.supersedes.get(coord):
                        uow.supersede(tenant.id, "", plan.supersedes[coord], coord)
                self.milvus.upsert(
                    [self._record(tenant.id, stored[m.coord], vectors[m.coord]) for m in changed]
                )
                if targets:
                    self.write_vectors(
                        tenant.id, list(uow.memories_for_sync(tenant.id, targets).values())
                    )
                uow.commit()
        except (ConflictError, NotFoundError):
            self._settle(outbox)  # the caller's mistake: nothing was written anywhere
            raise
        self.cache.invalidate(tenant.id, [*coords, *targets])
        self._settle(outbox)
        # A new coordinate a concurrent write created first (invisible to the read above until
        # it committed; the upsert waited and kept its id) was replaced, not created.
        raced = {c: (m, None) for c, m in stored.items() if c not in current and m.id != ids[c]}
        before = {**current, **raced}
        return [
            self.duplicates.result(w.memory.coord, plan, similar, stored, before) for w in writes
        ]

    def supersede(self, tenant: Tenant, successor: str, coords: Sequence[str]) -> None:
        """Mark the memories at ``coords`` superseded by ``successor`` (import applies a
        file's successors this way, after every memory is in): the outbox protocol, their
        vectors rewritten with the new state."""
        ids = self.postgres.memory_ids(tenant.id, coords)
        if not ids:
            return
        with self.postgres.unit_of_work() as intent:
            outbox = intent.add_outbox(tenant.id, list(ids.items()))
            intent.commit()
        with self.postgres.unit_of_work(tenant.key_id) as uow:
            uow.supersede(tenant.id, "", list(ids), successor)
            self.write_vectors(
                tenant.id, list(uow.memories_for_sync(tenant.id, list(ids)).values())
            )
            uow.commit()
        self.cache.invalidate(tenant.id, list(ids))
        self._settle(outbox)

    def _settle(self, outbox_ids: list[int]) -> None:
        """Both stores agree: the outbox entries are done."""
        with self.postgres.unit_of_work() as uow:
            uow.remove_outbox(outbox_ids)
            uow.commit()

    def _record(self, tenant_id: int, memory: Memory, vector: list[float]) -> VectorRecord:
        state = state_attrs(memory.superseded_by is not None, memory.valid_from, memory.valid_to)
        state.update(scope_attrs(Scopes(memory.user_id, memory.agent_id, memory.session_id)))
        return VectorRecord(
            id=memory.id,
            tenant_id=tenant_id,
            memory_type=memory.memory_type.value,
            created_at_ms=int(memory.created_at.timestamp() * 1000),
            attrs={**searchable_attrs(memory.payload), **state},
            vector=vector,
        )

    def delete(self, tenant: Tenant, coord: str, purge: bool = False) -> int:
        """Delete the memory at ``coord`` from PostgreSQL, Milvus and the cache; its history
        keeps the deleted version unless ``purge``, which erases every version too (also of
        a memory deleted before). Returns how many versions a purge erased."""
        canonical = canonical_coord(coord)
        removed, purged = self.delete_many(tenant, [canonical], purge)
        if not removed and not purged:
            raise NotFoundError(f"no memory at coord {canonical!r}")
        return purged

    def delete_many(
        self, tenant: Tenant, coords: Sequence[str], purge: bool = False
    ) -> tuple[list[str], int]:
        """Delete the memories at ``coords`` (canonical) with the outbox protocol; with
        ``purge`` their history goes too. Returns the coordinates deleted and how many
        versions were purged."""
        ids = self.postgres.memory_ids(tenant.id, coords)
        outbox: list[int] = []
        if ids:
            with self.postgres.unit_of_work() as intent:
                outbox = intent.add_outbox(tenant.id, list(ids.items()))
                intent.commit()
        with self.postgres.unit_of_work(tenant.key_id) as uow:
            removed = uow.delete_memories(tenant.id, list(ids))
            self.milvus.delete([memory.id for memory in removed])
            purged = uow.purge_history(tenant.id, "", coords) if purge else 0
            uow.commit()
        self.cache.invalidate(tenant.id, list(coords))
        if outbox:
            self._settle(outbox)
        DELETE_SUCCESS.inc(len(removed))
        return [memory.coord for memory in removed], purged

    def delete_scope(self, tenant: Tenant, scopes: Scopes, purge: bool) -> tuple[int, int]:
        """Delete every memory of ``scopes`` (see :meth:`delete_many`); returns how many
        went and how many versions a purge erased."""
        page = self.postgres.list_memories(tenant.id, None, 0, 1_000_000, True, scopes)
        removed, purged = self.delete_many(tenant, [m.coord for m in page], purge)
        return len(removed), purged

    def drain_outbox(self, grace_seconds: float, limit: int = 500) -> int:
        """Bring Milvus in line with PostgreSQL for outbox entries older than the grace
        period (younger ones may belong to writes still in flight); returns how many."""
        with self.postgres.unit_of_work() as uow:
            entries = uow.claim_outbox(grace_seconds, limit)
            if not entries:
                return 0
            by_tenant: dict[int, list[OutboxEntry]] = {}
            for entry in entries:
                by_tenant.setdefault(entry.tenant_id, []).append(entry)
            for tenant_id, group in by_tenant.items():
                rows = uow.memories_for_sync(tenant_id, sorted({e.coord for e in group}))
                live = {memory.id for memory, _vector in rows.values()}
                self.milvus.delete(sorted({e.memory_id for e in group} - live))
                self.write_vectors(tenant_id, list(rows.values()))
            uow.remove_outbox([e.id for e in entries])
            uow.commit()
        # A write that died between its commit and its invalidation left a stale copy.
        for tenant_id, group in by_tenant.items():
            self.cache.invalidate(tenant_id, sorted({e.coord for e in group}))
        OUTBOX_DRAINED.inc(len(entries))
        return len(entries)

    def write_vectors(self, tenant_id: int, rows: list[tuple[Memory, list[float] | None]]) -> None:
        """(Re)write the vectors of stored memories: their own vector, else re-embedded."""
        if not rows:
            return
        to_embed = [memory for memory, vector in rows if vector is None]
        embedded = dict(
            zip(
                (m.id for m in to_embed),
                self.embedder.embed([m.text for m in to_embed]),
                strict=True,
            )
        )
        self.milvus.upsert(
            [
                self._record(
                    tenant_id, memory, vector if vector is not None else embedded[memory.id]
                )
                for memory, vector in rows
            ]
        )

    def link(self, tenant: Tenant, link: Link) -> Link:
        """Create or update a link between two of the tenant's memories."""
        from_coord = canonical_coord(link.from_coord, "from_coord")
        to_coord = canonical_coord(link.to_coord, "to_coord")
        with self.postgres.unit_of_work() as uow:
            found = uow.lock_memories(tenant.id, [from_coord, to_coord])
            for field, coord in (("from_coord", from_coord), ("to_coord", to_coord)):
                if coord not in found:
                    raise NotFoundError(f"{field}: no memory at coord {coord!r}")
            uow.upsert_link(
                tenant.id,
                found[from_coord].id,
                found[to_coord].id,
                link.link_type,
                link.strength,
                link.metadata,
            )
            uow.commit()
        return Link(from_coord, to_coord, link.link_type, link.strength, link.metadata)

    # -- reads ------------------------------------------------------------------------------
    def get(self, tenant: Tenant, coord: str) -> Memory:
        """The memory at ``coord`` (superseded ones too, marked): from the cache when it has
        it, else from PostgreSQL."""
        canonical = canonical_coord(coord)
        cached = self.cache.get(tenant.id, canonical)
        if cached is not None:
            return cached
        # The lease before the read: a write committing meanwhile revokes it, and the
        # row read here is then not cached (see stores/redis.py).
        lease = self.cache.lease(tenant.id, canonical)
        memory = self.postgres.get_memory(tenant.id, canonical)
        if memory is None:
            raise NotFoundError(f"no memory at coord {canonical!r}")
        self.cache.put(tenant.id, memory, lease)
        return memory

    def list_page(
        self,
        tenant: Tenant,
        memory_type: MemoryType | None,
        limit: int,
        cursor: str | None,
        include_superseded: bool = False,
        scopes: Scopes | None = None,
    ) -> tuple[list[Memory], str | None]:
        """A page of memories in storage order (current ones unless ``include_superseded``;
        of ``scopes`` when given), and the cursor for the next page."""
        page = self.postgres.list_memories(
            tenant.id, memory_type, decode_cursor(cursor), limit, include_superseded, scopes
        )
        next_cursor = encode_cursor(page[-1].id) if len(page) == limit else None
        return page, next_cursor

    def search(self, tenant: Tenant, query: SearchQuery) -> list[SearchHit]:
        """Recall the tenant's best memories for ``query``; see :mod:`core.search`."""
        return self.searcher.search(tenant, query)

    def stats(self, tenant: Tenant) -> TenantStats:
        """Counts for the tenant; raises when Milvus cannot say how many vectors it holds."""
        by_type, links = self.postgres.count_by_type(tenant.id)
        vectors = self.milvus.count(tenant.id)
        return TenantStats(sum(by_type.values()), by_type, links, vectors)


def _check_preconditions(
    writes: Sequence[PreparedWrite], plan: DuplicatePlan, known: dict[str, int]
) -> None:
    """404 naming a superseded coordinate that holds no memory; 409 naming a create-only
    coordinate that does."""
    for index, write in enumerate(writes):
        prefix = f"memories[{index}]." if len(writes) > 1 else ""
        coord = write.memory.coord
        if coord in plan.skipped:
            continue
        for target in plan.supersedes.get(coord, ()):
            if target not in known:
                raise NotFoundError(f"{prefix}supersedes: no memory at coord {target!r}")
        if write.if_absent and coord in known:
            raise ConflictError(f"{prefix}coord: a memory exists at coord {coord!r} (if_absent)")


def _unchanged(current: tuple[Memory, list[float] | None] | None, new: NewMemory) -> bool:
    """Whether writing ``new`` over ``current`` would change nothing (a current record, the
    same value, type, importance, validity and own vector)."""
    if current is None:
        return False
    memory, own_vector = current
    same_vector = (new.vector is None and own_vector is None) or (
        new.vector is not None
        and own_vector is not None
        and array("f", new.vector) == array("f", own_vector)
    )
    return (
        same_vector
        and memory.superseded_by is None
        and memory.payload == new.payload
        and memory.memory_type == new.memory_type
        and memory.importance == new.importance
        and memory.valid_from == new.valid_from
        and memory.valid_to == new.valid_to
        and (memory.user_id, memory.agent_id, memory.session_id)
        == (new.user_id, new.agent_id, new.session_id)
        and (new.created_at is None or new.created_at == memory.created_at)
    )
