"""FastAPI dependencies: the stack and the caller's tenant."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import RateLimitedError, UnauthorizedError
from somafractalmemory.models import Tenant
from somafractalmemory.scope_schemas import MAX_SCOPE_ID
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


async def get_api_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The request's bearer key; 401 at once when there is none (no I/O)."""
    if credentials is None or not credentials.credentials:
        raise UnauthorizedError("missing API key: send `Authorization: Bearer <key>`")
    return credentials.credentials


ApiKeyDep = Annotated[str, Depends(get_api_key)]


def authorize(stack: Stack, key: str) -> Tenant:
    """The tenant of ``key``, or 401; 429 when the key is over its budget. Blocking: one
    PostgreSQL round trip unless the process has the key's tenant cached (a cache that
    PostgreSQL empties on every key change, so a revocation takes effect at once:
    ``core.keys.TenantCache``); the rate limit is counted in the process
    (``stores.rate_limit.RateLimiter``)."""
    return _within_rate(stack, key, stack.keys.authenticate(key))


def _within_rate(stack: Stack, key: str, tenant: Tenant) -> Tenant:
    """``tenant``, or 429 when ``key`` is over its budget (counted in the process, no I/O)."""
    allowed, retry_after = stack.rate_limiter.hit(stack.keys.key_id(key), time.time())
    if not allowed:
        raise RateLimitedError(
            f"more than {stack.rate_limiter.limit} requests a minute for this key", retry_after
        )
    return tenant


async def get_tenant(stack: StackDep, key: ApiKeyDep) -> Tenant:
    """The caller's tenant, before the endpoint runs: from the process's key cache without
    leaving the event loop, else looked up in a thread pool hop of its own."""
    cached = stack.keys.cached(key)
    if cached is not None:
        return _within_rate(stack, key, cached)
    return await run_in_threadpool(authorize, stack, key)


@dataclass(frozen=True)
class Caller:
    """A request's stack and key, to be authorized inside the endpoint's own thread.

    FastAPI runs each plain ``def`` dependency and each plain ``def`` endpoint in a thread
    pool hop of its own; on two cores a hop costs about half a millisecond. The hot routes
    take a ``Caller`` (resolved without I/O) and call :meth:`tenant` first thing, so the key
    lookup and the work share one hop. Their body is validated before the key is looked up;
    a missing key is still refused before anything else.
    """

    stack: Stack
    key: str

    def tenant(self) -> Tenant:
        """The caller's tenant, or 401 / 429 (see :func:`authorize`)."""
        return authorize(self.stack, self.key)


async def get_caller(stack: StackDep, key: ApiKeyDep) -> Caller:
    """The request's :class:`Caller`."""
    return Caller(stack, key)


async def get_memory_service(stack: StackDep) -> MemoryService:
    """The memory service."""
    return stack.memories


TenantDep = Annotated[Tenant, Depends(get_tenant)]
CallerDep = Annotated[Caller, Depends(get_caller)]
ServiceDep = Annotated[MemoryService, Depends(get_memory_service)]


# A scope filter in a query string (the rules of scope_schemas.ScopeId).
ScopeQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_SCOPE_ID,
        pattern=r"^[^\x00]+$",
        description="Only records of this scope",
    ),
]
