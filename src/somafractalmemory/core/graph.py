"""Graph walks over a tenant's links: neighbours by breadth-first search and shortest paths.

Both stop at :data:`MAX_GRAPH_NODES` visited memories, so a dense graph bounds their cost.
"""

from __future__ import annotations

from somafractalmemory.core.coords import canonical_coord
from somafractalmemory.errors import NotFoundError
from somafractalmemory.models import Neighbor, Tenant
from somafractalmemory.stores.postgres import PostgresStore

MAX_GRAPH_NODES = 10_000


class Graph:
    """Reads of the links between a tenant's memories."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres

    def neighbors(
        self,
        tenant: Tenant,
        coord: str,
        k_hop: int,
        limit: int,
        link_type: str | None,
        direction: str = "out",
    ) -> list[Neighbor]:
        """Memories reachable from ``coord`` in up to ``k_hop`` links, nearest first."""
        start = self._memory_id(tenant, coord, "coord")
        found: dict[int, tuple[int, str, float]] = {}
        frontier = [start]
        for depth in range(1, k_hop + 1):
            next_frontier: list[int] = []
            for _node, other, ltype, strength in self.postgres.edges_from(
                tenant.id, frontier, link_type, direction
            ):
                if other == start or other in found:
                    continue
                found[other] = (depth, ltype, strength)
                next_frontier.append(other)
            frontier = next_frontier
            if not frontier or len(found) >= MAX_GRAPH_NODES:
                break
        ordered = sorted(found.items(), key=lambda kv: (kv[1][0], -kv[1][2], kv[0]))[:limit]
        coords = self.postgres.coords_for_ids(tenant.id, [node for node, _ in ordered])
        return [
            Neighbor(coords[node], ltype, strength, depth)
            for node, (depth, ltype, strength) in ordered
            if node in coords
        ]

    def path(
        self,
        tenant: Tenant,
        from_coord: str,
        to_coord: str,
        max_length: int,
        link_type: str | None,
        direction: str = "out",
    ) -> list[str]:
        """The coordinates of a shortest path of links, or :class:`NotFoundError`."""
        start = self._memory_id(tenant, from_coord, "from_coord")
        goal = self._memory_id(tenant, to_coord, "to_coord")
        parents: dict[int, int] = {start: start}
        frontier = [start]
        for _ in range(max_length):
            if goal in parents or not frontier:
                break
            next_frontier: list[int] = []
            for node, other, _ltype, _strength in self.postgres.edges_from(
                tenant.id, frontier, link_type, direction
            ):
                if other not in parents:
                    parents[other] = node
                    next_frontier.append(other)
            frontier = next_frontier
            if len(parents) >= MAX_GRAPH_NODES:
                break
        if goal not in parents:
            raise NotFoundError(f"no path of at most {max_length} links")
        chain = [goal]
        while chain[-1] != start:
            chain.append(parents[chain[-1]])
        chain.reverse()
        coords = self.postgres.coords_for_ids(tenant.id, chain)
        return [coords[node] for node in chain]

    def _memory_id(self, tenant: Tenant, coord: str, field: str) -> int:
        canonical = canonical_coord(coord, field)
        ids = self.postgres.memory_ids(tenant.id, [canonical])
        if canonical not in ids:
            raise NotFoundError(f"{field}: no memory at coord {canonical!r}")
        return ids[canonical]
