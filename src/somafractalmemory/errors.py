"""The exception tree of SomaFractalMemory.

Every error the service raises on purpose is one of these; each class carries the HTTP status
the API answers with, and the API renders ``{"error": <class name>, "detail": <text>}``.
Driver errors are translated into this tree once, at the edge of each store adapter.

    SFMError (500)
    ├── InvalidInputError (422)        bad field; ``field`` names it
    │   └── BadRequestError (400)      the body is not JSON, or not an object
    ├── UnauthorizedError (401)        missing, unknown or revoked API key
    ├── NotFoundError (404)
    ├── ConflictError (409)
    ├── PayloadTooLargeError (413)
    ├── RateLimitedError (429)         a key over its per-minute budget; ``retry_after`` s
    ├── StatementRejectedError (500)   a store refused a statement SFM built: a bug, not an outage
    └── StoreUnavailableError (503)    a store did not answer; ``store`` and ``address`` name it
        ├── PostgresUnavailableError
        ├── MilvusUnavailableError
        ├── RedisUnavailableError      raised by probes only: Redis never fails a request
        └── SchemaError                a store answered but its schema is wrong or missing
    InfrastructureError                start-up checks failed; lists every failed part
"""

from __future__ import annotations

from dataclasses import dataclass


class SFMError(Exception):
    """Base of every error SFM raises on purpose."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInputError(SFMError):
    """The request names a field whose value is not acceptable."""

    status_code = 422

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {detail}" if field else detail)
        self.field = field


class BadRequestError(InvalidInputError):
    """The body could not be read as the JSON object the endpoint expects."""

    status_code = 400


class UnauthorizedError(SFMError):
    """No valid API key came with the request."""

    status_code = 401


class NotFoundError(SFMError):
    """The caller's tenant has no such memory, link or path."""

    status_code = 404


class ConflictError(SFMError):
    """The request contradicts what is stored."""

    status_code = 409


class PayloadTooLargeError(SFMError):
    """The body is larger than ``SOMA_MAX_BODY_BYTES``."""

    status_code = 413


class RateLimitedError(SFMError):
    """The key sent more requests than ``SOMA_RATE_LIMIT_PER_MINUTE`` allows."""

    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class EmbeddingModelError(SFMError):
    """The embedding model cannot be loaded, exported or checked; ``location`` names the
    directory concerned. Raised at start-up, where bootstrap reports it as the part
    ``embedding``."""

    status_code = 503

    def __init__(self, detail: str, location: str = "") -> None:
        super().__init__(detail)
        self.location = location


class StatementRejectedError(SFMError):
    """A store answered and refused a statement SFM itself built (a syntax error, a wrong
    type, a missing privilege): a defect in SFM, answered as a 500. The store is *not* marked
    down and no 503 is given: a client retrying a 503 would only repeat the defect, and a
    test that allows 503 during outages would hide it."""

    def __init__(self, store: str, detail: str) -> None:
        super().__init__(f"{store} refused a statement: {detail}")
        self.store = store


class StoreUnavailableError(SFMError):
    """A store did not answer in time or refused the call."""

    status_code = 503
    store = "store"

    def __init__(self, detail: str, address: str = "") -> None:
        where = f" at {address}" if address else ""
        super().__init__(f"{self.store}{where}: {detail}")
        self.address = address
        self.reason = detail


class PostgresUnavailableError(StoreUnavailableError):
    """PostgreSQL, the source of truth, cannot be used."""

    store = "postgres"


class MilvusUnavailableError(StoreUnavailableError):
    """Milvus, the vector index, cannot be used."""

    store = "milvus"


class RedisUnavailableError(StoreUnavailableError):
    """Redis, the cache, did not answer a probe."""

    store = "redis"


class SchemaError(StoreUnavailableError):
    """A store answered but its schema is missing or does not match (a dropped table, a
    collection with the wrong dimension). ``store`` is set per instance."""

    def __init__(self, store: str, detail: str, address: str = "") -> None:
        self.store = store
        super().__init__(detail, address)


@dataclass(frozen=True)
class PartFailure:
    """One part of the stack that failed a start-up check."""

    part: str
    address: str
    reason: str

    def line(self) -> str:
        """The one-line report bootstrap prints for this part."""
        return f"{self.part} ({self.address}): {self.reason}"


class InfrastructureError(SFMError):
    """Start-up checks failed; ``failures`` has one entry per failed part."""

    status_code = 503

    def __init__(self, failures: list[PartFailure]) -> None:
        self.failures = failures
        super().__init__("; ".join(f.line() for f in failures))
