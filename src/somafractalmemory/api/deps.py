"""FastAPI dependencies: the stack and the caller's tenant."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from somafractalmemory.core.models import Tenant
from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import RateLimitedError
from somafractalmemory.stack import Stack

_bearer = HTTPBearer(
    auto_error=False, description="An API key from `somafractalmemory keys create`"
)


# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in
# its thread pool, one hop per dependency per request.
async def get_stack(request: Request) -> Stack:
    """The stack the lifespan of the server running this request built."""
    stack: Stack = request.state.stack
    return stack


StackDep = Annotated[Stack, Depends(get_stack)]


def get_tenant(
    stack: StackDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    """The tenant of the request's API key, or 401; 429 when the key is over its budget."""
    key = credentials.credentials if credentials else None
    tenant = stack.keys.authenticate(key)
    assert key is not None
    allowed, retry_after = stack.rate_limiter.hit(stack.keys.key_id(key), time.time())
    if not allowed:
        raise RateLimitedError(
            f"more than {stack.rate_limiter.limit} requests a minute for this key", retry_after
        )
    return tenant


async def get_memory_service(stack: StackDep) -> MemoryService:
    """The memory service."""
    return stack.memories


TenantDep = Annotated[Tenant, Depends(get_tenant)]
ServiceDep = Annotated[MemoryService, Depends(get_memory_service)]
