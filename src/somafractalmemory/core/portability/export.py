"""Export: a tenant as the lines of the format, read from the stores a page at a time."""

from __future__ import annotations

import json
import logging
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from somafractalmemory.core.items import ItemService
from somafractalmemory.core.portability.history import version_records
from somafractalmemory.core.portability.items import item_records
from somafractalmemory.core.service import MemoryService
from somafractalmemory.models import Memory, Scopes, Tenant

logger = logging.getLogger(__name__)

FORMAT = "somafractalmemory-export"
# 2: spaces and items after the links; 3: validity and successor on memory lines, then the
# history's versions. Older files still import.
VERSION = 3
PAGE_SIZE = 500


def dump_line(record: dict[str, Any]) -> str:
    """One line of the format: compact JSON and a newline (the same bytes for CLI and HTTP)."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def export_records(
    service: MemoryService,
    tenant: Tenant,
    with_vectors: bool = False,
    page_size: int = PAGE_SIZE,
    items: ItemService | None = None,
    scopes: Scopes | None = None,
) -> Iterator[dict[str, Any]]:
    """The header, then the tenant's memories by id, then its links by id, then (given the
    item service) its registered spaces and its items by id, then its history's versions.

    With ``scopes`` (any of user, agent, session given) only the records of those scopes:
    their memories, items and messages, the versions written with those scopes, the links
    whose two ends are both in them; the header says which (``scopes``). Spaces are all
    exported (they are the tenant's, not a user's).

    With ``with_vectors`` each memory carries its vector: the client's own when it gave one,
    else the one Milvus holds (a memory whose vector Milvus lacks is exported without one, so
    an import re-embeds it, just as reconciliation would)."""
    yield {
        "format": FORMAT,
        "version": VERSION,
        "embedding_model": service.embedder.model_name,
        "dimension": service.embedder.dimension,
        "with_vectors": with_vectors,
        **({"scopes": scopes.given()} if scopes is not None and scopes.given() else {}),
    }
    after = 0
    while page := service.postgres.memories_page(tenant.id, after, page_size, scopes):
        indexed: dict[int, list[float]] = {}
        if with_vectors:
            indexed = service.milvus.vectors(
                tenant.id, [memory.id for memory, own in page if own is None]
            )
        for memory, own in page:
            record = _memory_record(memory)
            if with_vectors:
                vector = own if own is not None else indexed.get(memory.id)
                if vector is None:
                    logger.warning("export: memory %s has no vector in Milvus", memory.id)
                else:
                    # Both stores keep float32; write its exact value whichever one it came
                    # from (PostgreSQL reads REAL back as a shorter decimal), so the same
                    # vector is always the same text.
                    record["vector"] = array("f", vector).tolist()
            yield record
        after = page[-1][0].id
    after = 0
    while links := service.postgres.links_page(tenant.id, after, page_size, scopes):
        for _link_id, link in links:
            yield {
                "kind": "link",
                "from_coord": link.from_coord,
                "to_coord": link.to_coord,
                "link_type": link.link_type,
                "strength": link.strength,
                "metadata": link.metadata,
            }
        after = links[-1][0]
    if items is not None:
        yield from item_records(items, tenant, page_size, scopes)
    yield from version_records(service.postgres, tenant, page_size, scopes)


def _memory_record(memory: Memory) -> dict[str, Any]:
    return {
        "kind": "memory",
        "coord": memory.coord,
        "payload": memory.payload,
        "memory_type": memory.memory_type.value,
        "importance": memory.importance,
        "created_at": _timestamp(memory.created_at),
        **{
            name: _timestamp(value)
            for name, value in (("valid_from", memory.valid_from), ("valid_to", memory.valid_to))
            if value is not None
        },
        **({"superseded_by": memory.superseded_by} if memory.superseded_by else {}),
        **Scopes(memory.user_id, memory.agent_id, memory.session_id).given(),
    }


def export_lines(
    service: MemoryService,
    tenant: Tenant,
    with_vectors: bool = False,
    items: ItemService | None = None,
    scopes: Scopes | None = None,
) -> Iterator[str]:
    """:func:`export_records` as lines of text."""
    for record in export_records(service, tenant, with_vectors, items=items, scopes=scopes):
        yield dump_line(record)
