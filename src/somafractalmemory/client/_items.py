"""Item, namespace and space calls: one function per client method, as in :mod:`._calls`.

``get_item`` answers None for an absent (or expired) item and ``delete_item`` False, rather
than raising :class:`NotFound`: "is it there?" is the question those calls ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

from somafractalmemory.client._calls import Call, Retry, parse, raise_for_error
from somafractalmemory.history_schemas import HistoryResponse
from somafractalmemory.item_schemas import (
    ItemDeleted,
    ItemPublic,
    ItemSearchResponse,
    ItemsSwept,
    NamespacesResponse,
    SpaceDeleted,
    SpacePublic,
    SpacesResponse,
)

IndexArg = Sequence[str] | Literal[False] | None
VectorArg = Mapping[str, Any]  # {"path": str, "vector": [float, ...]}


def _read_item_or_none(response: httpx.Response) -> ItemPublic | None:
    if response.status_code == 404:
        return None
    return parse(ItemPublic, response)


def _read_deleted(response: httpx.Response) -> bool:
    if response.status_code == 404:
        return False
    raise_for_error(response)
    return parse(ItemDeleted, response).deleted


def _given(body: dict[str, Any], **options: Any) -> dict[str, Any]:
    """``body`` with the options that were given (not None) added: an omitted option is not
    sent, so the server's default holds."""
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def _query_value(value: Any) -> Any:
    """A query-string value: bools as the server reads them ("true", "false")."""
    return str(value).lower() if isinstance(value, bool) else value


def put_item(
    namespace: Sequence[str],
    key: str,
    value: Mapping[str, Any],
    *,
    index: IndexArg = None,
    ttl_minutes: float | None = None,
    space: str | None = None,
    vectors: Sequence[VectorArg] | None = None,
) -> Call[ItemPublic]:
    """Store an item at ``namespace`` + ``key``, replacing the one there. ``index``: JSON
    paths to embed, or False; ``space`` + ``vectors``: your own vectors."""
    body = _given(
        {"namespace": list(namespace), "key": key, "value": dict(value)},
        index=index if index is None or index is False else list(index),
        ttl_minutes=ttl_minutes,
        space=space,
        vectors=None if vectors is None else [dict(v) for v in vectors],
    )
    return Call("PUT", "/items", lambda r: parse(ItemPublic, r), Retry.WRITE, body=body)


def _item_params(namespace: Sequence[str], key: str, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"namespace": list(namespace), "key": key}
    params.update({k: _query_value(v) for k, v in extra.items()})
    return params


def get_item(
    namespace: Sequence[str],
    key: str,
    *,
    refresh_ttl: bool = True,
    include_expired: bool = False,
) -> Call[ItemPublic | None]:
    """The item, or None when there is none (or it expired)."""
    params = _item_params(namespace, key, refresh_ttl=refresh_ttl, include_expired=include_expired)
    return Call("GET", "/items", _read_item_or_none, Retry.READ, params=params)


def delete_item(namespace: Sequence[str], key: str) -> Call[bool]:
    """Delete the item; False when there was none."""
    return Call("DELETE", "/items", _read_deleted, Retry.WRITE, params=_item_params(namespace, key))


def item_history(
    namespace: Sequence[str], key: str, limit: int = 50, cursor: str | None = None
) -> Call[HistoryResponse]:
    """The versions of the item at ``namespace`` + ``key``, newest first (also after a
    delete, until a purge); pass ``next_cursor`` back as ``cursor`` for older ones."""
    params = _item_params(namespace, key, limit=limit)
    if cursor is not None:
        params["cursor"] = cursor
    return Call(
        "GET", "/items/history", lambda r: parse(HistoryResponse, r), Retry.READ, params=params
    )


def search_items(
    namespace_prefix: Sequence[str] = (),
    *,
    query: str | None = None,
    vector: Sequence[float] | None = None,
    mode: str | None = None,
    space: str | None = None,
    filter: Mapping[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
    refresh_ttl: bool = True,
    include_expired: bool = False,
    min_score: float | None = None,
) -> Call[ItemSearchResponse]:
    """Items under the prefix that pass ``filter``: by meaning with ``query`` (default
    space) or ``vector`` (a registered space), else newest first; ``mode`` is ``vector``,
    ``keyword`` or ``hybrid`` for a ``query`` (the server's default: vector);
    ``min_score`` (0 to 1, calibrated scale) keeps only items at least that relevant."""
    body = _given(
        {
            "namespace_prefix": list(namespace_prefix),
            "limit": limit,
            "offset": offset,
            "refresh_ttl": refresh_ttl,
            "include_expired": include_expired,
        },
        query=query,
        mode=mode,
        space=space,
        vector=None if vector is None else list(vector),
        filter=dict(filter) if filter else None,
        min_score=min_score,
    )
    return Call(
        "POST", "/items/search", lambda r: parse(ItemSearchResponse, r), Retry.READ, body=body
    )


def list_namespaces(
    *,
    prefix: Sequence[str] = (),
    suffix: Sequence[str] = (),
    max_depth: int | None = None,
    limit: int = 100,
    offset: int = 0,
    include_expired: bool = False,
) -> Call[NamespacesResponse]:
    """Namespaces matching the prefix and suffix (``*`` = any one label)."""
    params = _given(
        {
            "prefix": list(prefix),
            "suffix": list(suffix),
            "limit": limit,
            "offset": offset,
            "include_expired": _query_value(include_expired),
        },
        max_depth=max_depth,
    )
    return Call(
        "GET", "/namespaces", lambda r: parse(NamespacesResponse, r), Retry.READ, params=params
    )


def sweep_items() -> Call[int]:
    """Delete your expired items now; returns how many went."""
    return Call("POST", "/items/sweep", lambda r: parse(ItemsSwept, r).deleted, Retry.WRITE)


def create_space(name: str, dimension: int, metric: str = "cosine") -> Call[SpacePublic]:
    """Register an embedding space (its own Milvus collection) for your own vectors
    (idempotent for the same name, dimension and metric)."""
    body = {"name": name, "dimension": dimension, "metric": metric}
    return Call("POST", "/spaces", lambda r: parse(SpacePublic, r), Retry.WRITE, body=body)


def list_spaces() -> Call[SpacesResponse]:
    """The default space and your registered ones."""
    return Call("GET", "/spaces", lambda r: parse(SpacesResponse, r), Retry.READ)


def delete_space(name: str) -> Call[SpaceDeleted]:
    """Drop a space and the items that had vectors in it."""
    return Call("DELETE", f"/spaces/{name}", lambda r: parse(SpaceDeleted, r), Retry.WRITE)
