"""Listing the scope values of a tenant (``GET /scopes/{scope}``), a page at a time.

The cursor is opaque to callers: the last value of the page, base64url-encoded, so that any
scope value (up to 256 characters, any text but NUL) travels in a query string unchanged.
"""

from __future__ import annotations

import base64
import binascii

from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import SCOPE_FIELDS, Tenant


def _encode(last: str) -> str:
    return base64.urlsafe_b64encode(f"s:{last}".encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> str:
    if not cursor:
        return ""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInputError("is not a cursor this service returned", "cursor") from None
    kind, sep, value = raw.partition(":")
    if kind != "s" or not sep or not value:
        raise InvalidInputError("is not a cursor this service returned", "cursor")
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
        return found[:limit], _encode(found[limit - 1])
    return found, None
