"""What each endpoint call is, independent of sync or async: one place for both clients.

A :class:`Call` names the method, path, query and body, how to read the answer, and its
:class:`Retry` policy. Each function below declares one client method: its parameters,
defaults and docstring are the method's own (see :mod:`._endpoint`), and it returns the
:class:`Call` to send. The two clients differ only in how they send it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any, Generic, NotRequired, TypedDict, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_jsonable_python

from somafractalmemory import schemas
from somafractalmemory.client.errors import (
    ConnectionFailed,
    ServerError,
    StoreUnavailable,
    error_for,
)
from somafractalmemory.models import MemoryType

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
    #: The answer is streamed: ``read`` gets it with its body not yet read (an error
    #: answer's body is read first), and whoever gets the response closes it.
    stream: bool = False

    def __post_init__(self) -> None:
        if self.body is not None:
            object.__setattr__(self, "body", to_jsonable_python(self.body))

    def request(self) -> RequestOptions:
        """Keyword arguments for ``httpx.Client.request`` / ``httpx.AsyncClient.request``."""
        return {
            "method": self.method,
            "url": self.path,
            "params": dict(self.params) or None,
            "json": self.body,
        }


class RequestOptions(TypedDict):
    """What :meth:`Call.request` gives httpx."""

    method: str
    url: str
    params: dict[str, str | int | float | Sequence[str]] | None
    json: Any
    headers: NotRequired[dict[str, str]]


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


def _health(response: httpx.Response) -> schemas.HealthResponse:
    # 503 carries the same body naming each failed part: it is an answer, not an error.
    if response.status_code == 503:
        try:
            return schemas.HealthResponse.model_validate_json(response.content)
        except ValidationError:
            pass  # not SFM's health body (a proxy's 503, say): report it as the error it is
    return parse(schemas.HealthResponse, response)


def _present(**values: Any) -> dict[str, Any]:
    """The named values that are not None (an omitted option is not sent)."""
    return {k: v for k, v in values.items() if v is not None}


def _enum_value(value: MemoryTypeArg | None) -> str | None:
    return value.value if isinstance(value, MemoryType) else value


def store(
    coord: str,
    payload: Mapping[str, Any],
    memory_type: MemoryTypeArg = "episodic",
    importance: float = 0.5,
    *,
    supersedes: Sequence[str] | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    if_absent: bool | None = None,
    on_duplicate: str | None = None,
    **extra: Any,
) -> Call[schemas.MemoryWritten]:
    """Store a memory at ``coord``, replacing the one already there (``POST /memories``).

    The text embedded is ``payload["text"]``, else the payload as JSON. ``supersedes`` names
    memories this one replaces; ``valid_from``/``valid_to`` when the fact holds;
    ``if_absent`` makes it create-only (:class:`Conflict` when a memory is there);
    ``on_duplicate`` is ``store``, ``skip`` or ``supersede`` (see docs/history.md). The
    answer says what happened (``status``) and names duplicates. ``extra`` keys go into the
    request body as they are (for options newer servers accept).
    """
    body = {
        "coord": coord,
        "payload": dict(payload),
        "memory_type": _enum_value(memory_type),
        "importance": importance,
        **_present(
            supersedes=list(supersedes) if supersedes is not None else None,
            valid_from=valid_from,
            valid_to=valid_to,
            if_absent=if_absent,
            on_duplicate=on_duplicate,
        ),
        **extra,
    }
    return Call("POST", "/memories", _reader(schemas.MemoryWritten), Retry.WRITE, body=body)


def store_batch(
    memories: Sequence[schemas.MemoryCreate | Mapping[str, Any]],
) -> Call[schemas.BatchResponse]:
    """Store up to 1,000 memories as one unit: all of them or none."""
    items = [m.model_dump(mode="json") if isinstance(m, BaseModel) else dict(m) for m in memories]
    return Call(
        "POST",
        "/memories/batch",
        _reader(schemas.BatchResponse),
        Retry.WRITE,
        body={"memories": items},
    )


def get(coord: str, as_of: datetime | None = None) -> Call[schemas.MemoryPublic]:
    """The memory at ``coord`` (a superseded one too, marked), or the version current at
    ``as_of``; :class:`NotFound` if there is none (then)."""
    params = _present(as_of=as_of.isoformat() if as_of is not None else None)
    return Call(
        "GET",
        f"/memories/{coord_path(coord)}",
        _reader(schemas.MemoryPublic),
        Retry.READ,
        params=params,
    )


def delete(coord: str, purge: bool = False) -> Call[schemas.DeleteResponse]:
    """Delete the memory at ``coord`` (and its links); with ``purge`` its history too;
    :class:`NotFound` if there is none."""
    return Call(
        "DELETE",
        f"/memories/{coord_path(coord)}",
        _reader(schemas.DeleteResponse),
        Retry.WRITE,
        params={"purge": "true"} if purge else {},
    )


def list_page(
    memory_type: MemoryTypeArg | None = None,
    limit: int = 100,
    cursor: str | None = None,
    include_superseded: bool = False,
    **scopes: str,
) -> Call[schemas.MemoryList]:
    """One page of memories in storage order (current ones unless ``include_superseded``;
    ``scopes``: ``user_id``, ``agent_id``, ``session_id``); pass ``next_cursor`` back."""
    params = _present(
        memory_type=_enum_value(memory_type),
        limit=limit,
        cursor=cursor,
        include_superseded="true" if include_superseded else None,
        **scopes,
    )
    return Call("GET", "/memories", _reader(schemas.MemoryList), Retry.READ, params=params)


def iter_memories(
    memory_type: MemoryTypeArg | None = None,
    page_size: int = 100,
    include_superseded: bool = False,
) -> Call[schemas.MemoryList]:
    """Every memory of the tenant, fetching pages of ``page_size`` as it goes."""
    return list_page(memory_type, page_size, include_superseded=include_superseded)


def next_page(
    call: Call[schemas.MemoryList], page: schemas.MemoryList
) -> Call[schemas.MemoryList] | None:
    """The call for the page after ``page`` (answered to ``call``); None after the last."""
    if page.next_cursor is None:
        return None
    return replace(call, params={**call.params, "cursor": page.next_cursor})


def search(
    query: str | None,
    top_k: int = 10,
    memory_type: MemoryTypeArg | None = None,
    filters: Mapping[str, Any] | None = None,
    *,
    include_superseded: bool | None = None,
    valid_at: datetime | None = None,
    min_score: float | None = None,
    **extra: Any,
) -> Call[schemas.SearchResponse]:
    """Recall memories by meaning, best first.

    ``filters`` are top-level payload fields that must match; ``include_superseded`` brings
    back memories another one superseded (marked); ``valid_at`` keeps the facts valid then;
    ``min_score`` (0 to 1) keeps only results at least that relevant (scores are calibrated:
    README, "Scores and min_score").
    ``extra`` keys go into the request body as they are, e.g. ``mode="hybrid"`` or
    ``vector=[...]`` (then pass ``query=None``) on servers that support them.
    """
    body = _present(
        query=query,
        top_k=top_k,
        memory_type=_enum_value(memory_type),
        filters=dict(filters) if filters is not None else None,
        include_superseded=include_superseded,
        valid_at=valid_at,
        min_score=min_score,
    )
    body.update(extra)
    return Call("POST", "/memories/search", _reader(schemas.SearchResponse), Retry.READ, body=body)


def link(
    from_coord: str,
    to_coord: str,
    link_type: str = "related",
    strength: float = 1.0,
    metadata: Mapping[str, Any] | None = None,
) -> Call[schemas.LinkPublic]:
    """Link two existing memories; linking again updates strength and metadata."""
    body = {
        "from_coord": from_coord,
        "to_coord": to_coord,
        "link_type": link_type,
        "strength": strength,
        "metadata": dict(metadata or {}),
    }
    return Call("POST", "/graph/link", _reader(schemas.LinkPublic), Retry.WRITE, body=body)


def neighbors(
    coord: str,
    k_hop: int = 1,
    limit: int = 100,
    link_type: str | None = None,
    direction: Direction = "out",
) -> Call[schemas.NeighborsResponse]:
    """Memories up to ``k_hop`` links away (``direction``: out, in or both), nearest first."""
    params = _present(
        coord=coord, k_hop=k_hop, limit=limit, link_type=link_type, direction=direction
    )
    return Call(
        "GET", "/graph/neighbors", _reader(schemas.NeighborsResponse), Retry.READ, params=params
    )


def path(
    from_coord: str,
    to_coord: str,
    max_length: int = 5,
    link_type: str | None = None,
    direction: Direction = "out",
) -> Call[schemas.PathResponse]:
    """A shortest path of links; :class:`NotFound` when there is none."""
    params = _present(
        from_coord=from_coord,
        to_coord=to_coord,
        max_length=max_length,
        link_type=link_type,
        direction=direction,
    )
    return Call("GET", "/graph/path", _reader(schemas.PathResponse), Retry.READ, params=params)


def stats() -> Call[schemas.StatsResponse]:
    """Counts for the key's tenant."""
    return Call("GET", "/stats", _reader(schemas.StatsResponse), Retry.READ)


def health() -> Call[schemas.HealthResponse]:
    """Each store's state; returned for 200 and 503 alike (check ``status``)."""
    return Call("GET", "/healthz", _health, Retry.PROBE)


def ready() -> Call[schemas.HealthResponse]:
    """Readiness (PostgreSQL and Milvus); returned for 200 and 503 alike."""
    return Call("GET", "/readyz", _health, Retry.PROBE)
