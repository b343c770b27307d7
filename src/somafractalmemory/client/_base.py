"""What both clients share: the constructor (each opens its own kind of httpx client) and
the bookkeeping of a call's attempts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

import httpx

from somafractalmemory.client._calls import Call, RequestOptions
from somafractalmemory.client._config import (
    CONSISTENCY_HEADER,
    DEFAULT_BACKOFF,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    ClientConfig,
    newer_token,
)
from somafractalmemory.client._endpoint import Endpoints
from somafractalmemory.client.errors import SFMClientError, transport_error

TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)


class BaseClient(Endpoints, Generic[TransportT]):
    """One SomaFractalMemory server and one API key; ``transport`` replaces httpx's own
    (an ``httpx.BaseTransport`` for ``SFMClient``, an ``httpx.AsyncBaseTransport`` for
    ``AsyncSFMClient``); ``consistency_token`` is a token to start with."""

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
        transport: TransportT | None = None,
        consistency_token: str | None = None,
    ) -> None:
        self.config = ClientConfig(
            base_url, api_key, timeout, retries, backoff, max_backoff, dict(headers or {})
        )
        #: The newest ``SFM-Consistency-Token`` an answer carried, sent back with every later
        #: request so reads see this client's writes on any replica; set it to carry a token
        #: over from another client.
        self.consistency_token = consistency_token
        self._open(transport)

    def _options(self, call: Call[Any]) -> RequestOptions:
        """The httpx arguments of one attempt of ``call``, with the consistency token."""
        options = call.request()
        if self.consistency_token is not None:
            options["headers"] = {CONSISTENCY_HEADER: self.consistency_token}
        return options

    def _keep_token(self, response: httpx.Response) -> None:
        """Keep the answer's consistency token when it is newer than the one held."""
        received = response.headers.get(CONSISTENCY_HEADER)
        if received:
            self.consistency_token = newer_token(self.consistency_token, received)

    def _open(self, transport: TransportT | None) -> None:  # pragma: no cover - per client
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self._public_name}({self.config.base_url!r})"

    _public_name = "BaseClient"


class Attempts:
    """The attempts of one call: counts them, turns httpx's transport errors into
    :class:`ConnectionFailed`, and stamps the count on the error that ends the call."""

    def __init__(self, config: ClientConfig, call: Call[Any]) -> None:
        self.where = f"{call.method} {config.base_url}{call.path}"
        self.count = 0

    @contextmanager
    def one(self) -> Iterator[None]:
        """Around sending one attempt."""
        self.count += 1
        try:
            yield
        except httpx.TransportError as exc:
            raise transport_error(exc, self.where) from exc

    @contextmanager
    def all(self) -> Iterator[None]:
        """Around the retrying of every attempt."""
        try:
            yield
        except SFMClientError as exc:
            exc.attempts = self.count
            raise
