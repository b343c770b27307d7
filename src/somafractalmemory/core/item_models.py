"""Domain records of namespaced items, embedding spaces and their vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Metric = Literal["cosine", "ip", "l2"]
DEFAULT_SPACE = "default"


@dataclass(frozen=True)
class Space:
    """Where an item's vectors live: the default space (the local model, collection
    ``<MILVUS_COLLECTION>_items``) or a tenant's registered space (its own collection)."""

    name: str
    dimension: int
    metric: Metric
    collection: str
    tenant_id: int | None = None  # None for the default space

    @property
    def is_default(self) -> bool:
        """Whether this is the service's own space, embedded by the local model."""
        return self.tenant_id is None


@dataclass(frozen=True)
class Item:
    """An item as stored in PostgreSQL."""

    id: int
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    space: str | None
    created_at: datetime
    updated_at: datetime
    ttl_minutes: float | None
    expires_at: datetime | None


@dataclass(frozen=True)
class ItemVector:
    """One vector of an item: the path it was taken from and the vector itself."""

    path: str
    vector: list[float]


@dataclass(frozen=True)
class ItemWrite:
    """An item to store, validated. ``vectors`` are final (embedded or the client's)."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    space: Space | None
    vectors: list[ItemVector]
    ttl_minutes: float | None


@dataclass(frozen=True)
class ItemSearch:
    """A search over items: scope, filter, paging, and optionally a query vector."""

    namespace_prefix: tuple[str, ...]
    filter: dict[str, Any] = field(default_factory=dict)
    limit: int = 10
    offset: int = 0
    space: Space | None = None
    vector: list[float] | None = None
    refresh_ttl: bool = True
    include_expired: bool = False


@dataclass(frozen=True)
class ItemHit:
    """A search result: the item and its score (None when it has no vector in the space)."""

    item: Item
    score: float | None


@dataclass(frozen=True)
class NamespaceQuery:
    """Which namespaces to list: prefix/suffix conditions (``*`` = any one label)."""

    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0
    include_expired: bool = False


@dataclass(frozen=True)
class ItemOutboxEntry:
    """An item whose Milvus side must be brought in line with PostgreSQL."""

    id: int
    tenant_id: int
    item_id: int
    collections: list[str]
