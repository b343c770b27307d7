"""The asynchronous client (its backoff sleeps go through anyio, so it is not tied to asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx
from tenacity import AsyncRetrying

from somafractalmemory.client import _calls
from somafractalmemory.client._calls import Direction, MemoryTypeArg
from somafractalmemory.client._config import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ClientConfig,
)
from somafractalmemory.client._items import AsyncItemMethods
from somafractalmemory.client.errors import SFMClientError, transport_error
from somafractalmemory.schemas import (
    BatchResponse,
    DeleteResponse,
    HealthResponse,
    LinkPublic,
    MemoryCreate,
    MemoryList,
    MemoryPublic,
    NeighborsResponse,
    PathResponse,
    SearchResponse,
    StatsResponse,
)

T = TypeVar("T")


class AsyncSFMClient(AsyncItemMethods):
    """An async client for one SomaFractalMemory server and one API key.

    The same methods as :class:`~somafractalmemory.client.SFMClient`, as coroutines;
    :meth:`iter_memories` is an async iterator. Use it as an async context manager, or
    ``await client.close()``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        *,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig(
            base_url, api_key, timeout, retries, backoff, max_backoff, dict(headers or {})
        )
        self._http = httpx.AsyncClient(transport=transport, **self.config.http_options())

    def __repr__(self) -> str:
        return f"AsyncSFMClient({self.config.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    aclose = close

    async def _send(self, call: _calls.Call[T]) -> T:
        attempts = 0

        async def attempt() -> T:
            nonlocal attempts
            attempts += 1
            try:
                response = await self._http.request(
                    call.method, call.path, params=dict(call.params) or None, json=call.body
                )
            except httpx.TransportError as exc:
                raise transport_error(
                    exc, f"{call.method} {self.config.base_url}{call.path}"
                ) from exc
            return call.read(response)

        retrying = AsyncRetrying(sleep=anyio.sleep, **self.config.retry_options(call.retry))
        try:
            return await retrying(attempt)
        except SFMClientError as exc:
            exc.attempts = attempts
            raise

    # -- memories ---------------------------------------------------------------------------

    async def store(
        self,
        coord: str,
        payload: Mapping[str, Any],
        memory_type: MemoryTypeArg = "episodic",
        importance: float = 0.5,
        **extra: Any,
    ) -> MemoryPublic:
        """Store a memory at ``coord``, replacing the one already there (``POST /memories``)."""
        return await self._send(_calls.store(coord, payload, memory_type, importance, extra))

    async def store_batch(
        self, memories: Sequence[MemoryCreate | Mapping[str, Any]]
    ) -> BatchResponse:
        """Store up to 1,000 memories as one unit: all of them or none."""
        return await self._send(_calls.store_batch(memories))

    async def get(self, coord: str) -> MemoryPublic:
        """The memory at ``coord``; :class:`NotFound` if there is none."""
        return await self._send(_calls.get(coord))

    async def delete(self, coord: str) -> DeleteResponse:
        """Delete the memory at ``coord`` (and its links); :class:`NotFound` if there is none."""
        return await self._send(_calls.delete(coord))

    async def list(
        self,
        memory_type: MemoryTypeArg | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MemoryList:
        """One page of memories in storage order; pass ``next_cursor`` back for the next."""
        return await self._send(_calls.list_page(memory_type, limit, cursor))

    async def iter_memories(
        self, memory_type: MemoryTypeArg | None = None, page_size: int = 100
    ) -> AsyncIterator[MemoryPublic]:
        """Every memory of the tenant, fetching pages of ``page_size`` as it goes."""
        cursor: str | None = None
        while True:
            page = await self.list(memory_type, page_size, cursor)
            for memory in page.memories:
                yield memory
            cursor = page.next_cursor
            if cursor is None:
                return

    async def search(
        self,
        query: str | None,
        top_k: int = 10,
        memory_type: MemoryTypeArg | None = None,
        filters: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> SearchResponse:
        """Recall memories by meaning, best first; ``extra`` keys go into the body as-is."""
        return await self._send(_calls.search(query, top_k, memory_type, filters, extra))

    # -- graph ------------------------------------------------------------------------------

    async def link(
        self,
        from_coord: str,
        to_coord: str,
        link_type: str = "related",
        strength: float = 1.0,
        metadata: Mapping[str, Any] | None = None,
    ) -> LinkPublic:
        """Link two existing memories; linking again updates strength and metadata."""
        return await self._send(_calls.link(from_coord, to_coord, link_type, strength, metadata))

    async def neighbors(
        self,
        coord: str,
        k_hop: int = 1,
        limit: int = 100,
        link_type: str | None = None,
        direction: Direction = "out",
    ) -> NeighborsResponse:
        """Memories up to ``k_hop`` links away (``direction``: out, in or both), nearest first."""
        return await self._send(_calls.neighbors(coord, k_hop, limit, link_type, direction))

    async def path(
        self,
        from_coord: str,
        to_coord: str,
        max_length: int = 5,
        link_type: str | None = None,
        direction: Direction = "out",
    ) -> PathResponse:
        """A shortest path of links; :class:`NotFound` when there is none."""
        return await self._send(_calls.path(from_coord, to_coord, max_length, link_type, direction))

    # -- operations -------------------------------------------------------------------------

    async def stats(self) -> StatsResponse:
        """Counts for the key's tenant."""
        return await self._send(_calls.stats())

    async def health(self) -> HealthResponse:
        """Each store's state; returned for 200 and 503 alike (check ``status``)."""
        return await self._send(_calls.health())

    async def ready(self) -> HealthResponse:
        """Readiness (PostgreSQL and Milvus); returned for 200 and 503 alike."""
        return await self._send(_calls.ready())
