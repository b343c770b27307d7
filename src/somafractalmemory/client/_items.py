"""Item, namespace and space calls, and the client methods for them (mixed into
:class:`~somafractalmemory.client.SFMClient` and :class:`~somafractalmemory.client.AsyncSFMClient`).

``get_item`` answers None for an absent (or expired) item and ``delete_item`` False, rather
than raising :class:`NotFound`: "is it there?" is the question those calls ask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import httpx

from somafractalmemory.client._calls import Call, Retry, parse, raise_for_error
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

T = TypeVar("T")
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


def put_item(
    namespace: Sequence[str],
    key: str,
    value: Mapping[str, Any],
    index: IndexArg,
    ttl_minutes: float | None,
    space: str | None,
    vectors: Sequence[VectorArg] | None,
) -> Call[ItemPublic]:
    """PUT /items."""
    body: dict[str, Any] = {"namespace": list(namespace), "key": key, "value": dict(value)}
    if index is not None:
        body["index"] = index if index is False else list(index)
    if ttl_minutes is not None:
        body["ttl_minutes"] = ttl_minutes
    if space is not None:
        body["space"] = space
    if vectors is not None:
        body["vectors"] = [dict(v) for v in vectors]
    return Call("PUT", "/items", lambda r: parse(ItemPublic, r), Retry.WRITE, body=body)


def _item_params(namespace: Sequence[str], key: str, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"namespace": list(namespace), "key": key}
    params.update({k: str(v).lower() if isinstance(v, bool) else v for k, v in extra.items()})
    return params


def get_item(
    namespace: Sequence[str], key: str, refresh_ttl: bool, include_expired: bool
) -> Call[ItemPublic | None]:
    """GET /items."""
    params = _item_params(namespace, key, refresh_ttl=refresh_ttl, include_expired=include_expired)
    return Call("GET", "/items", _read_item_or_none, Retry.READ, params=params)


def delete_item(namespace: Sequence[str], key: str) -> Call[bool]:
    """DELETE /items."""
    return Call("DELETE", "/items", _read_deleted, Retry.WRITE, params=_item_params(namespace, key))


def search_items(
    namespace_prefix: Sequence[str],
    query: str | None,
    vector: Sequence[float] | None,
    space: str | None,
    filter: Mapping[str, Any] | None,
    limit: int,
    offset: int,
    refresh_ttl: bool,
    include_expired: bool,
) -> Call[ItemSearchResponse]:
    """POST /items/search."""
    body: dict[str, Any] = {
        "namespace_prefix": list(namespace_prefix),
        "limit": limit,
        "offset": offset,
        "refresh_ttl": refresh_ttl,
        "include_expired": include_expired,
    }
    for name, given in (("query", query), ("space", space)):
        if given is not None:
            body[name] = given
    if vector is not None:
        body["vector"] = list(vector)
    if filter:
        body["filter"] = dict(filter)
    return Call(
        "POST", "/items/search", lambda r: parse(ItemSearchResponse, r), Retry.READ, body=body
    )


def list_namespaces(
    prefix: Sequence[str],
    suffix: Sequence[str],
    max_depth: int | None,
    limit: int,
    offset: int,
    include_expired: bool,
) -> Call[NamespacesResponse]:
    """GET /namespaces."""
    params: dict[str, Any] = {
        "prefix": list(prefix),
        "suffix": list(suffix),
        "limit": limit,
        "offset": offset,
        "include_expired": str(include_expired).lower(),
    }
    if max_depth is not None:
        params["max_depth"] = max_depth
    return Call(
        "GET", "/namespaces", lambda r: parse(NamespacesResponse, r), Retry.READ, params=params
    )


def sweep_items() -> Call[ItemsSwept]:
    """POST /items/sweep."""
    return Call("POST", "/items/sweep", lambda r: parse(ItemsSwept, r), Retry.WRITE)


def create_space(name: str, dimension: int, metric: str) -> Call[SpacePublic]:
    """POST /spaces (idempotent for the same name, dimension and metric)."""
    body = {"name": name, "dimension": dimension, "metric": metric}
    return Call("POST", "/spaces", lambda r: parse(SpacePublic, r), Retry.WRITE, body=body)


def list_spaces() -> Call[SpacesResponse]:
    """GET /spaces."""
    return Call("GET", "/spaces", lambda r: parse(SpacesResponse, r), Retry.READ)


def delete_space(name: str) -> Call[SpaceDeleted]:
    """DELETE /spaces/{name}."""
    return Call("DELETE", f"/spaces/{name}", lambda r: parse(SpaceDeleted, r), Retry.WRITE)


class ItemMethods:
    """The item methods of the blocking client."""

    def _send(self, call: Call[T]) -> T:  # pragma: no cover - provided by SFMClient
        raise NotImplementedError

    def put_item(
        self,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        *,
        index: IndexArg = None,
        ttl_minutes: float | None = None,
        space: str | None = None,
        vectors: Sequence[VectorArg] | None = None,
    ) -> ItemPublic:
        """Store an item at ``namespace`` + ``key``, replacing the one there. ``index``: JSON
        paths to embed, or False; ``space`` + ``vectors``: your own vectors."""
        return self._send(put_item(namespace, key, value, index, ttl_minutes, space, vectors))

    def get_item(
        self,
        namespace: Sequence[str],
        key: str,
        *,
        refresh_ttl: bool = True,
        include_expired: bool = False,
    ) -> ItemPublic | None:
        """The item, or None when there is none (or it expired)."""
        return self._send(get_item(namespace, key, refresh_ttl, include_expired))

    def delete_item(self, namespace: Sequence[str], key: str) -> bool:
        """Delete the item; False when there was none."""
        return self._send(delete_item(namespace, key))

    def search_items(
        self,
        namespace_prefix: Sequence[str] = (),
        *,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        space: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool = True,
        include_expired: bool = False,
    ) -> ItemSearchResponse:
        """Items under the prefix that pass ``filter``: by meaning with ``query`` (default
        space) or ``vector`` (a registered space), else newest first."""
        return self._send(
            search_items(
                namespace_prefix,
                query,
                vector,
                space,
                filter,
                limit,
                offset,
                refresh_ttl,
                include_expired,
            )
        )

    def list_namespaces(
        self,
        *,
        prefix: Sequence[str] = (),
        suffix: Sequence[str] = (),
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
        include_expired: bool = False,
    ) -> NamespacesResponse:
        """Namespaces matching the prefix and suffix (``*`` = any one label)."""
        return self._send(
            list_namespaces(prefix, suffix, max_depth, limit, offset, include_expired)
        )

    def sweep_items(self) -> int:
        """Delete your expired items now; returns how many went."""
        return self._send(sweep_items()).deleted

    def create_space(self, name: str, dimension: int, metric: str = "cosine") -> SpacePublic:
        """Register an embedding space (its own Milvus collection) for your own vectors."""
        return self._send(create_space(name, dimension, metric))

    def list_spaces(self) -> SpacesResponse:
        """The default space and your registered ones."""
        return self._send(list_spaces())

    def delete_space(self, name: str) -> SpaceDeleted:
        """Drop a space and the items that had vectors in it."""
        return self._send(delete_space(name))


class AsyncItemMethods:
    """The item methods of the async client."""

    async def _send(self, call: Call[T]) -> T:  # pragma: no cover - provided by the client
        raise NotImplementedError

    async def put_item(
        self,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        *,
        index: IndexArg = None,
        ttl_minutes: float | None = None,
        space: str | None = None,
        vectors: Sequence[VectorArg] | None = None,
    ) -> ItemPublic:
        """See :meth:`ItemMethods.put_item`."""
        return await self._send(put_item(namespace, key, value, index, ttl_minutes, space, vectors))

    async def get_item(
        self,
        namespace: Sequence[str],
        key: str,
        *,
        refresh_ttl: bool = True,
        include_expired: bool = False,
    ) -> ItemPublic | None:
        """See :meth:`ItemMethods.get_item`."""
        return await self._send(get_item(namespace, key, refresh_ttl, include_expired))

    async def delete_item(self, namespace: Sequence[str], key: str) -> bool:
        """See :meth:`ItemMethods.delete_item`."""
        return await self._send(delete_item(namespace, key))

    async def search_items(
        self,
        namespace_prefix: Sequence[str] = (),
        *,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        space: str | None = None,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool = True,
        include_expired: bool = False,
    ) -> ItemSearchResponse:
        """See :meth:`ItemMethods.search_items`."""
        return await self._send(
            search_items(
                namespace_prefix,
                query,
                vector,
                space,
                filter,
                limit,
                offset,
                refresh_ttl,
                include_expired,
            )
        )

    async def list_namespaces(
        self,
        *,
        prefix: Sequence[str] = (),
        suffix: Sequence[str] = (),
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
        include_expired: bool = False,
    ) -> NamespacesResponse:
        """See :meth:`ItemMethods.list_namespaces`."""
        return await self._send(
            list_namespaces(prefix, suffix, max_depth, limit, offset, include_expired)
        )

    async def sweep_items(self) -> int:
        """See :meth:`ItemMethods.sweep_items`."""
        return (await self._send(sweep_items())).deleted

    async def create_space(self, name: str, dimension: int, metric: str = "cosine") -> SpacePublic:
        """See :meth:`ItemMethods.create_space`."""
        return await self._send(create_space(name, dimension, metric))

    async def list_spaces(self) -> SpacesResponse:
        """See :meth:`ItemMethods.list_spaces`."""
        return await self._send(list_spaces())

    async def delete_space(self, name: str) -> SpaceDeleted:
        """See :meth:`ItemMethods.delete_space`."""
        return await self._send(delete_space(name))
