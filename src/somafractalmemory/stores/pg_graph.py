"""Reads of the links between memories (the graph)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from somafractalmemory.models import (
    Link,
    Scopes,
)
from somafractalmemory.stores.pg_base import PostgresBase
from somafractalmemory.stores.tables import (
    links,
    records,
)


class GraphReads(PostgresBase):
    """Reads of the links table."""

    # -- links ------------------------------------------------------------------------------
    def edges_from(
        self, tenant_id: int, node_ids: Sequence[int], link_type: str | None, direction: str
    ) -> list[tuple[int, int, str, float]]:
        """Links touching ``node_ids`` as (node, neighbour, type, strength).

        ``direction`` is ``out`` (follow links forwards), ``in`` (backwards) or ``both``.
        """
        if not node_ids:
            return []
        ids = list(node_ids)
        parts = []
        # (the end we start from, the other end) for each way a link can be followed
        ways = {"out": (links.c.from_id, links.c.to_id), "in": (links.c.to_id, links.c.from_id)}
        for way, (node, other) in ways.items():
            if direction in (way, "both"):
                parts.append(
                    sa.select(
                        node.label("node"),
                        other.label("other"),
                        links.c.link_type,
                        links.c.strength,
                    ).where(links.c.tenant_id == tenant_id, node.in_(ids))
                )
        if link_type is not None:
            parts = [p.where(links.c.link_type == link_type) for p in parts]
        query = parts[0] if len(parts) == 1 else sa.union_all(*parts)
        with self.reading("edges_from") as conn:
            return [(r[0], r[1], r[2], float(r[3])) for r in conn.execute(query)]

    def links_page(
        self, tenant_id: int, after_id: int, limit: int, scopes: Scopes | None = None
    ) -> list[tuple[int, Link]]:
        """Up to ``limit`` of the tenant's links with id greater than ``after_id``, by id, as
        (link id, link between the ends' coordinates); with ``scopes``, only the links whose
        two ends are both of them (a scoped export holds no link to a record it leaves out)."""
        source = records.alias("source")
        target = records.alias("target")
        scoped = [
            end.c[name] == value
            for end in (source, target)
            for name, value in (scopes or Scopes()).given().items()
        ]
        query = (
            sa.select(
                links.c.id,
                source.c.key.label("from_coord"),
                target.c.key.label("to_coord"),
                links.c.link_type,
                links.c.strength,
                links.c.metadata,
            )
            .join(source, source.c.id == links.c.from_id)
            .join(target, target.c.id == links.c.to_id)
            .where(links.c.tenant_id == tenant_id, links.c.id > after_id, *scoped)
            .order_by(links.c.id)
            .limit(limit)
        )
        with self.reading("links_page") as conn:
            return [
                (
                    int(r.id),
                    Link(r.from_coord, r.to_coord, r.link_type, float(r.strength), r.metadata),
                )
                for r in conn.execute(query)
            ]

    def links_among(
        self, tenant_id: int, edges: Sequence[tuple[int, int, str]]
    ) -> dict[tuple[int, int, str], tuple[float, dict[str, Any]]]:
        """Strength and metadata of the tenant's links among ``edges`` (from id, to id,
        type); edges without a link are missing from the answer."""
        if not edges:
            return {}
        query = sa.select(
            links.c.from_id, links.c.to_id, links.c.link_type, links.c.strength, links.c.metadata
        ).where(
            links.c.tenant_id == tenant_id,
            sa.tuple_(links.c.from_id, links.c.to_id, links.c.link_type).in_(list(edges)),
        )
        with self.reading("links_among") as conn:
            return {
                (int(r.from_id), int(r.to_id), r.link_type): (float(r.strength), r.metadata)
                for r in conn.execute(query)
            }
