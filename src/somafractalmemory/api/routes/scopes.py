"""Scopes: the distinct ``user_id``, ``agent_id`` and ``session_id`` values of a tenant."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import Path, Query

from somafractalmemory.api.deps import StackDep, TenantDep
from somafractalmemory.api.strict import api_router
from somafractalmemory.core.scopes import scope_values
from somafractalmemory.scope_schemas import ScopeValues

router = api_router("scopes", (400, 401, 422, 503))


class Scope(StrEnum):
    """A scope a record can carry."""

    user_id = "user_id"
    agent_id = "agent_id"
    session_id = "session_id"


@router.get("/scopes/{scope}", response_model=ScopeValues)
def list_scope_values(
    scope: Annotated[Scope, Path(description="Which scope: user_id, agent_id or session_id")],
    tenant: TenantDep,
    stack: StackDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    # A value is up to 256 characters; its cursor is its UTF-8 bytes in base64url.
    cursor: Annotated[str | None, Query(max_length=2000, pattern=r"^[A-Za-z0-9_-]*$")] = None,
) -> ScopeValues:
    """The distinct values of one scope that the tenant's records carry, in text order."""
    values, next_cursor = scope_values(stack.memories, tenant, scope.value, cursor, limit)
    return ScopeValues(scope=scope.value, values=values, next_cursor=next_cursor)
