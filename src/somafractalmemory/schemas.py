"""Request and response models of the HTTP API, shared by the server and the client.

No FastAPI import here: the light client uses these same models.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from somafractalmemory.models import MemoryType
from somafractalmemory.scope_schemas import ScopeFields, ScopePublic

MAX_BATCH = 1000
MAX_TOP_K = 100
MAX_PAYLOAD_DEPTH = 32
MAX_FILTERS = 16
MAX_SUPERSEDES = 100
MAX_OBJECT_KEYS = 1000

FilterScalar = str | int | float | bool

_NUMBER = r"[-+]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][-+]?[0-9]{1,3})?"
COORD_PATTERN = rf"^[ \t]*{_NUMBER}[ \t]*(?:,[ \t]*{_NUMBER}[ \t]*){{1,15}}$"
COORD_DESCRIPTION = "2 to 16 comma-separated finite numbers; '1,2,3' and '1.0, 2, 3' are equal"
# What OpenAPI can say of a payload: a non-empty object whose `text`, if any, is not blank.
# (NUL characters and nesting deeper than 32 levels are refused too, with a 422.)
PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "properties": {"text": {"type": "string", "minLength": 1, "pattern": r"\S"}},
}


def Coord(**extra: Any) -> Any:
    """A coordinate field: pattern and length documented in the OpenAPI schema."""
    return Field(max_length=1024, pattern=COORD_PATTERN, description=COORD_DESCRIPTION, **extra)


def _check_json_value(value: Any, depth: int = 0) -> None:
    """Refuse what PostgreSQL's JSONB cannot store (NUL characters) and runaway nesting."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_PAYLOAD_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("strings must not contain NUL (\\u0000) characters")
    elif isinstance(value, dict):
        if len(value) > MAX_OBJECT_KEYS:
            raise ValueError(f"objects may have at most {MAX_OBJECT_KEYS} keys")
        for key, item in value.items():
            _check_json_value(key, depth + 1)
            _check_json_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json_value(item, depth + 1)


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    _check_json_value(value)
    return value


# A JSON object a record stores (a payload, a value, link metadata): what JSONB can hold.
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


def _check_vector(value: list[float] | None) -> list[float] | None:
    if value is not None:
        if not all(math.isfinite(x) for x in value):
            raise ValueError("must contain only finite numbers")
        if not any(value):
            raise ValueError("must not be all zeros (cosine similarity is undefined)")
    return value


class RequestModel(BaseModel):
    """A request body: unknown fields are refused, and so is a boolean where a number
    belongs (pydantic would read ``false`` as 0)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            if not _takes_boolean(cls.model_fields[info.field_name].annotation):
                raise ValueError("must not be a boolean")
        return value


def _takes_boolean(annotation: Any) -> bool:
    """Whether a field's type admits ``true``/``false``."""
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(option, bool) for option in get_args(annotation))
    return any(_takes_boolean(part) for part in get_args(annotation))


_Model = RequestModel


class MemoryCreate(_Model, ScopeFields):
    """A memory to store. The text embedded is ``payload.text``, else the payload as JSON."""

    coord: str = Coord(examples=["1,2,3"])
    payload: JsonObject = Field(
        examples=[{"text": "The user prefers green tea."}], json_schema_extra=PAYLOAD_SCHEMA
    )
    memory_type: MemoryType = MemoryType.EPISODIC
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    vector: list[float] | None = Field(
        default=None,
        max_length=4096,
        description="Your own embedding (the model's dimension) instead of the local model's",
    )
    valid_from: AwareDatetime | None = Field(
        default=None, description="When the fact starts to hold in the world (RFC 3339)"
    )
    valid_to: AwareDatetime | None = Field(
        default=None, description="When the fact stops holding in the world; after valid_from"
    )
    supersedes: list[str] = Field(
        default_factory=list,
        max_length=MAX_SUPERSEDES,
        description="Coordinates of memories this one replaces: they leave default search "
        "and listing, stay readable by coordinate (marked, with their successor)",
    )
    if_absent: bool = Field(
        default=False, description="Create only: 409 when a memory exists at the coordinate"
    )
    on_duplicate: Literal["store", "skip", "supersede"] = Field(
        default="store",
        description="When a current memory has the same text: store anyway, skip this write, "
        "or supersede the duplicates",
    )

    @field_validator("vector")
    @classmethod
    def _finite_vector(cls, value: list[float] | None) -> list[float] | None:
        return _check_vector(value)

    @field_validator("supersedes")
    @classmethod
    def _coords(cls, value: list[str]) -> list[str]:
        for coord in value:
            if len(coord) > 1024 or not re.match(COORD_PATTERN, coord):
                raise ValueError(f"{coord[:40]!r} is not a coordinate ({COORD_DESCRIPTION})")
        return value


class MemoryPublic(ScopePublic):
    """A stored memory."""

    coord: str
    payload: dict[str, Any]
    memory_type: MemoryType
    importance: float
    created_at: datetime
    updated_at: datetime
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    superseded_by: str | None = Field(
        default=None, description="The coordinate of the memory that superseded this one"
    )
    superseded_at: datetime | None = None


class SimilarMemory(BaseModel):
    """A near duplicate: a current memory whose vector is close to the written one."""

    coord: str
    score: float


class WriteOutcome(BaseModel):
    """What a write did: ``created``, ``replaced``, ``unchanged`` (the same value again:
    nothing written) or ``skipped`` (``on_duplicate: skip`` found an exact duplicate: nothing
    written); current memories with the same text, and near duplicates."""

    status: Literal["created", "replaced", "unchanged", "skipped"]
    duplicate_of: list[str] = Field(default_factory=list)
    similar: list[SimilarMemory] = Field(default_factory=list)


class MemoryWritten(MemoryPublic, WriteOutcome):
    """The stored memory (for ``skipped``, the duplicate that made the write skip) and what
    the write did."""


class BatchCreate(_Model):
    """Up to 1,000 memories stored as one unit."""

    memories: list[MemoryCreate] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItemResult(WriteOutcome):
    """What happened to one memory of a batch."""

    coord: str


class BatchResponse(BaseModel):
    """Per-item results of a batch, in request order."""

    results: list[BatchItemResult]


class MemoryList(BaseModel):
    """A page of memories; pass ``next_cursor`` back as ``cursor`` for the next page."""

    memories: list[MemoryPublic]
    next_cursor: str | None


class DeleteResponse(BaseModel):
    """A delete that reached every store; ``purged_versions`` (with ``purge=true`` only):
    how many versions of its history were erased."""

    deleted: bool
    purged_versions: int | None = Field(default=None, exclude_if=lambda value: value is None)


class SearchRequest(_Model, ScopeFields):
    """Recall by meaning, by keywords, or both (see the search modes in the README)."""

    query: str | None = Field(default=None, min_length=1, max_length=10_000)
    vector: list[float] | None = Field(
        default=None, max_length=4096, description="Your own query embedding (vector mode)"
    )
    mode: Literal["vector", "keyword", "hybrid"] = "hybrid"
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K)
    memory_type: MemoryType | None = None
    filters: dict[str, FilterScalar] | None = Field(
        default=None,
        description="Top-level payload fields that must equal these values (strings up to "
        "256 characters, numbers, booleans).",
    )
    created_after: datetime | None = None
    created_before: datetime | None = None
    expand_links: int = Field(default=0, ge=0, le=3)
    importance_boost: float = Field(default=0.0, ge=0.0, le=10.0)
    recency_half_life_hours: float | None = Field(default=None, gt=0.0, le=1_000_000)
    include_superseded: bool = Field(
        default=False, description="Also recall memories another one superseded (marked)"
    )
    valid_at: AwareDatetime | None = Field(
        default=None, description="Only facts valid at this time (valid_from/valid_to)"
    )
    min_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Only results whose relevance score (in [0, 1], before boosts) is at "
        "least this; off by default. 0.4 silenced 17 of 20 off-topic queries on LoCoMo "
        '(README, "Scores and min_score").',
    )

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("vector")
    @classmethod
    def _finite_vector(cls, value: list[float] | None) -> list[float] | None:
        return _check_vector(value)

    @field_validator("filters")
    @classmethod
    def _few_filters(cls, value: dict[str, FilterScalar] | None) -> dict[str, FilterScalar] | None:
        if value is not None and len(value) > MAX_FILTERS:
            raise ValueError(f"at most {MAX_FILTERS} filters")
        return value

    @field_validator("created_after", "created_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone, e.g. 2026-01-31T12:00:00Z")
        return value


class SearchSignals(BaseModel):
    """Which signals found a result: 1-based rank in each signal, link depth if expanded,
    and each signal's raw score (cosine similarity; PostgreSQL ``ts_rank_cd``)."""

    vector: int | None = None
    keyword: int | None = None
    link: int | None = None
    vector_score: float | None = Field(default=None, description="Raw cosine similarity")
    keyword_score: float | None = Field(default=None, description="Raw ts_rank_cd")


class SearchResult(BaseModel):
    """One recalled memory; ``score`` is in [0, 1], higher is more relevant, with one meaning
    in every mode (calibrated cosine, calibrated full-text rank, or their fusion: README)."""

    coord: str
    score: float
    payload: dict[str, Any]
    memory_type: MemoryType
    importance: float
    created_at: datetime
    signals: SearchSignals
    superseded_by: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    session_id: str | None = None


class SearchResponse(BaseModel):
    """Recalled memories, best first."""

    results: list[SearchResult]


class LinkCreate(_Model):
    """A directed link between two memories of the caller's tenant."""

    from_coord: str = Coord()
    to_coord: str = Coord()
    link_type: str = Field(default="related", min_length=1, max_length=64, pattern=r"^[^\x00]+$")
    strength: float = Field(default=1.0, ge=0.0, le=1.0)
    metadata: JsonObject = Field(default_factory=dict)


class LinkPublic(BaseModel):
    """A stored link."""

    from_coord: str
    to_coord: str
    link_type: str
    strength: float
    metadata: dict[str, Any]


class NeighborPublic(BaseModel):
    """A memory reached through links, ``depth`` hops from the start."""

    coord: str
    link_type: str
    strength: float
    depth: int


class NeighborsResponse(BaseModel):
    """Neighbours, nearest first."""

    neighbors: list[NeighborPublic]


class PathResponse(BaseModel):
    """A shortest path of links, as coordinates from start to end."""

    path: list[str]


class StatsResponse(BaseModel):
    """Counts for the caller's tenant, per kind of record; ``vectors`` and ``item_vectors``
    are Milvus's own counts (memories' collection; items' default and registered spaces)."""

    memories: int
    by_type: dict[str, int]
    links: int
    vectors: int
    items: int = 0
    item_vectors: int = 0


class HealthResponse(BaseModel):
    """Each store's state; ``errors`` says why a store is down."""

    status: Literal["ok", "degraded", "down"]
    postgres: Literal["up", "down"]
    milvus: Literal["up", "down"]
    redis: Literal["up", "down"]
    errors: dict[str, str] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    """Every error: the class of the error and what went wrong."""

    error: str
    detail: str
