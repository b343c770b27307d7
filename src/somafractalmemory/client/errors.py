"""The exceptions the client raises, one per kind of answer the API gives.

The API answers every error as ``{"error": "<ErrorClass>", "detail": "<what and why>"}``. The
client maps ``error`` to one of these classes, falls back on the HTTP status for names it does
not know, and keeps ``status_code``, ``error`` and ``detail`` on the exception. Transport
failures (nothing answered) become :class:`ConnectionFailed`; they are translated in exactly
one place, :func:`transport_error`.

    SFMClientError                   any failure; ``status_code`` is None when nothing answered
    ├── InvalidInput (422)           a field is wrong; ``detail`` names it
    │   └── BadRequest (400)         the body was not the JSON object the endpoint expects
    ├── Unauthorized (401)           missing, unknown or revoked API key
    ├── NotFound (404)               no such memory, link or path for this key's tenant
    ├── Conflict (409)
    ├── PayloadTooLarge (413)
    ├── RateLimited (429)            over the key's budget; ``retry_after`` says how long to wait
    ├── ServerError (5xx)            the server failed, or answered something unreadable
    │   └── StoreUnavailable (503)   a store is down; ``detail`` names it and its address
    └── ConnectionFailed             no answer: refused, timed out, connection dropped

The names deliberately do not end in ``Error``: they must never be confused with the server's
own tree in :mod:`somafractalmemory.errors` (``NotFoundError`` and so on) when both are imported.
"""

from __future__ import annotations

import httpx

from somafractalmemory import errors as server_errors


class SFMClientError(Exception):
    """Base of every error the client raises."""

    default_status: int | None = None

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code if status_code is not None else self.default_status
        self.error = error or type(self).__name__
        self.detail = detail
        self.attempts = attempts
        #: Seconds the server asked the caller to wait (its ``Retry-After`` header), if any.
        self.retry_after: float | None = None

    def __str__(self) -> str:
        status = f" ({self.status_code})" if self.status_code is not None else ""
        tries = f" [after {self.attempts} attempts]" if self.attempts > 1 else ""
        return f"{self.error}{status}: {self.detail}{tries}"


class InvalidInput(SFMClientError):
    """A field of the request is not acceptable (422); ``detail`` names the field."""

    default_status = 422


class BadRequest(InvalidInput):
    """The body could not be read as the JSON object the endpoint expects (400)."""

    default_status = 400


class Unauthorized(SFMClientError):
    """No valid API key came with the request (401)."""

    default_status = 401


class NotFound(SFMClientError):
    """The key's tenant has no such memory, link or path (404)."""

    default_status = 404


class Conflict(SFMClientError):
    """The request contradicts what is stored (409)."""

    default_status = 409


class PayloadTooLarge(SFMClientError):
    """The body is over the server's ``SOMA_MAX_BODY_BYTES`` (413)."""

    default_status = 413


class RateLimited(SFMClientError):
    """Too many requests (429); never retried by the client."""

    default_status = 429


class ServerError(SFMClientError):
    """The server failed (5xx) or answered something the client cannot read."""

    default_status = 500


class StoreUnavailable(ServerError):
    """A store behind the API is down (503); ``detail`` names it and its address."""

    default_status = 503


class ConnectionFailed(SFMClientError):
    """Nothing answered: the connection was refused, timed out or dropped.

    ``maybe_applied`` is False when the request certainly never reached the server (the
    connection could not be opened), True when it may have been processed before the failure.
    """

    def __init__(self, detail: str, *, maybe_applied: bool, attempts: int = 1) -> None:
        super().__init__(detail, attempts=attempts)
        self.maybe_applied = maybe_applied


_BY_STATUS: dict[int, type[SFMClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    429: RateLimited,
    503: StoreUnavailable,
}

# Names the API uses that are not classes of the server's tree.
_EXTRA_NAMES: dict[str, type[SFMClientError]] = {
    "InternalError": ServerError,
    "RateLimitedError": RateLimited,
    "TooManyRequestsError": RateLimited,
}


def _server_error_names() -> dict[str, type[SFMClientError]]:
    """Every class of the server's tree, by name, mapped through its HTTP status."""
    found: dict[str, type[SFMClientError]] = {}
    pending: list[type[server_errors.SFMError]] = [server_errors.SFMError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found[cls.__name__] = class_for_status(cls.status_code)
    return found


def class_for_status(status: int) -> type[SFMClientError]:
    """The client class for an HTTP status the API gave without a name the client knows."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else SFMClientError


_BY_NAME: dict[str, type[SFMClientError]] = {**_server_error_names(), **_EXTRA_NAMES}


def error_for(
    status: int, name: str | None, detail: str, retry_after: str | None = None
) -> SFMClientError:
    """The exception for an error answer: by the API's ``error`` name, else by status.
    ``retry_after`` is the answer's ``Retry-After`` header (seconds; a date is ignored)."""
    cls = _BY_NAME.get(name or "") or class_for_status(status)
    error = cls(detail, status_code=status, error=name or None)
    if retry_after is not None and retry_after.strip().isdigit():
        error.retry_after = float(retry_after.strip())
    return error


def transport_error(exc: httpx.TransportError, url: str) -> ConnectionFailed:
    """Translate an httpx transport failure; the one place that knows httpx's exceptions."""
    # Connect failures and pool timeouts happen before any byte of the request is sent.
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    reason = str(exc) or "no reason given"
    return ConnectionFailed(f"{url}: {type(exc).__name__}: {reason}", maybe_applied=not never_sent)


__all__ = [
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "SFMClientError",
    "ServerError",
    "StoreUnavailable",
    "Unauthorized",
    "error_for",
    "transport_error",
]
