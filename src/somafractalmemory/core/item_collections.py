"""Item collections v2: move a v1 collection (no ``namespace_path``, no ``attrs``) to the v2
schema without re-embedding.

For each item collection (the default space's, then every registered space's), in steps a
crash may stop anywhere, and running the routine again finishes:

1. ``C`` is v2 already: nothing to do (a second run does nothing);
2. ``C`` is v1: drop ``C_V2COPY`` if a stopped run left one (it may be partial), create it
   (schema v2, index, stamped with this database's identity, loaded), copy every entity of
   ``C`` with its vector (read back from Milvus: nothing is re-embedded) and its record's
   namespace path and state flags from PostgreSQL, check that every copied entity landed;
3. drop ``C``, then rename ``C_V2COPY`` to ``C``;
4. ``C`` is missing and ``C_V2COPY`` exists: a run stopped between the drop and the rename
   (the copy was complete before ``C`` was dropped): rename it.

Drop-and-rename, not a new name recorded beside the space: the default space's collection is
named by configuration, not recorded anywhere, and every check, count and repair keeps
finding each collection under the one name. ``rename_collection`` keeps the properties (the
owner stamp), the index and the load state on Milvus 2.3.5 and later.

An entity whose item has no record (an orphan reconcile reports) is copied with an empty
namespace path: no prefix reaches it, and reconcile still sees it as before. Entities that
share a primary key (a raced write) come out of Milvus's query once and are copied once.

Bootstrap runs this (through :meth:`ItemService.ensure_collections`) before the service
starts; ``somafractalmemory migrate-item-collections`` runs it by hand (with no server
writing: an old server's writes to ``C`` after its copy would be lost); until it has run,
``validate-infra``, start-up and ``/healthz`` name each v1 collection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from somafractalmemory.errors import SchemaError
from somafractalmemory.models import DatabaseIdentity, Space
from somafractalmemory.stores.item_collections import (
    count_all,
    entity_batches,
    forget_schema,
    rename,
)
from somafractalmemory.stores.items_milvus import MIGRATION_SUFFIX, ItemVectorRecord
from somafractalmemory.stores.ownership import OWNER, log_adoption, read_identity

if TYPE_CHECKING:
    from somafractalmemory.core.items import ItemService

logger = logging.getLogger(__name__)

BATCH = 1_000
Outcome = Literal["migrated", "finished", "current", "absent"]


@dataclass(frozen=True)
class CollectionMigration:
    """What the routine did to one collection: ``migrated`` (copied and swapped),
    ``finished`` (a stopped run's complete copy renamed), ``current`` (v2 already),
    ``absent`` (none yet: ensure creates it v2)."""

    collection: str
    outcome: Outcome
    copied: int = 0
    collapsed: int = 0  # v1 entities that shared a primary key with another


def migrate_item_collections(items: ItemService, batch: int = BATCH) -> list[CollectionMigration]:
    """Bring every item collection to schema v2; idempotent."""
    owner = read_identity(items.postgres)
    spaces = [items.default_space, *items.repo.spaces()]
    return [migrate_collection(items, space, owner, batch) for space in spaces]


def migrate_collection(
    items: ItemService, space: Space, owner: DatabaseIdentity, batch: int = BATCH
) -> CollectionMigration:
    """Bring the space's collection to schema v2 (the steps of the module docstring)."""
    index = items.index
    name = space.collection
    copy = name + MIGRATION_SUFFIX
    live, staged = index.schema_version(name), index.schema_version(copy)
    if live == 2:
        if staged is not None:
            raise SchemaError(
                "milvus",
                f"collection {name!r} is v2 and {copy!r}, a v2 migration's copy, exists too: "
                f"no run leaves both; check that {name!r} holds the vectors, then drop "
                f"{copy!r}",
                index.address,
            )
        return CollectionMigration(name, "current")
    if live is None:
        if staged is None:
            return CollectionMigration(name, "absent")
        index.milvus.refuse_foreign(copy, owner)
        rename(index, copy, name)
        logger.warning("item collection %r: renamed the copy of a stopped migration", name)
        return CollectionMigration(name, "finished")
    properties = index.milvus.refuse_foreign(name, owner)
    index.load(name)
    index.check_collection(space, None, allow_v1=True)  # dimension and metric, before copying
    if staged is not None:
        index.drop_collection(copy)  # a stopped run's copy, perhaps partial
    index.create(copy, space, owner)
    forget_schema(index, copy)  # this process may have known a copy dropped above
    index.load(copy)
    copied = 0
    for rows in entity_batches(index, name, batch):
        meta = items.repo.vector_meta(sorted({int(r["item_id"]) for r in rows}))
        records = []
        for row in rows:
            path, attrs = meta.get(int(row["item_id"]), ("", {}))
            records.append(
                ItemVectorRecord(
                    int(row["id"]),
                    int(row["item_id"]),
                    int(row["tenant_id"]),
                    [float(v) for v in row["vector"]],
                    path,
                    attrs,
                )
            )
        index.insert(copy, records)
        copied += len(records)
    total, landed = count_all(index, name), count_all(index, copy)
    if landed != copied or total < copied:
        raise SchemaError(
            "milvus",
            f"v2 migration of {name!r}: copied {copied} entities, {copy!r} holds {landed} and "
            f"{name!r} {total}; nothing was dropped (run the migration again)",
            index.address,
        )
    index.drop_collection(name)
    rename(index, copy, name)
    if OWNER not in properties:
        log_adoption(name, owner)
    logger.info("item collection %r: migrated to schema v2 (%d entities)", name, copied)
    return CollectionMigration(name, "migrated", copied, total - copied)
