"""Domain records passed between the services and the store adapters (never driver rows).

They sit below both ``core/`` and ``stores/``: this module imports no layer of the package.
Memories (a coordinate key) and namespaced items (a namespace and a string key) are both
here; see ``docs/technical-manual`` for how they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class MemoryType(StrEnum):
    """What kind of memory: a lived event or a general fact."""

    EPISODIC = "episodic"
    SEMANTIC = "semantic"


@dataclass(frozen=True)
class Tenant:
    """The owner of memories; every API key belongs to exactly one."""

    id: int
    name: str
    # The API key a request authenticated with (kept in history as who made a change).
    key_id: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as listed: never the key itself, only its id and prefix."""

    id: int
    tenant: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewMemory:
    """A memory to write, already validated and canonical."""

    coord: str
    payload: dict[str, Any]
    memory_type: MemoryType
    importance: float
    text: str
    vector: list[float] | None = None
    # Only import sets this: a new memory gets it instead of now, and a replace takes it too.
    created_at: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Memory:
    """A memory as stored in PostgreSQL. ``valid_from``/``valid_to`` say when the fact holds
    in the world; ``superseded_by`` names the coordinate of the memory that replaced it."""

    id: int
    coord: str
    payload: dict[str, Any]
    memory_type: MemoryType
    importance: float
    text: str
    created_at: datetime
    updated_at: datetime
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    superseded_by: str | None = None
    superseded_at: datetime | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


SCOPE_FIELDS = ("user_id", "agent_id", "session_id")


@dataclass(frozen=True)
class Scopes:
    """Whose a record is: the end user, the agent and the session (each optional). As a
    filter, a field that is None matches every record."""

    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None

    def given(self) -> dict[str, str]:
        """The fields that are set, by name."""
        return {f: v for f in SCOPE_FIELDS if (v := getattr(self, f)) is not None}


WriteStatus = Literal["created", "replaced", "unchanged", "skipped"]


@dataclass(frozen=True)
class WriteResult:
    """What a write did to one record: ``created``, ``replaced``, ``unchanged`` (the same
    value again: nothing written) or ``skipped`` (``on_duplicate: skip`` found an exact
    duplicate); the other current records with the same text, and near duplicates."""

    memory: Memory
    status: WriteStatus
    duplicate_of: tuple[str, ...] = ()
    similar: tuple[tuple[str, float], ...] = ()

    @property
    def replaced(self) -> bool:
        return self.status == "replaced"


ChangeKind = Literal["created", "replaced", "superseded", "deleted"]


@dataclass(frozen=True)
class RecordVersion:
    """One version of a record, as its history keeps it (newest first when listed)."""

    id: int
    namespace: tuple[str, ...]
    key: str
    change: ChangeKind
    payload: dict[str, Any]
    memory_type: MemoryType | None
    importance: float | None
    text: str
    valid_from: datetime | None
    valid_to: datetime | None
    superseded_by: str | None
    api_key_id: int | None
    recorded_at: datetime


@dataclass(frozen=True)
class Webhook:
    """A tenant's endpoint and how far its changes have been delivered: ``cursor`` is the
    (txid, history id) position in the change feed up to which it answered 2xx."""

    id: int
    tenant_id: int
    url: str
    secret: str = field(repr=False)
    created_at: datetime
    cursor: tuple[int, int]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_delivered_at: datetime | None


@dataclass(frozen=True)
class VectorRecord:
    """One entity of the Milvus collection."""

    id: int
    tenant_id: int
    memory_type: str
    created_at_ms: int
    attrs: dict[str, Any]
    vector: list[float]


@dataclass(frozen=True)
class VectorHit:
    """A Milvus search hit; ``score`` is cosine similarity, higher is closer."""

    id: int
    score: float


@dataclass(frozen=True)
class SearchScope:
    """What a search may return, applied inside each store (never after truncation)."""

    memory_type: MemoryType | None = None
    filters: dict[str, str | int | float | bool] = field(default_factory=dict)
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_superseded: bool = False
    valid_at: datetime | None = None
    scopes: Scopes = field(default_factory=Scopes)


@dataclass(frozen=True)
class SearchQuery:
    """A recall request. ``mode`` picks the signals: vector (Milvus), keyword (PostgreSQL
    full-text search) or hybrid (both, fused on one calibrated scale: core/fusion.py).
    ``min_score``: only memories whose relevance score (in [0, 1]) is at least this."""

    text: str | None
    vector: list[float] | None
    mode: str
    top_k: int
    scope: SearchScope
    expand_links: int = 0
    importance_boost: float = 0.0
    recency_half_life_hours: float | None = None
    min_score: float | None = None


@dataclass(frozen=True)
class Signals:
    """Which signals found a result: its 1-based rank in each, link depth, and the raw score
    of each signal that found it (cosine similarity, PostgreSQL ``ts_rank_cd``)."""

    vector: int | None = None
    keyword: int | None = None
    link: int | None = None
    vector_score: float | None = None
    keyword_score: float | None = None


@dataclass(frozen=True)
class SearchHit:
    """A search result: the hydrated memory, its score and the signals that found it."""

    memory: Memory
    score: float
    signals: Signals = field(default_factory=Signals)


@dataclass(frozen=True)
class Link:
    """A directed, typed link between two memories of one tenant."""

    from_coord: str
    to_coord: str
    link_type: str
    strength: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Neighbor:
    """A memory reached from another through links, ``depth`` hops away."""

    coord: str
    link_type: str
    strength: float
    depth: int


@dataclass(frozen=True)
class TenantStats:
    """Counts for one tenant; ``vectors`` comes from Milvus itself."""

    memories: int
    by_type: dict[str, int]
    links: int
    vectors: int


@dataclass(frozen=True)
class OutboxEntry:
    """A memory whose Milvus side must be brought in line with PostgreSQL."""

    id: int
    tenant_id: int
    coord: str
    memory_id: int


@dataclass(frozen=True)
class DriftReport:
    """What reconciliation found for one tenant in one collection: vector ids PostgreSQL
    holds that Milvus has not exactly once (*missing*), and Milvus entities no row has
    (*orphans*). For memories a vector id is the memory id; for items it is the
    ``item_vectors`` id, and ``owners`` maps each id of either list to its item."""

    tenant_id: int
    tenant: str
    missing: list[int]
    orphans: list[int]
    collection: str = ""
    owners: dict[int, int] = field(default_factory=dict)


# -- namespaced items, embedding spaces and their vectors ----------------------------------
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
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class ItemVector:
    """One vector of an item: the path it was taken from and the vector itself."""

    path: str
    vector: list[float]


@dataclass(frozen=True)
class ItemWrite:
    """An item to store, validated. ``vectors`` are final (embedded or the client's);
    ``text`` is what keyword search matches (the texts its index paths select)."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    space: Space | None
    vectors: list[ItemVector]
    ttl_minutes: float | None
    text: str = ""


@dataclass(frozen=True)
class ItemSearch:
    """A search over items: scope, filter, paging, and optionally meaning: a ``query`` text
    (embedded by the local model, default space only) or the caller's ``vector`` in a
    ``space`` (the default space when none is named)."""

    namespace_prefix: tuple[str, ...]
    filter: dict[str, Any] = field(default_factory=dict)
    limit: int = 10
    offset: int = 0
    space: str | None = None
    query: str | None = None
    vector: list[float] | None = None
    mode: str = "vector"
    refresh_ttl: bool = True
    include_expired: bool = False
    scopes: Scopes = field(default_factory=Scopes)
    min_score: float | None = None  # calibrated scale (core/item_search.py); needs a query


@dataclass(frozen=True)
class ItemHit:
    """A search result: the item, its score (None: no vector in the space), its signals."""

    item: Item
    score: float | None
    signals: Signals = field(default_factory=Signals)


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


@dataclass(frozen=True)
class DatabaseIdentity:
    """Who an SFM database is: its uuid (migration 0006, kept by pg_dump and restore) and,
    for people reading an error, where it is (``POSTGRES_DSN`` without credentials)."""

    uuid: str
    database: str
