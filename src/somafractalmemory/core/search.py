"""Recall: vector hits from Milvus, keyword hits from PostgreSQL, fused on one calibrated scale.

Scores are in [0, 1], higher is more relevant, with one meaning in every mode
(:mod:`somafractalmemory.core.fusion`):
- ``vector`` mode: the calibrated cosine of the query and memory vectors;
- ``keyword`` mode: the calibrated ``ts_rank_cd`` of the memory's text for the query;
- ``hybrid`` mode: the weighted sum of the two calibrated scores (a memory one signal did not
  return gets that signal's floor), an exact stored text keeping its vector score.
Each result's ``signals`` carries its rank and raw score in each signal (cosine, ts_rank_cd).

``min_score`` drops the memories whose relevance score (before any boost) is below it, before
``top_k`` and link expansion. Then, when asked: an importance boost multiplies the score by
``(1 + importance_boost * importance) / (1 + importance_boost)`` (so it stays in [0, 1]); a
recency boost multiplies it by ``0.5 + 0.5 * 2^(-age / half_life)``; and ``expand_links = n``
adds memories up to n links from a result (either direction), scored ``parent score * link
strength / (1 + depth)``. Every filter is applied inside each store's query, before its limit,
never to a truncated list. No LLM is involved.
"""

from __future__ import annotations

import contextvars
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from somafractalmemory.core import fusion
from somafractalmemory.core.embedding import Embedder
from somafractalmemory.core.query_vectors import QueryEmbedder
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import Memory, SearchHit, SearchQuery, SearchScope, Signals, Tenant
from somafractalmemory.observability.timing import stage
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.milvus_filters import FILTER_KEY, MAX_ATTR_STRING
from somafractalmemory.stores.postgres import PostgresStore
from somafractalmemory.stores.redis import MemoryCache

MAX_CANDIDATES = 200
MODES = ("vector", "keyword", "hybrid")
# Threads that run a hybrid search's keyword query beside its vector search (one each).
SIGNALS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sfm-keyword")


def candidates_for(top_k: int) -> int:
    """How many hits each signal contributes before fusion."""
    return min(max(top_k * 3, 30), MAX_CANDIDATES)


@dataclass
class _Candidate:
    score: float
    vector_rank: int | None = None
    keyword_rank: int | None = None
    link_depth: int | None = None
    cosine: float | None = None
    ts_rank: float | None = None


class Searcher:
    """Runs a :class:`SearchQuery` against the stores."""

    def __init__(
        self,
        postgres: PostgresStore,
        milvus: MilvusStore,
        embedder: Embedder,
        cache: MemoryCache | None = None,
    ) -> None:
        self.postgres = postgres
        self.milvus = milvus
        self.embedder = embedder
        self.cache = cache
        self.queries = QueryEmbedder(embedder, cache)

    def query_vector(self, text: str) -> list[float]:
        """The query's embedding, through the query-vector cache."""
        return self.queries.vector(text)

    def search(self, tenant: Tenant, query: SearchQuery) -> list[SearchHit]:
        """The tenant's best memories for ``query``, best first."""
        if query.mode not in MODES:
            raise InvalidInputError(f"must be one of {', '.join(MODES)}", "mode")
        if query.mode != "vector" and not query.text:
            raise InvalidInputError("is required for keyword and hybrid search", "query")
        if query.text is None and query.vector is None:
            raise InvalidInputError("give a query or a vector", "query")
        if query.vector is not None and len(query.vector) != self.embedder.dimension:
            raise InvalidInputError(
                f"must have {self.embedder.dimension} numbers, got {len(query.vector)}", "vector"
            )
        check_filters(query.scope.filters)
        limit = candidates_for(query.top_k)
        # Hybrid: the keyword query runs in PostgreSQL while the query is embedded and Milvus
        # searched, so a search costs the slower of the two signals, not their sum.
        keyword: Future[list[tuple[int, float]]] | None = None
        if query.mode == "hybrid":
            assert query.text is not None
            keyword = SIGNALS.submit(
                contextvars.copy_context().run,  # the request's stage timings and trace
                self.postgres.keyword_search,
                tenant.id,
                query.text,
                limit,
                query.scope,
            )
        found: dict[int, _Candidate] = {}
        vector_scores: list[float] = []
        keyword_scores: list[float] = []
        if query.mode in ("vector", "hybrid"):
            vector = query.vector
            if vector is None:
                assert query.text is not None
                vector = self.query_vector(query.text)
            hits = self.milvus.search(tenant.id, vector, limit, self._vector_scope(tenant, query))
            for rank, hit in enumerate(hits, start=1):
                score = fusion.vector_score(hit.score)
                vector_scores.append(score)
                found[hit.id] = _Candidate(score=score, vector_rank=rank, cosine=hit.score)
        if query.mode in ("keyword", "hybrid"):
            assert query.text is not None
            matches = (
                keyword.result()
                if keyword is not None
                else self.postgres.keyword_search(tenant.id, query.text, limit, query.scope)
            )
            for rank, (memory_id, ts_rank) in enumerate(matches, start=1):
                score = fusion.keyword_score(ts_rank)
                keyword_scores.append(score)
                existing = found.get(memory_id)
                if existing is None:
                    found[memory_id] = _Candidate(score=score, keyword_rank=rank, ts_rank=ts_rank)
                else:
                    existing.keyword_rank = rank
                    existing.ts_rank = ts_rank
        if query.mode == "hybrid":
            with stage("fuse"):
                _fuse(
                    found,
                    fusion.floor_of(vector_scores, limit),
                    fusion.floor_of(keyword_scores, limit),
                )
        if query.min_score is not None:
            found = {i: c for i, c in found.items() if c.score >= query.min_score}
        rows = self._rows(tenant, found, query)
        with stage("fuse"):
            scored = {
                memory_id: replace(c, score=self._boosted(c.score, rows[memory_id], query))
                for memory_id, c in found.items()
                if memory_id in rows  # a vector without a row is never returned
            }
        if query.expand_links:
            self._expand(tenant, query, scored, rows)
        with stage("fuse"):
            ordered = sorted(scored.items(), key=lambda kv: (-kv[1].score, kv[0]))[: query.top_k]
            return [
                SearchHit(
                    memory=rows[memory_id],
                    score=candidate.score,
                    signals=Signals(
                        candidate.vector_rank,
                        candidate.keyword_rank,
                        candidate.link_depth,
                        candidate.cosine,
                        candidate.ts_rank,
                    ),
                )
                for memory_id, candidate in ordered
            ]

    def _vector_scope(self, tenant: Tenant, query: SearchQuery) -> SearchScope:
        """The scope Milvus filters by. The supersession clause reads a JSON field of every
        entity of the tenant (about 4 ms per 15,000 here, benchmarks/RESULTS.md "history"),
        so it is left out for a tenant with no superseded memory (an index probe in
        PostgreSQL says so): it could remove nothing there."""
        scope = query.scope
        if scope.include_superseded or self.postgres.has_superseded(tenant.id):
            return scope
        return replace(scope, include_superseded=True)

    @staticmethod
    def _boosted(score: float, memory: Memory, query: SearchQuery) -> float:
        if query.importance_boost:
            boost = query.importance_boost
            score *= (1.0 + boost * memory.importance) / (1.0 + boost)
        if query.recency_half_life_hours:
            age_hours = max(0.0, (datetime.now(UTC) - memory.created_at).total_seconds() / 3600)
            score *= 0.5 + 0.5 * math.pow(2.0, -age_hours / query.recency_half_life_hours)
        return score

    def _rows(
        self, tenant: Tenant, found: dict[int, _Candidate], query: SearchQuery
    ) -> dict[int, Memory]:
        """The rows of the candidates that can be returned.

        When the order cannot change after this point (vector or keyword mode, no boost, no
        link expansion), only the best ``top_k`` rows are read, then the next ones if some
        candidate has no row (deleted meanwhile); otherwise every candidate's row is needed.
        """
        reorders = query.mode == "hybrid" or query.importance_boost
        if reorders or query.recency_half_life_hours or query.expand_links:
            return self.postgres.get_memories_by_ids(tenant.id, list(found))
        ranked = sorted(found, key=lambda memory_id: (-found[memory_id].score, memory_id))
        rows: dict[int, Memory] = {}
        start = 0
        while len(rows) < query.top_k and start < len(ranked):
            wanted = ranked[start : start + query.top_k - len(rows)]
            rows.update(self.postgres.get_memories_by_ids(tenant.id, wanted))
            start += len(wanted)
        return rows

    def _expand(
        self,
        tenant: Tenant,
        query: SearchQuery,
        scored: dict[int, _Candidate],
        rows: dict[int, Memory],
    ) -> None:
        """Add memories linked to the current best results (in place)."""
        seeds = sorted(scored.items(), key=lambda kv: -kv[1].score)[: query.top_k]
        frontier: dict[int, float] = {memory_id: c.score for memory_id, c in seeds}
        reached: dict[int, _Candidate] = {}
        for depth in range(1, query.expand_links + 1):
            edges = self.postgres.edges_from(tenant.id, list(frontier), None, "both")
            next_frontier: dict[int, float] = {}
            for node, other, _link_type, strength in edges:
                if other in scored or other in reached:
                    continue
                score = frontier[node] * strength / (1 + depth)
                if score > next_frontier.get(other, -1.0):
                    next_frontier[other] = score
            for other, score in next_frontier.items():
                reached[other] = _Candidate(score=score, link_depth=depth)
            frontier = next_frontier
            if not frontier:
                break
        if not reached:
            return
        linked_rows = self.postgres.get_memories_by_ids(tenant.id, list(reached))
        for memory_id, candidate in reached.items():
            memory = linked_rows.get(memory_id)
            if memory is None or not _in_scope(memory, query):
                continue
            rows[memory_id] = memory
            scored[memory_id] = candidate


def _fuse(found: dict[int, _Candidate], vector_floor: float, keyword_floor: float) -> None:
    """Replace each candidate's score by its hybrid score (in place)."""
    for c in found.values():
        v = None if c.cosine is None else fusion.vector_score(c.cosine)
        k = None if c.ts_rank is None else fusion.keyword_score(c.ts_rank)
        c.score = fusion.fuse(v, k, vector_floor, keyword_floor, c.cosine)


def check_filters(filters: dict[str, str | int | float | bool]) -> None:
    """Refuse filter keys that are not identifiers and values no store can match."""
    for key, value in filters.items():
        field = f"filters.{key}"
        if not FILTER_KEY.match(key):
            raise InvalidInputError("keys must be identifiers of at most 64 characters", field)
        if isinstance(value, str) and len(value) > MAX_ATTR_STRING:
            raise InvalidInputError(
                f"string values are limited to {MAX_ATTR_STRING} characters", field
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError("must be a finite number", field)


def _in_scope(memory: Memory, query: SearchQuery) -> bool:
    """Whether a memory reached through links passes the search's filters."""
    scope = query.scope
    if scope.memory_type is not None and memory.memory_type != scope.memory_type:
        return False
    if scope.created_after is not None and memory.created_at < scope.created_after:
        return False
    if scope.created_before is not None and memory.created_at >= scope.created_before:
        return False
    if memory.superseded_by is not None and not scope.include_superseded:
        return False
    at = scope.valid_at
    if at is not None and (
        (memory.valid_from is not None and memory.valid_from > at)
        or (memory.valid_to is not None and memory.valid_to <= at)
    ):
        return False
    if any(getattr(memory, k) != v for k, v in scope.scopes.given().items()):
        return False
    return all(memory.payload.get(k) == v for k, v in scope.filters.items())
