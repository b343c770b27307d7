"""History: a record's versions, a memory as of a time, and the tenant's change feed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query, Response

from somafractalmemory.api.deps import CallerDep
from somafractalmemory.api.responses import json_response
from somafractalmemory.api.strict import COORD_LIMITS, api_router
from somafractalmemory.core.coords import canonical_coord
from somafractalmemory.core.item_paths import check_key, check_namespace
from somafractalmemory.history_schemas import (
    ChangesResponse,
    HistoryResponse,
    change_public,
    version_entry,
)
from somafractalmemory.models import RecordVersion
from somafractalmemory.schemas import MemoryPublic
from somafractalmemory.stores.items_sql import namespace_path

router = api_router("history", (400, 401, 404, 422, 503))
CursorQuery = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")]
LimitQuery = Annotated[int, Query(ge=1, le=1000)]


def version_public(version: RecordVersion, created_at: datetime) -> MemoryPublic:
    """A memory's past version in the shape of a memory: its fields by name, the key as the
    coordinate, the time it was recorded as ``updated_at``."""
    assert version.memory_type is not None
    assert version.importance is not None
    fields = {"coord": version.key, "created_at": created_at, "updated_at": version.recorded_at}
    return MemoryPublic.model_validate(vars(version) | fields)


@router.get("/memories/{coord}/history", response_model=HistoryResponse)
def memory_history(
    coord: Annotated[str, Path(**COORD_LIMITS)],
    caller: CallerDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    """Every version of the memory at a coordinate, newest first, a page at a time (also
    after it was deleted, until it is purged)."""
    tenant = caller.tenant()
    page, next_cursor = caller.stack.history.versions(
        tenant, "", canonical_coord(coord), limit, cursor
    )
    return json_response(
        HistoryResponse(versions=[version_entry(v) for v in page], next_cursor=next_cursor)
    )


@router.get("/items/history", response_model=HistoryResponse)
def item_history(
    caller: CallerDep,
    namespace: Annotated[list[str], Query(max_length=10)],
    key: Annotated[str, Query(min_length=1, max_length=512)],
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Response:
    """Every version of an item, newest first (``namespace`` repeated once per label)."""
    tenant = caller.tenant()
    check_namespace(namespace)
    check_key(key)
    page, next_cursor = caller.stack.history.versions(
        tenant, namespace_path(namespace), key, limit, cursor
    )
    return json_response(
        HistoryResponse(versions=[version_entry(v) for v in page], next_cursor=next_cursor)
    )


@router.get("/changes", response_model=ChangesResponse)
def list_changes(
    caller: CallerDep,
    after: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Response:
    """The tenant's changes (every record kind) in transaction order, after a cursor: to
    mirror or audit. Resumable; a change appears once every older transaction has ended."""
    tenant = caller.tenant()
    changes, next_cursor = caller.stack.history.changes(tenant, after, limit)
    return json_response(
        ChangesResponse(
            changes=[change_public(v) for v in changes],
            next_cursor=next_cursor,
        )
    )
