"""The Milvus step of migration 0007: the items it moved into the records table got new ids,
and their entities in the item collections still name the old ones.

For each move, in batches: every entity of the old id is deleted from each item collection
the tenant can have vectors in (the default space's and its registered spaces'), the record's
stored vectors are written again under the new id (from ``record_vectors``: nothing is
re-embedded), its keyword text is filled from the texts its vectors' paths select, and the
move is forgotten, in that order. A crash anywhere leaves the move pending, and running the
step again finishes it (old ids are never new ones: the migration takes the new ids above
every old id). Bootstrap runs it before the service starts; ``somafractalmemory move-items``
runs it by hand; ``validate-infra`` refuses to serve while a move is pending.
"""

from __future__ import annotations

from collections import defaultdict

from somafractalmemory.core.item_paths import texts_at
from somafractalmemory.core.items import ItemService
from somafractalmemory.stores.items_milvus import ItemVectorRecord
from somafractalmemory.stores.record_moves import RecordMoves

BATCH = 500


def finish_moves(items: ItemService, batch: int = BATCH) -> int:
    """Do the Milvus step for every pending move; returns how many moves were finished."""
    moves = RecordMoves(items.postgres)
    finished = 0
    while pending := moves.batch(batch):
        by_tenant: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for old_id, record_id, tenant_id in pending:
            by_tenant[tenant_id].append((old_id, record_id))
        texts: dict[int, str] = {}
        for tenant_id, group in by_tenant.items():
            texts.update(_move(items, moves, tenant_id, group))
        with items.postgres.unit_of_work() as uow:
            moves.finish(uow, [old for old, _, _ in pending], texts)
            uow.commit()
        finished += len(pending)
    return finished


def _move(
    items: ItemService, moves: RecordMoves, tenant_id: int, group: list[tuple[int, int]]
) -> dict[int, str]:
    """Move one tenant's batch in Milvus; returns the moved records' keyword texts."""
    index = items.index
    collections = [index.default_collection]
    collections += [space.collection for space in items.repo.spaces(tenant_id)]
    old_ids = [old for old, _ in group]
    for collection in collections:
        index.delete(collection, index.ids_of_items(collection, tenant_id, old_ids))
    found = moves.records_of([record_id for _, record_id in group])
    vectors = items.repo.vectors_of(list(found))
    meta = items.repo.vector_meta(list(found))
    writes: dict[str, list[ItemVectorRecord]] = defaultdict(list)
    texts: dict[int, str] = {}
    for record_id, (value, space, paths) in found.items():
        texts[record_id] = "\n".join(t for p in paths for t in texts_at(value, p) if t.strip())
        target = items.collection_of(tenant_id, space)
        if target is None:
            continue
        path, attrs = meta[record_id]
        for vector_id, vector in vectors.get(record_id, []):
            writes[target].append(
                ItemVectorRecord(vector_id, record_id, tenant_id, vector.vector, path, attrs)
            )
    for collection, records in writes.items():
        index.write(collection, records)
    return texts
