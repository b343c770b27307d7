"""Erasure of a whole tenant's records: every memory and item, with its vectors, cached copies
and history, through the same delete protocol as single deletes (so a crash part-way leaves
outbox entries the drainer finishes, and running it again finishes the rest). The tenant and
its API keys stay."""

from __future__ import annotations

from dataclasses import dataclass

from somafractalmemory.core.items import ItemService
from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import NotFoundError
from somafractalmemory.models import Tenant

PAGE = 500


@dataclass(frozen=True)
class PurgeReport:
    """What a tenant purge removed."""

    memories: int
    items: int
    versions: int


def purge_tenant(memories: MemoryService, items: ItemService, tenant: Tenant) -> PurgeReport:
    """Delete every record of ``tenant`` everywhere, then its whole history."""
    removed_memories = removed_items = 0
    while page := memories.postgres.memories_page(tenant.id, 0, PAGE):
        removed, _ = memories.delete_many(tenant, [memory.coord for memory, _v in page])
        removed_memories += len(removed)
    after = 0
    while page_items := items.repo.items_page(tenant.id, after, PAGE):
        for item in page_items:
            try:
                items.delete(tenant, item.namespace, item.key)
                removed_items += 1
            except NotFoundError:
                pass  # deleted meanwhile (or expired and swept): gone either way
        after = page_items[-1].id
    with memories.postgres.unit_of_work(tenant.key_id) as uow:
        versions = uow.purge_history(tenant.id, None, None)
        uow.commit()
    return PurgeReport(removed_memories, removed_items, versions)
