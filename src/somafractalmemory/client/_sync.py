"""The synchronous client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from tenacity import Retrying

from somafractalmemory.client import _calls
from somafractalmemory.client._calls import Direction, MemoryTypeArg
from somafractalmemory.client._config import (
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ClientConfig,
)
from somafractalmemory.client._items import ItemMethods
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


class SFMClient(ItemMethods):
    """A blocking client for one SomaFractalMemory server and one API key.

    Every method is one endpoint and returns the API's own pydantic model; errors raise a
    :class:`~somafractalmemory.client.errors.SFMClientError` subclass. Use it as a context
    manager, or call :meth:`close`.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig(
            base_url, api_key, timeout, retries, backoff, max_backoff, dict(headers or {})
        )
        self._http = httpx.Client(transport=transport, **self.config.http_options())

    def __repr__(self) -> str:
        return f"SFMClient({self.config.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: _calls.Call[T]) -> T:
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            try:
                response = self._http.request(
                    call.method, call.path, params=dict(call.params) or None, json=call.body
                )
            except httpx.TransportError as exc:
                raise transport_error(
                    exc, f"{call.method} {self.config.base_url}{call.path}"
                ) from exc
            return call.read(response)

        try:
            return Retrying(**self.config.retry_options(call.retry))(attempt)
        except SFMClientError as exc:
            exc.attempts = attempts
            raise

    # -- memories ---------------------------------------------------------------------------

    def store(
        self,
        coord: str,
        payload: Mapping[str, Any],
        memory_type: MemoryTypeArg = "episodic",
        importance: float = 0.5,
        **extra: Any,
    ) -> MemoryPublic:
        """Store a memory at ``coord``, replacing the one already there (``POST /memories``).

        The text embedded is ``payload["text"]``, else the payload as JSON. ``extra`` keys go
        into the request body as they are (for options newer servers accept).
        """
        return self._send(_calls.store(coord, payload, memory_type, importance, extra))

    def store_batch(self, memories: Sequence[MemoryCreate | Mapping[str, Any]]) -> BatchResponse:
        """Store up to 1,000 memories as one unit: all of them or none."""
        return self._send(_calls.store_batch(memories))

    def get(self, coord: str) -> MemoryPublic:
        """The memory at ``coord``; :class:`NotFound` if there is none."""
        return self._send(_calls.get(coord))

    def delete(self, coord: str) -> DeleteResponse:
        """Delete the memory at ``coord`` (and its links); :class:`NotFound` if there is none."""
        return self._send(_calls.delete(coord))

    def list(
        self,
        memory_type: MemoryTypeArg | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> MemoryList:
        """One page of memories in storage order; pass ``next_cursor`` back for the next."""
        return self._send(_calls.list_page(memory_type, limit, cursor))

    def iter_memories(
        self, memory_type: MemoryTypeArg | None = None, page_size: int = 100
    ) -> Iterator[MemoryPublic]:
        """Every memory of the tenant, fetching pages of ``page_size`` as it goes."""
        cursor: str | None = None
        while True:
            page = self.list(memory_type, page_size, cursor)
            yield from page.memories
            cursor = page.next_cursor
            if cursor is None:
                return

    def search(
        self,
        query: str | None,
        top_k: int = 10,
        memory_type: MemoryTypeArg | None = None,
        filters: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> SearchResponse:
        """Recall memories by meaning, best first.

        ``filters`` are top-level payload fields that must match. ``extra`` keys go into the
        request body as they are, e.g. ``mode="hybrid"`` or ``vector=[...]`` (then pass
        ``query=None``) on servers that support them.
        """
        return self._send(_calls.search(query, top_k, memory_type, filters, extra))

    # -- graph ------------------------------------------------------------------------------

    def link(
        self,
        from_coord: str,
        to_coord: str,
        link_type: str = "related",
        strength: float = 1.0,
        metadata: Mapping[str, Any] | None = None,
    ) -> LinkPublic:
        """Link two existing memories; linking again updates strength and metadata."""
        return self._send(_calls.link(from_coord, to_coord, link_type, strength, metadata))

    def neighbors(
        self,
        coord: str,
        k_hop: int = 1,
        limit: int = 100,
        link_type: str | None = None,
        direction: Direction = "out",
    ) -> NeighborsResponse:
        """Memories up to ``k_hop`` links away (``direction``: out, in or both), nearest first."""
        return self._send(_calls.neighbors(coord, k_hop, limit, link_type, direction))

    def path(
        self,
        from_coord: str,
        to_coord: str,
        max_length: int = 5,
        link_type: str | None = None,
        direction: Direction = "out",
    ) -> PathResponse:
        """A shortest path of links; :class:`NotFound` when there is none."""
        return self._send(_calls.path(from_coord, to_coord, max_length, link_type, direction))

    # -- operations -------------------------------------------------------------------------

    def stats(self) -> StatsResponse:
        """Counts for the key's tenant."""
        return self._send(_calls.stats())

    def health(self) -> HealthResponse:
        """Each store's state; returned for 200 and 503 alike (check ``status``)."""
        return self._send(_calls.health())

    def ready(self) -> HealthResponse:
        """Readiness (PostgreSQL and Milvus); returned for 200 and 503 alike."""
        return self._send(_calls.ready())
