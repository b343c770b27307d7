"""Links between memories: create, neighbours, shortest path."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, status

from somafractalmemory.api.deps import ServiceDep, TenantDep
from somafractalmemory.api.strict import COORD_LIMITS, api_router
from somafractalmemory.models import Link
from somafractalmemory.schemas import (
    LinkCreate,
    LinkPublic,
    NeighborPublic,
    NeighborsResponse,
    PathResponse,
)

router = api_router("graph", (400, 401, 404, 422, 503), prefix="/graph")
Direction = Literal["out", "in", "both"]


@router.post("/link", status_code=status.HTTP_201_CREATED)
def create_link(body: LinkCreate, tenant: TenantDep, service: ServiceDep) -> LinkPublic:
    """Link two memories (both must exist); linking again updates strength and metadata."""
    link = service.link(
        tenant, Link(body.from_coord, body.to_coord, body.link_type, body.strength, body.metadata)
    )
    return LinkPublic.model_validate(link, from_attributes=True)


@router.get("/neighbors")
def neighbors(
    tenant: TenantDep,
    service: ServiceDep,
    coord: Annotated[str, Query(**COORD_LIMITS)],
    k_hop: Annotated[int, Query(ge=1, le=5)] = 1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    link_type: Annotated[str | None, Query(max_length=64)] = None,
    direction: Direction = "out",
) -> NeighborsResponse:
    """Memories reachable in up to ``k_hop`` links (``direction``: out, in or both)."""
    found = service.graph.neighbors(tenant, coord, k_hop, limit, link_type, direction)
    return NeighborsResponse(
        neighbors=[
            NeighborPublic(coord=n.coord, link_type=n.link_type, strength=n.strength, depth=n.depth)
            for n in found
        ]
    )


@router.get("/path")
def path(
    tenant: TenantDep,
    service: ServiceDep,
    from_coord: Annotated[str, Query(**COORD_LIMITS)],
    to_coord: Annotated[str, Query(**COORD_LIMITS)],
    max_length: Annotated[int, Query(ge=1, le=10)] = 5,
    link_type: Annotated[str | None, Query(max_length=64)] = None,
    direction: Direction = "out",
) -> PathResponse:
    """A shortest path of links between two memories; 404 when there is none."""
    return PathResponse(
        path=service.graph.path(tenant, from_coord, to_coord, max_length, link_type, direction)
    )
