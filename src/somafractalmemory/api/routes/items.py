"""Namespaced items, namespace listing and embedding spaces (the LangGraph store model)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Response, status

from somafractalmemory.api.deps import StackDep, TenantDep
from somafractalmemory.api.strict import api_router
from somafractalmemory.core.items import ItemService
from somafractalmemory.item_schemas import (
    MAX_ITEM_LIMIT,
    ItemDeleted,
    ItemPublic,
    ItemPut,
    ItemSearchRequest,
    ItemSearchResponse,
    ItemSearchResult,
    ItemsSwept,
    NamespacesResponse,
    SpaceCreate,
    SpaceDeleted,
    SpacePublic,
    SpacesResponse,
)
from somafractalmemory.models import Item, ItemSearch, ItemVector, NamespaceQuery, Space
from somafractalmemory.schemas import SearchSignals

router = api_router("items", (400, 401, 404, 409, 413, 422, 503))

LabelsQuery = Annotated[list[str], Query(max_length=10)]


async def get_item_service(stack: StackDep) -> ItemService:
    """The item service."""
    return stack.items


ItemsDep = Annotated[ItemService, Depends(get_item_service)]


def to_public(item: Item) -> ItemPublic:
    """The API view of a stored item (its fields by name; the row id stays inside)."""
    return ItemPublic.model_validate(item, from_attributes=True)


def _space_public(space: Space) -> SpacePublic:
    return SpacePublic.model_validate(space, from_attributes=True)


@router.put(
    "/items",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ItemPublic, "description": "Replaced the item"}},
)
def put_item(body: ItemPut, tenant: TenantDep, items: ItemsDep, response: Response) -> ItemPublic:
    """Store an item (201), or replace the one at the same namespace and key (200)."""
    vectors = [ItemVector(v.path, v.vector) for v in body.vectors] if body.vectors else None
    write = items.prepare(
        tenant,
        body.namespace,
        body.key,
        body.value,
        body.index,
        body.ttl_minutes,
        body.space,
        vectors,
    )
    item, replaced = items.put(tenant, write)
    if replaced:
        response.status_code = status.HTTP_200_OK
    return to_public(item)


@router.get("/items")
def get_item(
    tenant: TenantDep,
    items: ItemsDep,
    namespace: LabelsQuery,
    key: Annotated[str, Query(min_length=1, max_length=512)],
    refresh_ttl: bool = True,
    include_expired: bool = False,
) -> ItemPublic:
    """Read an item (``namespace`` repeated once per label); a read extends its TTL."""
    return to_public(items.get(tenant, namespace, key, refresh_ttl, include_expired))


@router.delete("/items")
def delete_item(
    tenant: TenantDep,
    items: ItemsDep,
    namespace: LabelsQuery,
    key: Annotated[str, Query(min_length=1, max_length=512)],
) -> ItemDeleted:
    """Delete an item from PostgreSQL and Milvus."""
    items.delete(tenant, namespace, key)
    return ItemDeleted(deleted=True)


@router.post("/items/search")
def search_items(body: ItemSearchRequest, tenant: TenantDep, items: ItemsDep) -> ItemSearchResponse:
    """Search items by namespace prefix, filter, and optionally meaning."""
    # the request's other fields are the search's, by name
    search = ItemSearch(
        namespace_prefix=tuple(body.namespace_prefix),
        filter=body.filter or {},
        **body.model_dump(exclude={"namespace_prefix", "filter"}),
    )
    hits = items.search(tenant, search)
    return ItemSearchResponse(
        items=[
            ItemSearchResult(
                **to_public(h.item).model_dump(),
                score=h.score,
                signals=SearchSignals.model_validate(h.signals, from_attributes=True),
            )
            for h in hits
        ]
    )


@router.post("/items/sweep")
def sweep_items(tenant: TenantDep, items: ItemsDep) -> ItemsSwept:
    """Delete the tenant's expired items now (the server also sweeps in the background)."""
    swept = 0
    while batch := items.sweep_expired(tenant=tenant):
        swept += batch
    return ItemsSwept(deleted=swept)


@router.get("/namespaces")
def list_namespaces(
    tenant: TenantDep,
    items: ItemsDep,
    prefix: LabelsQuery = [],  # noqa: B006 - FastAPI copies defaults per request
    suffix: LabelsQuery = [],  # noqa: B006
    max_depth: Annotated[int | None, Query(ge=1, le=10)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEM_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    include_expired: bool = False,
) -> NamespacesResponse:
    """List namespaces by prefix and suffix (``*`` matches any one label)."""
    found = items.list_namespaces(
        tenant,
        NamespaceQuery(tuple(prefix), tuple(suffix), max_depth, limit, offset, include_expired),
    )
    return NamespacesResponse(namespaces=[list(ns) for ns in found])


@router.post(
    "/spaces",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": SpacePublic, "description": "Already registered, same shape"}},
)
def create_space(
    body: SpaceCreate, tenant: TenantDep, items: ItemsDep, response: Response
) -> SpacePublic:
    """Register an embedding space and create its Milvus collection (201; 200 if it exists)."""
    space, created = items.create_space(tenant, body.name, body.dimension, body.metric)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _space_public(space)


@router.get("/spaces")
def list_spaces(tenant: TenantDep, items: ItemsDep) -> SpacesResponse:
    """The default space and the tenant's registered spaces."""
    return SpacesResponse(spaces=[_space_public(s) for s in items.spaces(tenant)])


@router.delete("/spaces/{name}")
def delete_space(
    name: Annotated[str, Path(max_length=32)], tenant: TenantDep, items: ItemsDep
) -> SpaceDeleted:
    """Drop a space's collection and the items that had vectors in it."""
    return SpaceDeleted(deleted=True, items_deleted=items.delete_space(tenant, name))
