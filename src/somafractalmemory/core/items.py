"""ItemService: namespaced items (LangGraph's store model) across PostgreSQL and Milvus.

The one place that writes items and commits their transactions. Writes follow the outbox
protocol of ``docs/technical-manual/consistency.md``, with ``item_outbox`` in the role of
``vector_outbox``:

1. embed the texts the item's ``index`` paths select (or take the client's vectors);
2. transaction 1: lock or reserve the item id and its vector ids, record one outbox entry
   naming the item and every collection the write may touch; commit;
3. transaction 2: lock, write the row and its ``item_vectors``, delete the old vectors from
   Milvus and insert the new ones; commit;
4. remove the outbox entry; acknowledge.

An item without vectors before and after the write never touches Milvus: it is written in one
transaction (re-checked under the row lock, so a concurrent write with vectors is not missed).
The drainer (:meth:`ItemService.drain_outbox`) brings Milvus in line with PostgreSQL for
entries left by a failure or a crash; the sweeper (:meth:`ItemService.sweep_expired`)
deletes expired items with the same protocol. See ``docs/items-and-langgraph.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from somafractalmemory.core.embedding import Embedder
from somafractalmemory.core.item_collections import migrate_item_collections
from somafractalmemory.core.item_paths import (
    MAX_VECTORS_PER_ITEM,
    check_key,
    check_labels,
    check_namespace,
    check_paths,
    texts_at,
)
from somafractalmemory.core.item_search import ItemSearcher
from somafractalmemory.core.query_vectors import QueryEmbedder
from somafractalmemory.errors import ConflictError, InvalidInputError, NotFoundError
from somafractalmemory.models import (
    DEFAULT_SPACE,
    DatabaseIdentity,
    Item,
    ItemHit,
    ItemSearch,
    ItemVector,
    ItemWrite,
    Metric,
    NamespaceQuery,
    Space,
    Tenant,
)
from somafractalmemory.stores.items_milvus import (
    ItemVectorIndex,
    ItemVectorRecord,
)
from somafractalmemory.stores.items_postgres import ItemsRepository
from somafractalmemory.stores.items_sql import namespace_path
from somafractalmemory.stores.ownership import read_identity
from somafractalmemory.stores.postgres import PostgresStore, UnitOfWork
from somafractalmemory.stores.redis import MemoryCache

SPACE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def default_paths(value: dict[str, Any]) -> list[str]:
    """What is embedded when a write names no paths: ``text`` if it is a non-empty string,
    else the whole value (as for memories)."""
    text = value.get("text")
    return ["text"] if isinstance(text, str) and text.strip() else ["$"]


class ItemService:
    """Stores, reads, searches, lists, expires and deletes a tenant's items."""

    def __init__(
        self,
        postgres: PostgresStore,
        index: ItemVectorIndex,
        embedder: Embedder,
        queries: QueryEmbedder,
        cache: MemoryCache,
    ) -> None:
        self.postgres = postgres
        self.cache = cache
        self.repo = ItemsRepository(postgres)
        self.index = index
        self.embedder = embedder
        self.queries = queries
        self.searcher = ItemSearcher(self.repo, index, queries, self.space)

    # -- spaces -------------------------------------------------------------------------------
    @property
    def default_space(self) -> Space:
        """The local model's space."""
        return Space(
            DEFAULT_SPACE, self.embedder.dimension, "cosine", self.index.default_collection
        )

    def ensure_collections(self) -> None:
        """Migrate v1 item collections to v2 (:mod:`core.item_collections`), create the
        default space's collection if missing, and adopt the registered spaces' collections
        made before collections had an owner (bootstrap, CLI)."""
        migrate_item_collections(self)
        owner = read_identity(self.postgres)
        self.index.ensure_collection(self.default_space, owner)
        for space in self.repo.spaces():
            self.index.claim_existing(space, owner)

    def check_default_collection(self, owner: DatabaseIdentity | None) -> None:
        """Check the default space's collection (None: its shape only)."""
        self.index.check_collection(self.default_space, owner)

    def check_collections(self, owner: DatabaseIdentity | None) -> None:
        """Check the default collection and every registered space's, and that ``owner``
        owns them (None: the shape only); start-up and health."""
        self.check_default_collection(owner)
        for space in self.repo.spaces():
            self.index.check_collection(space, owner)

    def space(self, tenant: Tenant, name: str | None) -> Space:
        """The space a write or search names (``default`` or none: the local model's)."""
        if name is None or name == DEFAULT_SPACE:
            return self.default_space
        found = self.repo.space(tenant.id, name)
        if found is None:
            raise NotFoundError(f"space {name!r} is not registered (POST /spaces first)")
        return found

    def spaces(self, tenant: Tenant) -> list[Space]:
        """The default space and the tenant's registered ones."""
        return [self.default_space, *self.repo.spaces(tenant.id)]

    def create_space(
        self, tenant: Tenant, name: str, dimension: int, metric: Metric
    ) -> tuple[Space, bool]:
        """Register a space and create its collection; the same call again is a no-op
        (``False``), a different dimension or metric a conflict."""
        if not SPACE_NAME.match(name) or name == DEFAULT_SPACE:
            raise InvalidInputError(
                "must be 1-32 lowercase letters, digits or underscores, starting with a "
                f"letter, and not {DEFAULT_SPACE!r}",
                "name",
            )
        existing = self.repo.space(tenant.id, name)
        if existing is not None:
            if (existing.dimension, existing.metric) != (dimension, metric):
                raise ConflictError(
                    f"space {name!r} exists with dimension {existing.dimension} and metric "
                    f"{existing.metric}"
                )
            self.index.ensure_collection(existing, read_identity(self.postgres))
            return existing, False
        space = Space(
            name, dimension, metric, self.index.space_collection(tenant.id, name), tenant.id
        )
        # The collection first: a registered space always has one (a crash in between leaves
        # an unregistered collection, which the same call adopts).
        self.index.ensure_collection(space, read_identity(self.postgres))
        with self.postgres.unit_of_work() as uow:
            self.repo.insert_space(uow, tenant.id, space)
            uow.commit()
        return space, True

    def delete_space(self, tenant: Tenant, name: str) -> int:
        """Forget a space, delete the items that had vectors in it, drop its collection;
        returns how many items went with it."""
        space = self.space(tenant, name)
        if space.is_default:
            raise InvalidInputError("the default space cannot be deleted", "name")
        with self.postgres.unit_of_work() as uow:
            deleted = self.repo.delete_space(uow, tenant.id, name)
            uow.commit()
        self.cache.invalidate_items(tenant.id, deleted)
        self.index.drop_collection(space.collection)
        return len(deleted)

    # -- writes -------------------------------------------------------------------------------
    def prepare(
        self,
        tenant: Tenant,
        namespace: Sequence[str],
        key: str,
        value: dict[str, Any],
        index: list[str] | bool | None,
        ttl_minutes: float | None,
        space_name: str | None,
        vectors: Sequence[ItemVector] | None,
    ) -> ItemWrite:
        """Validate a write and compute its vectors (embedding texts for the default
        space; checking the client's for a registered one)."""
        check_namespace(namespace)
        check_key(key)
        space = self.space(tenant, space_name)
        chosen: list[ItemVector] = []
        selected: list[tuple[str, str]] = []
        if index is not False:
            paths = default_paths(value) if index is None or index is True else index
            check_paths(paths)
            selected = [(p, t) for p in paths for t in texts_at(value, p) if t.strip()]
            if space.is_default:
                if vectors:
                    raise InvalidInputError(
                        "the default space embeds texts itself; give vectors only for a "
                        "registered space",
                        "vectors",
                    )
                if len(selected) > MAX_VECTORS_PER_ITEM:
                    raise InvalidInputError(
                        f"selects {len(selected)} texts; at most {MAX_VECTORS_PER_ITEM}", "index"
                    )
                embedded = self.embedder.embed([t for _, t in selected])
                chosen = [ItemVector(p, v) for (p, _), v in zip(selected, embedded, strict=True)]
            else:
                chosen = list(vectors or [])
                if len(chosen) > MAX_VECTORS_PER_ITEM:
                    raise InvalidInputError(f"at most {MAX_VECTORS_PER_ITEM}", "vectors")
                for i, vector in enumerate(chosen):
                    if len(vector.vector) != space.dimension:
                        raise InvalidInputError(
                            f"must have {space.dimension} numbers (space {space.name!r}), "
                            f"got {len(vector.vector)}",
                            f"vectors[{i}].vector",
                        )
        text = "\n".join(t for _, t in selected)
        return ItemWrite(tuple(namespace), key, value, space, chosen, ttl_minutes, text)

    def put(
        self, tenant: Tenant, write: ItemWrite, attrs: Mapping[str, Any] | None = None
    ) -> tuple[Item, bool]:
        """Store the item, replacing the one at the same namespace and key; returns it and
        whether it replaced one. Its old vectors are gone when this returns. ``attrs``: the
        state flags its entities carry in Milvus (none: ``{}``); they must be what
        :meth:`ItemsRepository.vector_meta` derives from the row written, which repairs and
        migrations write."""
        try:
            for _attempt in range(3):
                done = self._put_plain(tenant, write) or self._put_with_vectors(
                    tenant, write, attrs or {}
                )
                if done is not None:
                    return done
            raise ConflictError("the item kept changing under concurrent writes; try again")
        finally:
            # Whatever happened after a commit (settling failed, a retry): no old copy stays.
            self.cache.invalidate_items(tenant.id, [(write.namespace, write.key)])

    def collection_of(self, tenant_id: int, space_name: str | None) -> str | None:
        """The collection an item of the tenant with vectors in ``space_name`` has them in
        (None: the item has no vectors)."""
        if space_name is None:
            return None
        if space_name == DEFAULT_SPACE:
            return self.index.default_collection
        return self.index.space_collection(tenant_id, space_name)

    def _put_plain(self, tenant: Tenant, write: ItemWrite) -> tuple[Item, bool] | None:
        """No vectors before or after: one transaction, no Milvus. None when it turns out
        the item has vectors (then the outbox path runs)."""
        if write.vectors:
            return None
        with self.postgres.unit_of_work(tenant.key_id) as uow:
            existing = self.repo.lock(uow, tenant.id, write.namespace, write.key)
            if existing is not None and existing[1] is not None:
                return None
            item_id = existing[0] if existing else self.repo.reserve_ids(uow, 0)[0]
            item = self.repo.upsert(uow, tenant.id, write, item_id)
            if self.repo.replace_vectors(uow, item.id, []):
                return None  # a concurrent insert with vectors won the race: roll back
            uow.commit()
        return item, existing is not None or item.id != item_id

    def _put_with_vectors(
        self, tenant: Tenant, write: ItemWrite, attrs: Mapping[str, Any]
    ) -> tuple[Item, bool] | None:
        new_collection = self.collection_of(
            tenant.id, write.space.name if write.space and write.vectors else None
        )
        with self.postgres.unit_of_work() as intent:
            existing = self.repo.lock(intent, tenant.id, write.namespace, write.key)
            reserved_id, vector_ids = self.repo.reserve_ids(intent, len(write.vectors))
            item_id = existing[0] if existing else reserved_id
            old_collection = self.collection_of(tenant.id, existing[1]) if existing else None
            collections = sorted({c for c in (old_collection, new_collection) if c})
            outbox = self.repo.add_outbox(intent, tenant.id, [(item_id, collections)])
            intent.commit()
        with self.postgres.unit_of_work(tenant.key_id) as uow:
            locked = self.repo.lock(uow, tenant.id, write.namespace, write.key)
            current = self.collection_of(tenant.id, locked[1]) if locked else None
            if (locked[0] if locked else None) != (existing[0] if existing else None) or (
                current is not None and current not in collections
            ):
                # A concurrent write created or deleted the item, or moved its vectors to a
                # collection the outbox entry does not name: nothing written; retry.
                uow.commit()
                self._settle(outbox)
                return None
            old_collection = current  # where its vectors are now (the entry names it)
            item = self.repo.upsert(uow, tenant.id, write, item_id)
            if item.id != item_id:
                # A concurrent write created the item after our lock found none (the lock
                # cannot see an uncommitted insert); the upsert waited for it and updated its
                # row. Nothing reached Milvus: settle, roll back, retry as a replace of it.
                self._settle(outbox)
                return None
            pairs = list(zip(vector_ids, write.vectors, strict=True))
            old_ids = self.repo.replace_vectors(uow, item_id, pairs)
            if old_collection is not None:
                self.index.delete(old_collection, old_ids)
            if new_collection is not None:
                path = namespace_path(write.namespace)
                self.index.write(
                    new_collection,
                    [
                        ItemVectorRecord(vid, item_id, tenant.id, v.vector, path, attrs)
                        for vid, v in zip(vector_ids, write.vectors, strict=True)
                    ],
                )
            uow.commit()
        self._settle(outbox)
        return item, existing is not None

    def _settle(self, outbox_ids: list[int]) -> None:
        with self.postgres.unit_of_work() as uow:
            self.repo.remove_outbox(uow, outbox_ids)
            uow.commit()

    def delete(self, tenant: Tenant, namespace: Sequence[str], key: str) -> None:
        """Delete the item and its vectors; :class:`NotFoundError` if there is none."""
        check_namespace(namespace)
        check_key(key)
        for _attempt in range(3):
            if self._delete_once(tenant, namespace, key):
                return
        raise ConflictError("the item kept changing under concurrent writes; try again")

    def _delete_once(self, tenant: Tenant, namespace: Sequence[str], key: str) -> bool:
        """False, having changed nothing, when a concurrent write moved the item's vectors
        to a collection the outbox entry does not name (a failure after deleting them there
        would leave them with nothing to say where)."""
        with self.postgres.unit_of_work(tenant.key_id) as intent:
            existing = self.repo.lock(intent, tenant.id, namespace, key)
            if existing is None:
                raise NotFoundError(f"no item {key!r} in namespace {list(namespace)!r}")
            item_id, space_name = existing
            collection = self.collection_of(tenant.id, space_name)
            if collection is None:
                self.repo.delete(intent, tenant.id, [item_id])
                intent.commit()
                self.cache.invalidate_items(tenant.id, [(namespace, key)])
                return True
            outbox = self.repo.add_outbox(intent, tenant.id, [(item_id, [collection])])
            intent.commit()
        with self.postgres.unit_of_work(tenant.key_id) as uow:
            locked = self.repo.lock(uow, tenant.id, namespace, key)
            if locked is None:  # a concurrent delete took it between the transactions
                uow.commit()
                self._settle(outbox)
                raise NotFoundError(f"no item {key!r} in namespace {list(namespace)!r}")
            if locked[0] == item_id:
                if self.collection_of(tenant.id, locked[1]) not in (None, collection):
                    uow.commit()
                    self._settle(outbox)
                    return False
                self.index.delete(collection, self.repo.delete(uow, tenant.id, [item_id]))
            uow.commit()
        self.cache.invalidate_items(tenant.id, [(namespace, key)])  # before settling
        self._settle(outbox)
        return True

    # -- reads ----------------------------------------------------------------------------
    def get(
        self,
        tenant: Tenant,
        namespace: Sequence[str],
        key: str,
        refresh_ttl: bool = True,
        include_expired: bool = False,
    ) -> Item:
        """The item; :class:`NotFoundError` if absent or expired. ``refresh_ttl`` extends a
        live item's TTL."""
        check_namespace(namespace)
        check_key(key)
        cached = self.cache.get_item(tenant.id, namespace, key)
        if cached is not None:
            return cached  # cached only without a TTL: nothing to refresh or expire
        lease = self.cache.lease_item(tenant.id, namespace, key)  # before the read, as for memories
        item = self.repo.get(tenant.id, namespace, key, include_expired)
        if item is not None and item.ttl_minutes is None:
            self.cache.put_item(tenant.id, item, lease)
        elif refresh_ttl and item is not None:
            # The only write a read makes: one statement, for an item that has a TTL.
            item = self.repo.refresh_one(item) or item
        if item is None:
            raise NotFoundError(f"no item {key!r} in namespace {list(namespace)!r}")
        return item

    def list_namespaces(self, tenant: Tenant, query: NamespaceQuery) -> list[tuple[str, ...]]:
        """The tenant's namespaces matching ``query``, in label order."""
        check_labels(query.prefix, "prefix")
        check_labels(query.suffix, "suffix")
        return self.repo.namespaces(tenant.id, query)

    def search(
        self, tenant: Tenant, search: ItemSearch, vector_filter: str | None = None
    ) -> list[ItemHit]:
        """See :meth:`ItemSearcher.search`."""
        return self.searcher.search(tenant, search, vector_filter)

    def stats(self, tenant: Tenant) -> tuple[int, int]:
        """The tenant's item count (expired items not yet swept included) and how many item
        vectors Milvus holds for it, over the default space and the tenant's own."""
        vectors = sum(self.index.milvus.count(tenant.id, s.collection) for s in self.spaces(tenant))
        return self.repo.count(tenant.id), vectors

    # -- maintenance ------------------------------------------------------------------------
    def sweep_expired(self, limit: int = 500, tenant: Tenant | None = None) -> int:
        """Delete up to ``limit`` expired items of every tenant, or of ``tenant`` (with their
        vectors); returns how many were deleted."""
        only = tenant.id if tenant is not None else None
        with self.postgres.unit_of_work() as uow:
            deleted = self.repo.delete_expired_plain(uow, limit, only)
            uow.commit()
        with_vectors = [e for e in self.repo.expired_ids(limit, only) if e[2] is not None]
        by_tenant: dict[int, list[tuple[int, str]]] = {}
        for item_id, tenant_id, space_name in with_vectors:
            by_tenant.setdefault(tenant_id, []).append((item_id, str(space_name)))
        for tenant_id, group in by_tenant.items():
            entries = [(i, [str(self.collection_of(tenant_id, s))]) for i, s in group]
            with self.postgres.unit_of_work() as intent:
                outbox = self.repo.add_outbox(intent, tenant_id, entries)
                intent.commit()
            with self.postgres.unit_of_work() as uow:
                victims = set(self.repo.lock_expired(uow, [i for i, _ in group]))
                by_collection: dict[str, list[int]] = {}
                for item_id, space_name in group:
                    if item_id in victims:
                        by_collection.setdefault(
                            str(self.collection_of(tenant_id, space_name)), []
                        ).append(item_id)
                for collection, ids in by_collection.items():
                    self.index.delete(collection, self.repo.delete(uow, tenant_id, ids))
                uow.commit()
            self._settle(outbox)
            deleted += len(victims)
        return deleted

    def drain_outbox(self, grace_seconds: float, limit: int = 200) -> int:
        """Bring Milvus in line with PostgreSQL for item outbox entries older than the
        grace period; returns how many were settled."""
        with self.postgres.unit_of_work() as uow:
            entries = self.repo.claim_outbox(uow, grace_seconds, limit)
            for entry in entries:
                self._sync(uow, entry.tenant_id, entry.item_id, entry.collections)
            self.repo.remove_outbox(uow, [e.id for e in entries])
            uow.commit()
        return len(entries)

    def resync(self, tenant_id: int, item_id: int, collection: str) -> bool:
        """Make Milvus hold exactly the item's stored vectors (reconcile's repair); False
        when the item has no row (its vectors are then left to :meth:`delete_unclaimed`)."""
        with self.postgres.unit_of_work() as uow:
            found = self._sync(uow, tenant_id, item_id, [collection])
            uow.commit()
        return found

    def delete_unclaimed(self, collection: str, vectors: dict[int, int]) -> None:
        """Delete the entities among ``vectors`` (id to item id) whose item has no row and
        no outbox entry: no write in flight can still claim them."""
        free = set(self.repo.unclaimed(sorted(set(vectors.values()))))
        self.index.delete(collection, [v for v, item_id in vectors.items() if item_id in free])

    def _sync(
        self, uow: UnitOfWork, tenant_id: int, item_id: int, collections: Sequence[str]
    ) -> bool:
        """Under the item's row lock, delete its stale entities from ``collections`` (and its
        current one) and write its stored vectors; False when the item has no row."""
        row = self.repo.lock_by_id(uow, item_id)
        current = self.collection_of(row[0], row[1]) if row else None
        keep = self.repo.vectors_of([item_id]).get(item_id, []) if current else []
        keep_ids = {vid for vid, _ in keep}
        for collection in {*collections, *([current] if current else [])}:
            stale = self.index.ids_of_items(collection, tenant_id, [item_id])
            if collection != current:
                self.index.delete(collection, stale)
            else:
                self.index.delete(collection, [i for i in stale if i not in keep_ids])
        if current is not None and row is not None and keep:
            path, attrs = self.repo.vector_meta([item_id])[item_id]
            self.index.write(
                current,
                [ItemVectorRecord(vid, item_id, row[0], v.vector, path, attrs) for vid, v in keep],
            )
        return row is not None
