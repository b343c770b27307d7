"""The asynchronous client: how it sends a call (its methods are in :mod:`._endpoint`).

Its backoff sleeps go through anyio, so it is not tied to asyncio.
"""

from __future__ import annotations

from typing import TypeVar

import anyio
import httpx
from tenacity import AsyncRetrying

from somafractalmemory.client._base import Attempts, BaseClient
from somafractalmemory.client._calls import Call
from somafractalmemory.client._closing import AsyncClosing
from somafractalmemory.client._endpoint import AsyncSender

T = TypeVar("T")


class AsyncSFMClient(BaseClient[httpx.AsyncBaseTransport], AsyncSender, AsyncClosing):
    """An async client for one SomaFractalMemory server and one API key.

    The same methods as :class:`~somafractalmemory.client.SFMClient`, as coroutines;
    :meth:`iter_memories` is an async iterator. Use it as an async context manager, or
    ``await client.close()``.
    """

    _public_name = "AsyncSFMClient"

    def _open(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self._http = httpx.AsyncClient(transport=transport, **self.config.http_options())

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    aclose = close

    async def _send(self, call: Call[T]) -> T:
        attempts = Attempts(self.config, call)

        async def attempt() -> T:
            with attempts.one():
                if call.stream:
                    request = self._http.build_request(**self._options(call))
                    response = await self._http.send(request, stream=True)
                    if response.status_code >= 400:
                        try:
                            await response.aread()
                        finally:
                            await response.aclose()
                else:
                    response = await self._http.request(**self._options(call))
            self._keep_token(response)
            return call.read(response)

        with attempts.all():
            retrying = AsyncRetrying(sleep=anyio.sleep, **self.config.retry_options(call.retry))
            return await retrying(attempt)
