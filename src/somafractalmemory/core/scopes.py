"""Listing the scope values of a tenant (``GET /scopes/{scope}``), a page at a time.

The cursor is opaque to callers: ``s:`` and the last value of the page, wrapped as every page
cursor is (:mod:`.page_cursor`).
"""

from __future__ import annotations

from somafractalmemory.core.page_cursor import NOT_OURS, pack, unpack
from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import SCOPE_FIELDS, Tenant


def _decode(cursor: str | None) -> str:
    if not cursor:
        return ""
    kind, sep, value = unpack(cursor).partition(":")
    if kind != "s" or not sep or not value:
        raise InvalidInputError(NOT_OURS, "cursor")
    return value


def scope_values(
    memories: MemoryService, tenant: Tenant, scope: str, cursor: str | None, limit: int
) -> tuple[list[str], str | None]:
    """A page of the distinct values of ``scope`` the tenant's records carry, and the cursor
    of the next page (None after the last)."""
    if scope not in SCOPE_FIELDS:  # pragma: no cover - the route's enum checks it first
        raise InvalidInputError(f"is not one of {', '.join(SCOPE_FIELDS)}", "scope")
    found = memories.postgres.scope_values(tenant.id, scope, _decode(cursor), limit + 1)
    if len(found) > limit:
        return found[:limit], pack(f"s:{found[limit - 1]}")
    return found, None
