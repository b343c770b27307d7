"""Request and response models of the item, namespace and space endpoints.

Shared by the server and the client, like :mod:`somafractalmemory.schemas`; no FastAPI import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from somafractalmemory.schemas import JsonObject, RequestModel, SearchSignals, _check_vector

MAX_ITEM_LIMIT = 1000
MAX_TTL_MINUTES = 10_000_000.0

Label = str
Namespace = list[Label]


_Model = RequestModel


class ItemVectorIn(_Model):
    """One vector a client computed for a registered space, and the path it embeds."""

    path: str = Field(default="$", max_length=256)
    vector: list[float] = Field(min_length=1, max_length=4096)

    @field_validator("vector")
    @classmethod
    def _finite(cls, value: list[float]) -> list[float]:
        _check_vector(value)
        return value


class ItemPut(_Model):
    """An item to store at ``namespace`` + ``key`` (replacing the one there).

    ``index``: the JSON paths whose texts are embedded (``a.b``, ``x[0]``, ``x[*]`` one vector
    per element, ``$`` the whole value), ``false`` for no vector; omitted, the default space
    embeds ``value.text`` (else the whole value). ``space``: where the vectors live; a
    registered space takes the client's ``vectors`` instead of embedding.
    """

    namespace: Namespace = Field(min_length=1, max_length=10, examples=[["users", "alice"]])
    key: str = Field(min_length=1, max_length=512, examples=["preferences"])
    value: JsonObject = Field(examples=[{"text": "Alice prefers green tea"}])
    index: list[str] | Literal[False] | None = None
    ttl_minutes: float | None = Field(default=None, gt=0, le=MAX_TTL_MINUTES)
    space: str | None = Field(default=None, max_length=32)
    vectors: list[ItemVectorIn] | None = Field(default=None, max_length=256)


class ItemPublic(BaseModel):
    """A stored item."""

    namespace: Namespace
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    space: str | None = None
    ttl_minutes: float | None = None
    expires_at: datetime | None = None


class ItemSearchRequest(_Model):
    """Search items under ``namespace_prefix`` (whole labels; empty = all).

    With ``query`` (default space: the server embeds it) or ``vector`` (a registered space's
    dimension), results are ranked by their best vector, each item once, then filled with items
    that have no vector in the space (``score`` null); without either, newest first. ``filter``
    applies before the limit: ``{"field": value}`` (equality, nested objects compare field by
    field) or ``{"field": {"$eq|$ne|$gt|$gte|$lt|$lte": value}}``.
    """

    namespace_prefix: Namespace = Field(default_factory=list, max_length=10)
    query: str | None = Field(default=None, max_length=10_000)
    vector: list[float] | None = Field(default=None, max_length=4096)
    mode: Literal["vector", "keyword", "hybrid"] = Field(
        default="vector",
        description="`vector`: by the best vector (LangGraph's semantics, the default); "
        "`keyword`: by full-text rank of `query`; `hybrid`: both, fused as memory search "
        "does (needs `query`); keyword and hybrid scores are memory search's calibrated "
        "ones, 0 to 1.",
    )
    space: str | None = Field(default=None, max_length=32)
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=MAX_ITEM_LIMIT)
    offset: int = Field(default=0, ge=0, le=100_000)
    refresh_ttl: bool = True
    include_expired: bool = Field(
        default=False,
        description="Also return expired items the sweeper has not deleted yet "
        "(LangGraph's omit_expired=false); never refreshed.",
    )
    min_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Only items at least this relevant on memory search's calibrated scale "
        "(0 to 1; off by default; needs `query` or `vector`): in keyword and hybrid mode the "
        "score itself, in vector mode the calibrated cosine of a cosine space's score (the "
        "score itself in an ip or l2 space); items without a score never pass (README, "
        '"Scores and min_score").',
    )

    @field_validator("vector")
    @classmethod
    def _finite(cls, value: list[float] | None) -> list[float] | None:
        return _check_vector(value)


class ItemSearchResult(ItemPublic):
    """A found item; ``score`` is null when it was not ranked by a vector or a query;
    ``signals``: its rank and raw score in each signal that found it."""

    score: float | None = None
    signals: SearchSignals = Field(default_factory=SearchSignals)


class ItemSearchResponse(BaseModel):
    """Found items, best (or newest) first."""

    items: list[ItemSearchResult]


class NamespacesResponse(BaseModel):
    """Namespaces, in label order."""

    namespaces: list[Namespace]


class ItemDeleted(BaseModel):
    """An item deleted from every store."""

    deleted: bool


class ItemsSwept(BaseModel):
    """How many expired items a sweep deleted."""

    deleted: int


class SpaceCreate(_Model):
    """A space for vectors the tenant computes itself: its own Milvus collection."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    dimension: int = Field(ge=1, le=4096)
    metric: Literal["cosine", "ip", "l2"] = "cosine"


class SpacePublic(BaseModel):
    """A space; ``default`` is the local model's."""

    name: str
    dimension: int
    metric: Literal["cosine", "ip", "l2"]
    collection: str


class SpacesResponse(BaseModel):
    """The default space and the tenant's own."""

    spaces: list[SpacePublic]


class SpaceDeleted(BaseModel):
    """A dropped space and how many items went with it."""

    deleted: bool
    items_deleted: int
