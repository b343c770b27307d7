"""Memories: store, batch, get, list, delete and search."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Response, status

from somafractalmemory.api.deps import CallerDep, ScopeQuery
from somafractalmemory.api.responses import json_response
from somafractalmemory.api.routes.history import version_public
from somafractalmemory.api.strict import COORD_LIMITS, api_router
from somafractalmemory.core.coords import canonical_coord
from somafractalmemory.core.memory_input import MemoryInput
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import (
    Memory,
    MemoryType,
    Scopes,
    SearchQuery,
    SearchScope,
    WriteResult,
)
from somafractalmemory.observability.timing import collect_timings, server_timing_header
from somafractalmemory.schemas import (
    BatchCreate,
    BatchItemResult,
    BatchResponse,
    DeleteResponse,
    ErrorResponse,
    MemoryCreate,
    MemoryList,
    MemoryPublic,
    MemoryWritten,
    SearchRequest,
    SearchResponse,
    SearchResult,
    SearchSignals,
    SimilarMemory,
)
from somafractalmemory.scope_schemas import ScopeDeleted

router = api_router("memories", (400, 401, 404, 413, 422, 503), prefix="/memories")


def to_public(memory: Memory) -> MemoryPublic:
    """The API view of a stored memory (its fields by name; the row id and text stay inside)."""
    return MemoryPublic.model_validate(memory, from_attributes=True)


def _outcome(result: WriteResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "duplicate_of": list(result.duplicate_of),
        "similar": [SimilarMemory(coord=c, score=s) for c, s in result.similar],
    }


def _input(body: MemoryCreate) -> MemoryInput:
    return MemoryInput(
        body.coord,
        body.payload,
        body.memory_type,
        body.importance,
        body.vector,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        supersedes=tuple(body.supersedes),
        if_absent=body.if_absent,
        on_duplicate=body.on_duplicate,
        user_id=body.user_id,
        agent_id=body.agent_id,
        session_id=body.session_id,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MemoryWritten,
    responses={
        200: {
            "model": MemoryWritten,
            "description": "Replaced the memory at coord, or nothing to write (unchanged, skipped)",
        },
        409: {"model": ErrorResponse, "description": "if_absent and a memory is there"},
    },
)
def store_memory(body: MemoryCreate, caller: CallerDep) -> Response:
    """Store a memory (201), or replace the one at the same coordinate (200). The answer
    says what happened (``status``) and names exact and near duplicates."""
    tenant = caller.tenant()
    with collect_timings() as timings:
        result = caller.stack.memories.store(tenant, _input(body))
    written = MemoryWritten(**to_public(result.memory).model_dump(), **_outcome(result))
    return json_response(
        written,
        status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK,
        {"Server-Timing": server_timing_header(timings)},
    )


@router.post(
    "/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchResponse,
    responses={
        409: {
            "model": ErrorResponse,
            "description": "A memory with if_absent finds one there (the batch writes nothing)",
        }
    },
)
def store_batch(body: BatchCreate, caller: CallerDep) -> Response:
    """Store up to 1,000 memories as one unit: all of them, or none."""
    tenant = caller.tenant()
    with collect_timings() as timings:
        results = caller.stack.memories.store_batch(tenant, [_input(m) for m in body.memories])
    batch = BatchResponse(
        results=[
            BatchItemResult(coord=w.coord, **_outcome(r))
            for w, r in zip(body.memories, results, strict=True)
        ]
    )
    return json_response(
        batch, status.HTTP_201_CREATED, {"Server-Timing": server_timing_header(timings)}
    )


@router.post("/search", response_model=SearchResponse)
def search_memories(body: SearchRequest, caller: CallerDep) -> Response:
    """Recall memories by meaning, keywords or both, best first."""
    tenant = caller.tenant()
    query = SearchQuery(
        text=body.query,
        vector=body.vector,
        mode=body.mode,
        top_k=body.top_k,
        scope=SearchScope(
            memory_type=body.memory_type,
            filters=body.filters or {},
            created_after=body.created_after,
            created_before=body.created_before,
            include_superseded=body.include_superseded,
            valid_at=body.valid_at,
            scopes=body.scopes(),
        ),
        expand_links=body.expand_links,
        importance_boost=body.importance_boost,
        recency_half_life_hours=body.recency_half_life_hours,
        min_score=body.min_score,
    )
    with collect_timings() as timings:
        hits = caller.stack.memories.search(tenant, query)
    found = SearchResponse(
        results=[
            SearchResult(
                coord=h.memory.coord,
                score=h.score,
                payload=h.memory.payload,
                memory_type=h.memory.memory_type,
                importance=h.memory.importance,
                created_at=h.memory.created_at,
                signals=SearchSignals(
                    vector=h.signals.vector,
                    keyword=h.signals.keyword,
                    link=h.signals.link,
                    vector_score=h.signals.vector_score,
                    keyword_score=h.signals.keyword_score,
                ),
                superseded_by=h.memory.superseded_by,
                user_id=h.memory.user_id,
                agent_id=h.memory.agent_id,
                session_id=h.memory.session_id,
            )
            for h in hits
        ]
    )
    return json_response(found, headers={"Server-Timing": server_timing_header(timings)})


@router.get("", response_model=MemoryList)
def list_memories(
    caller: CallerDep,
    memory_type: MemoryType | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")] = None,
    include_superseded: bool = False,
    user_id: ScopeQuery = None,
    agent_id: ScopeQuery = None,
    session_id: ScopeQuery = None,
) -> Response:
    """List the tenant's memories in storage order, a page at a time (current ones, unless
    ``include_superseded``; of the scopes given)."""
    tenant = caller.tenant()
    scopes = Scopes(user_id, agent_id, session_id)
    page, next_cursor = caller.stack.memories.list_page(
        tenant, memory_type, limit, cursor, include_superseded, scopes
    )
    return json_response(MemoryList(memories=[to_public(m) for m in page], next_cursor=next_cursor))


@router.delete("", response_model=ScopeDeleted)
def delete_memories_of_scope(
    caller: CallerDep,
    user_id: ScopeQuery = None,
    agent_id: ScopeQuery = None,
    session_id: ScopeQuery = None,
    purge: Annotated[
        bool, Query(description="Also erase every version of them from the history")
    ] = False,
) -> Response:
    """Delete every memory of the given scopes (at least one) from every store."""
    scopes = Scopes(user_id, agent_id, session_id)
    if not scopes.given():
        raise InvalidInputError("give user_id, agent_id or session_id (or several)", "user_id")
    deleted, purged = caller.stack.memories.delete_scope(caller.tenant(), scopes, purge)
    return json_response(ScopeDeleted(deleted=deleted, purged_versions=purged if purge else None))


@router.get("/{coord}", response_model=MemoryPublic)
def get_memory(
    coord: Annotated[str, Path(**COORD_LIMITS)],
    caller: CallerDep,
    as_of: Annotated[
        datetime | None,
        Query(description="The version current at this time (RFC 3339), from the history"),
    ] = None,
) -> Response:
    """Read the memory at a coordinate (a superseded one too, marked with its successor),
    or the version it had at ``as_of`` (404 when there was none then)."""
    tenant = caller.tenant()
    if as_of is None:
        return json_response(to_public(caller.stack.memories.get(tenant, coord)))
    version, created_at = caller.stack.history.version_at(tenant, "", canonical_coord(coord), as_of)
    return json_response(version_public(version, created_at))


@router.delete("/{coord}", response_model=DeleteResponse)
def delete_memory(
    coord: Annotated[str, Path(**COORD_LIMITS)],
    caller: CallerDep,
    purge: Annotated[
        bool, Query(description="Also erase every version of it from the history")
    ] = False,
) -> Response:
    """Delete the memory at a coordinate from every store; its history keeps the deleted
    version unless ``purge``."""
    purged = caller.stack.memories.delete(caller.tenant(), coord, purge)
    answer = DeleteResponse(deleted=True, purged_versions=purged if purge else None)
    return json_response(answer)
