"""The Python client of SomaFractalMemory: ``SFMClient`` (blocking) and ``AsyncSFMClient``.

    from somafractalmemory.client import SFMClient

    with SFMClient("http://127.0.0.1:9595", api_key) as sfm:
        sfm.store("1,2,3", {"text": "The user prefers green tea"})
        print(sfm.search("what does the user drink?").results[0].payload)

It needs only httpx, pydantic and tenacity (``pip install somafractalmemory``): it imports
:mod:`somafractalmemory.schemas` (the API's own request and response models, so there is one
definition of each), :mod:`somafractalmemory.errors` and :mod:`somafractalmemory.models`,
and nothing of the server. Errors are described in :mod:`somafractalmemory.client.errors`.

Retries: failed calls are sent again with exponential backoff, at most ``retries`` more times,
when a store is unavailable (503) or the server could not be reached; see
:class:`Retry` (and docs/client-and-mcp.md) for exactly when. 4xx answers are never
retried.
"""

from somafractalmemory.client._async import AsyncSFMClient
from somafractalmemory.client._calls import Retry
from somafractalmemory.client._sync import SFMClient
from somafractalmemory.client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    SFMClientError,
    StoreUnavailable,
    Unauthorized,
)
from somafractalmemory.models import MemoryType
from somafractalmemory.schemas import (
    BatchItemResult,
    BatchResponse,
    DeleteResponse,
    HealthResponse,
    LinkPublic,
    MemoryCreate,
    MemoryList,
    MemoryPublic,
    NeighborPublic,
    NeighborsResponse,
    PathResponse,
    SearchResponse,
    SearchResult,
    StatsResponse,
)

__all__ = [
    "AsyncSFMClient",
    "BadRequest",
    "BatchItemResult",
    "BatchResponse",
    "Conflict",
    "ConnectionFailed",
    "DeleteResponse",
    "HealthResponse",
    "InvalidInput",
    "LinkPublic",
    "MemoryCreate",
    "MemoryList",
    "MemoryPublic",
    "MemoryType",
    "NeighborPublic",
    "NeighborsResponse",
    "NotFound",
    "PathResponse",
    "PayloadTooLarge",
    "RateLimited",
    "Retry",
    "SFMClient",
    "SFMClientError",
    "SearchResponse",
    "SearchResult",
    "ServerError",
    "StatsResponse",
    "StoreUnavailable",
    "Unauthorized",
]
