"""What each endpoint call is, independent of sync or async: one place for both clients.

A :class:`Call` names the method, path, query and body, how to read the answer, and its
:class:`Retry` policy. The two clients differ only in how they send it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from somafractalmemory.client.errors import (
    ConnectionFailed,
    ServerError,
    StoreUnavailable,
    error_for,
)
from somafractalmemory.models import MemoryType
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
M = TypeVar("M", bound=BaseModel)

Direction = str  # "out", "in" or "both"; the server validates it
MemoryTypeArg = MemoryType | str


class Retry(Enum):
    """When a failed call is sent again (with exponential backoff, up to ``retries`` times).

    4xx answers are never retried, whatever the policy.
    """

    #: Reads (GET, search, stats): retried on any transport failure and on 503.
    READ = "read"
    #: Idempotent writes (store, store_batch, link, delete): retried on 503, and on transport
    #: failures only when the request certainly never reached the server (connection refused,
    #: connect or pool timeout). A write that timed out while the server was working on it is
    #: not sent again: it may have been applied, and piling a second one on a slow server helps
    #: nobody.
    WRITE = "write"
    #: Health probes: retried on transport failures; a 503 is an answer, not a failure.
    PROBE = "probe"

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by one attempt, is worth another attempt."""
        if isinstance(exc, ConnectionFailed):
            return self is not Retry.WRITE or not exc.maybe_applied
        return isinstance(exc, StoreUnavailable) and self is not Retry.PROBE


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer. ``body`` may hold datetimes, enums and
    pydantic models: it is made JSON-ready (datetimes as ISO 8601) when the call is built."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    retry: Retry
    params: Mapping[str, str | int | float | Sequence[str]] = field(default_factory=dict)
    body: Any = None

    def __post_init__(self) -> None:
        if self.body is not None:
            object.__setattr__(self, "body", to_jsonable_python(self.body))


def coord_path(coord: str) -> str:
    """A coordinate as a path segment ("/" and spaces escaped, commas kept)."""
    return quote(str(coord), safe=",")


def raise_for_error(response: httpx.Response) -> None:
    """Raise the mapped exception for an error answer; do nothing for 1xx-3xx."""
    if response.status_code < 400:
        return
    name: str | None = None
    detail = response.text[:1000] or response.reason_phrase
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        name = body.get("error") if isinstance(body.get("error"), str) else None
        raw_detail = body.get("detail")
        if raw_detail is not None:
            detail = raw_detail if isinstance(raw_detail, str) else json.dumps(raw_detail)
    raise error_for(response.status_code, name, detail, response.headers.get("Retry-After"))


def parse(model: type[M], response: httpx.Response) -> M:
    """Read a 2xx answer as ``model``; anything else is an error."""
    raise_for_error(response)
    return parse_body(model, response)


def parse_body(model: type[M], response: httpx.Response) -> M:
    """Read the body as ``model`` whatever the status; ServerError when it is not one."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ServerError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code} with a body that is not a {model.__name__}: "
            f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}",
            status_code=response.status_code,
            error="UnexpectedResponse",
        ) from None


def _reader(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: parse(model, response)


def _health(response: httpx.Response) -> HealthResponse:
    # 503 carries the same body naming each failed part: it is an answer, not an error.
    if response.status_code == 503:
        try:
            return HealthResponse.model_validate_json(response.content)
        except ValidationError:
            pass  # not SFM's health body (a proxy's 503, say): report it as the error it is
    return parse(HealthResponse, response)


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _enum_value(value: MemoryTypeArg | None) -> str | None:
    return value.value if isinstance(value, MemoryType) else value


def memory_body(
    coord: str,
    payload: Mapping[str, Any],
    memory_type: MemoryTypeArg,
    importance: float,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON of one memory to store."""
    return {
        "coord": coord,
        "payload": dict(payload),
        "memory_type": _enum_value(memory_type),
        "importance": importance,
        **extra,
    }


def store(
    coord: str,
    payload: Mapping[str, Any],
    memory_type: MemoryTypeArg,
    importance: float,
    extra: Mapping[str, Any],
) -> Call[MemoryPublic]:
    """POST /memories."""
    return Call(
        "POST",
        "/memories",
        _reader(MemoryPublic),
        Retry.WRITE,
        body=memory_body(coord, payload, memory_type, importance, extra),
    )


def store_batch(memories: Sequence[MemoryCreate | Mapping[str, Any]]) -> Call[BatchResponse]:
    """POST /memories/batch."""
    items = [m.model_dump(mode="json") if isinstance(m, BaseModel) else dict(m) for m in memories]
    return Call(
        "POST", "/memories/batch", _reader(BatchResponse), Retry.WRITE, body={"memories": items}
    )


def get(coord: str) -> Call[MemoryPublic]:
    """GET /memories/{coord}."""
    return Call("GET", f"/memories/{coord_path(coord)}", _reader(MemoryPublic), Retry.READ)


def delete(coord: str) -> Call[DeleteResponse]:
    """DELETE /memories/{coord}."""
    return Call("DELETE", f"/memories/{coord_path(coord)}", _reader(DeleteResponse), Retry.WRITE)


def list_page(
    memory_type: MemoryTypeArg | None, limit: int, cursor: str | None
) -> Call[MemoryList]:
    """GET /memories."""
    params = _without_none(
        {"memory_type": _enum_value(memory_type), "limit": limit, "cursor": cursor}
    )
    return Call("GET", "/memories", _reader(MemoryList), Retry.READ, params=params)


def search(
    query: str | None,
    top_k: int,
    memory_type: MemoryTypeArg | None,
    filters: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> Call[SearchResponse]:
    """POST /memories/search; ``extra`` keys (``mode``, ``vector``, ...) go into the body."""
    body = _without_none(
        {
            "query": query,
            "top_k": top_k,
            "memory_type": _enum_value(memory_type),
            "filters": dict(filters) if filters is not None else None,
        }
    )
    body.update(extra)
    return Call("POST", "/memories/search", _reader(SearchResponse), Retry.READ, body=body)


def link(
    from_coord: str,
    to_coord: str,
    link_type: str,
    strength: float,
    metadata: Mapping[str, Any] | None,
) -> Call[LinkPublic]:
    """POST /graph/link (linking again updates the link: idempotent)."""
    body = {
        "from_coord": from_coord,
        "to_coord": to_coord,
        "link_type": link_type,
        "strength": strength,
        "metadata": dict(metadata or {}),
    }
    return Call("POST", "/graph/link", _reader(LinkPublic), Retry.WRITE, body=body)


def neighbors(
    coord: str, k_hop: int, limit: int, link_type: str | None, direction: Direction
) -> Call[NeighborsResponse]:
    """GET /graph/neighbors."""
    params = _without_none(
        {
            "coord": coord,
            "k_hop": k_hop,
            "limit": limit,
            "link_type": link_type,
            "direction": direction,
        }
    )
    return Call("GET", "/graph/neighbors", _reader(NeighborsResponse), Retry.READ, params=params)


def path(
    from_coord: str, to_coord: str, max_length: int, link_type: str | None, direction: Direction
) -> Call[PathResponse]:
    """GET /graph/path."""
    params = _without_none(
        {
            "from_coord": from_coord,
            "to_coord": to_coord,
            "max_length": max_length,
            "link_type": link_type,
            "direction": direction,
        }
    )
    return Call("GET", "/graph/path", _reader(PathResponse), Retry.READ, params=params)


def stats() -> Call[StatsResponse]:
    """GET /stats."""
    return Call("GET", "/stats", _reader(StatsResponse), Retry.READ)


def health() -> Call[HealthResponse]:
    """GET /healthz: the body for 200 and 503 alike."""
    return Call("GET", "/healthz", _health, Retry.PROBE)


def ready() -> Call[HealthResponse]:
    """GET /readyz: the body for 200 and 503 alike."""
    return Call("GET", "/readyz", _health, Retry.PROBE)
