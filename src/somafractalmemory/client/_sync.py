"""The synchronous client: how it sends a call (its methods are in :mod:`._endpoint`)."""

from __future__ import annotations

from typing import TypeVar

import httpx
from tenacity import Retrying

from somafractalmemory.client._base import Attempts, BaseClient
from somafractalmemory.client._calls import Call
from somafractalmemory.client._closing import Closing
from somafractalmemory.client._endpoint import SyncSender

T = TypeVar("T")


class SFMClient(BaseClient[httpx.BaseTransport], SyncSender, Closing):
    """A blocking client for one SomaFractalMemory server and one API key.

    Every method is one endpoint and returns the API's own pydantic model; errors raise a
    :class:`~somafractalmemory.client.errors.SFMClientError` subclass. Use it as a context
    manager, or call :meth:`close`.
    """

    _public_name = "SFMClient"

    def _open(self, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(transport=transport, **self.config.http_options())

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        attempts = Attempts(self.config, call)

        def attempt() -> T:
            with attempts.one():
                if call.stream:
                    request = self._http.build_request(**self._options(call))
                    response = self._http.send(request, stream=True)
                    if response.status_code >= 400:
                        try:
                            response.read()
                        finally:
                            response.close()
                else:
                    response = self._http.request(**self._options(call))
            self._keep_token(response)
            return call.read(response)

        with attempts.all():
            return Retrying(**self.config.retry_options(call.retry))(attempt)
