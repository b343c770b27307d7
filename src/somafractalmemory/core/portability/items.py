"""The item lines of the export format (version 2): a tenant's registered embedding spaces,
then its items, each with the paths its vectors embed and, for a registered space, the
client's vectors (the only copy of them). A default-space item is embedded again on import
from the same paths, by the importing service's model.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict

from somafractalmemory.core.items import ItemService
from somafractalmemory.core.messages import MessageService, NewMessage
from somafractalmemory.errors import InvalidInputError, NotFoundError
from somafractalmemory.item_schemas import ItemPut, SpaceCreate
from somafractalmemory.models import DEFAULT_SPACE, Item, ItemVector, Scopes, Tenant
from somafractalmemory.scope_schemas import ScopeFields
from somafractalmemory.stores.messages_postgres import CONVERSATIONS


class ItemLine(ItemPut, ScopeFields):
    """An item line: the fields of ``PUT /items`` plus ``kind``, ``created_at`` (kept in the
    file for people; an import stores the item as new or replaced) and the record's scopes. A
    conversation message (namespace ``["conversations", id]``) is imported as a message: with
    its time, scopes and chunked vectors."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["item"]
    created_at: datetime | None = None


class SpaceLine(SpaceCreate):
    """A space line: the fields of ``POST /spaces`` plus ``kind``."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["space"]


def item_records(
    items: ItemService, tenant: Tenant, page_size: int, scopes: Scopes | None = None
) -> Iterator[dict[str, Any]]:
    """The tenant's registered spaces (every one: they hold no one's data, and a scoped
    item may need its space), then its items by id, a page at a time; of ``scopes`` only
    when given."""
    for space in items.repo.spaces(tenant.id):
        yield {
            "kind": "space",
            "name": space.name,
            "dimension": space.dimension,
            "metric": space.metric,
        }
    after = 0
    while page := items.repo.items_page(tenant.id, after, page_size, scopes):
        vectors = items.repo.vectors_of([item.id for item in page])
        for item in page:
            yield item_record(item, [v for _id, v in vectors.get(item.id, [])])
        after = page[-1].id


def item_record(item: Item, vectors: list[ItemVector]) -> dict[str, Any]:
    """One item line."""
    paths = list(dict.fromkeys(v.path for v in vectors))
    record: dict[str, Any] = {
        "kind": "item",
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "index": paths or False,
        "space": item.space if item.space != DEFAULT_SPACE else None,
        "ttl_minutes": item.ttl_minutes,
        "created_at": item.created_at.astimezone(UTC).isoformat(),
        **Scopes(item.user_id, item.agent_id, item.session_id).given(),
    }
    if item.space not in (None, DEFAULT_SPACE):
        record["vectors"] = [
            {"path": v.path, "vector": array("f", v.vector).tolist()} for v in vectors
        ]
    return record


def store_item(items: ItemService, tenant: Tenant, line: ItemLine) -> str:
    """Store an item line through the normal write path; ``created``, ``replaced`` or
    ``unchanged`` (the same value, space, paths, TTL and client vectors: nothing written)."""
    if len(line.namespace) == 2 and line.namespace[0] == CONVERSATIONS:
        return _store_message(items, tenant, line)
    try:
        current = items.get(tenant, line.namespace, line.key, False, include_expired=True)
    except NotFoundError:
        current = None
    given = [ItemVector(v.path, v.vector) for v in line.vectors or []]
    if current is not None and _same(items, current, line, given):
        return "unchanged"
    write = items.prepare(
        tenant,
        line.namespace,
        line.key,
        line.value,
        line.index,
        line.ttl_minutes,
        line.space,
        given or None,
    )
    _item, replaced = items.put(tenant, write)
    return "replaced" if replaced else "created"


def _same(items: ItemService, current: Item, line: ItemLine, given: list[ItemVector]) -> bool:
    stored = [v for _id, v in items.repo.vectors_of([current.id]).get(current.id, [])]
    paths = list(dict.fromkeys(v.path for v in stored)) or False
    space = current.space if current.space != DEFAULT_SPACE else None
    return (
        json.dumps(current.value, sort_keys=True) == json.dumps(line.value, sort_keys=True)
        and current.ttl_minutes == line.ttl_minutes
        and paths == (line.index if line.index is not None else paths)
        and space == (line.space if line.space != DEFAULT_SPACE else None)
        and (
            not given
            or [(v.path, array("f", v.vector)) for v in stored]
            == [(v.path, array("f", v.vector)) for v in given]
        )
    )


def _store_message(items: ItemService, tenant: Tenant, line: ItemLine) -> str:
    """A message line, posted as the messages API does (``created`` or ``unchanged``; other
    content under a stored id is a conflict)."""
    value = line.value
    role, content, name = value.get("role"), value.get("content"), value.get("name")
    if not isinstance(role, str) or not isinstance(content, str):
        raise InvalidInputError("a message's value needs a string role and content", "value")
    message = NewMessage(
        role, content, line.key, name if isinstance(name, str) else None, line.created_at
    )
    answers = MessageService(items).post(
        tenant, line.namespace[1], line.scopes(), [message], imported=True
    )
    return answers[0][1]
