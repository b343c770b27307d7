"""Reconciliation: compare PostgreSQL and Milvus id by id, per tenant, and repair drift.

PostgreSQL is the source of truth, and every collection is checked: the memories' and, for
items, the default space's and each of the tenant's registered spaces'. A memory whose id has
no vector (or more than one) is *missing*: repair rewrites its vector from the row (its own
vector, else re-embedded), under the row's lock. An item vector (an ``item_vectors`` row)
that Milvus lacks is rewritten from PostgreSQL, never re-embedded, under the item's lock. A
vector whose id has no row is an *orphan*: repair deletes it, but only after checking that
no row and no outbox entry claims it, so a write in flight is never undone.
"""

from __future__ import annotations

from collections import Counter

from somafractalmemory.core.items import ItemService
from somafractalmemory.core.service import MemoryService
from somafractalmemory.models import DriftReport, Tenant
from somafractalmemory.observability.metrics import RECONCILE_DRIFT

# Rows repaired per transaction: bounds the IN list, the lock set and the embedding batch.
REPAIR_CHUNK = 500


def find_drift(service: MemoryService, tenant: Tenant) -> DriftReport:
    """The tenant's drift between PostgreSQL and Milvus."""
    in_milvus = Counter(service.milvus.all_ids(tenant.id))
    in_postgres = set(service.postgres.all_memory_ids(tenant.id))
    missing = sorted(i for i in in_postgres if in_milvus.get(i, 0) != 1)
    orphans = sorted(set(in_milvus) - in_postgres)
    return DriftReport(tenant.id, tenant.name, missing, orphans, service.milvus.collection)


def find_item_drift(items: ItemService, tenant: Tenant) -> list[DriftReport]:
    """The tenant's drift in each item collection it can have vectors in."""
    reports = []
    for space in items.spaces(tenant):
        in_postgres = items.repo.vector_ids(tenant.id, space.name)
        entities = items.index.entities(space.collection, tenant.id)
        in_milvus = Counter(vector_id for vector_id, _ in entities)
        missing = sorted(v for v in in_postgres if in_milvus.get(v, 0) != 1)
        orphans = sorted(set(in_milvus) - set(in_postgres))
        owners = {**dict(entities), **in_postgres}
        affected = {v: owners[v] for v in (*missing, *orphans)}
        reports.append(
            DriftReport(tenant.id, tenant.name, missing, orphans, space.collection, affected)
        )
    return reports


def repair_items(items: ItemService, report: DriftReport) -> None:
    """Rewrite each affected item's vectors from PostgreSQL; delete the orphans of items
    that are gone, unless a write in flight claims them."""
    gone: dict[int, int] = {}
    for item_id in sorted(set(report.owners.values())):
        if not items.resync(report.tenant_id, item_id, report.collection):
            gone.update({v: i for v, i in report.owners.items() if i == item_id})
    items.delete_unclaimed(report.collection, gone)


def repair(service: MemoryService, report: DriftReport) -> None:
    """Rewrite missing vectors and delete orphans that nothing claims."""
    for start in range(0, len(report.missing), REPAIR_CHUNK):
        rows = service.postgres.memories_with_ids(report.missing[start : start + REPAIR_CHUNK])
        coords = [memory.coord for _tenant, memory, _vector in rows]
        with service.postgres.unit_of_work() as uow:
            locked = uow.memories_for_sync(report.tenant_id, coords)
            service.write_vectors(report.tenant_id, list(locked.values()))
            uow.commit()
    for start in range(0, len(report.orphans), REPAIR_CHUNK):
        chunk = report.orphans[start : start + REPAIR_CHUNK]
        service.milvus.delete(service.postgres.unclaimed_orphans(chunk))


def reconcile(
    service: MemoryService,
    items: ItemService,
    tenant_name: str | None = None,
    fix: bool = False,
) -> list[DriftReport]:
    """Check every tenant (or one) in every collection, repair when ``fix``; records the run
    and sets the ``api_reconcile_drift`` gauge to the drift found."""
    if tenant_name is None:
        tenants = service.postgres.list_tenants()
    else:
        found = service.postgres.tenant_by_name(tenant_name)
        tenants = [found] if found else []
    memory_reports = [find_drift(service, tenant) for tenant in tenants]
    item_reports = [r for tenant in tenants for r in find_item_drift(items, tenant)]
    if fix:
        for report in memory_reports:
            repair(service, report)
        for report in item_reports:
            repair_items(items, report)
    reports = memory_reports + item_reports
    missing = sum(len(r.missing) for r in reports)
    orphans = sum(len(r.orphans) for r in reports)
    with service.postgres.unit_of_work() as uow:
        uow.record_reconcile(len(tenants), missing, orphans, fix)
        uow.commit()
    RECONCILE_DRIFT.set(missing + orphans)
    return reports
