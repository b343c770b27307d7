"""Item search: by meaning (the best vector of each item), by keyword, or both fused, over
one tenant's items under a namespace prefix.

The keyword signal is the memories' own (:meth:`PostgresStore.keyword_ranked`, the same
candidate bound), over the text the items' index paths select; keyword and hybrid scores are
the memories' calibrated ones (:mod:`somafractalmemory.core.fusion`), so message hits and
memory hits share one scale in ``POST /context``. Vector mode keeps the space's own similarity
(cosine, inner product or the l2 score of :func:`score_of`), as LangGraph stores do; hybrid
calibrates it as a cosine.

``min_score`` keeps only hits at least that relevant on the calibrated scale, before paging:
the score itself in keyword and hybrid mode; in vector mode the calibrated cosine
(:func:`fusion.vector_score`) of a cosine space's score, the score itself in an ``ip`` or
``l2`` space. A hit with no score (an item without a vector, a listing) never passes it, so
it needs a query or a vector. Each hit carries its ranks and raw scores in ``signals``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace

from somafractalmemory.core import fusion
from somafractalmemory.core.item_paths import check_filter, check_labels
from somafractalmemory.core.query_vectors import QueryEmbedder
from somafractalmemory.core.search import MODES, SIGNALS, candidates_for
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import ItemHit, ItemSearch, Signals, Space, Tenant
from somafractalmemory.stores.items_milvus import MAX_IN_LIST, MAX_TOPK, ItemVectorIndex
from somafractalmemory.stores.items_postgres import ItemsRepository
from somafractalmemory.stores.items_sql import scope
from somafractalmemory.stores.milvus_filters import scope_filter


class ItemSearcher:
    """Runs an :class:`ItemSearch` against the stores."""

    def __init__(
        self,
        repo: ItemsRepository,
        index: ItemVectorIndex,
        queries: QueryEmbedder,
        space: Callable[[Tenant, str | None], Space],
    ) -> None:
        self.repo = repo
        self.index = index
        self.queries = queries
        self.space = space

    def search(
        self, tenant: Tenant, search: ItemSearch, vector_filter: str | None = None
    ) -> list[ItemHit]:
        """Items under the prefix that pass the filter, filters and expiry applied before the
        limit. ``vector_filter``: a Milvus expression (over the entities' ``attrs``) and-ed to
        the vector search's, built by SFM's code (never a client's text); the keyword signal
        and the listings do not see it. ``vector`` mode: by vector similarity (best vector
        per item, each item once), then, to fill the page, items without a vector in the
        space, newest first; without a query or vector, newest first. ``keyword`` mode: by
        full-text rank of the query. ``hybrid``: the two fused as memories are (core/fusion.py)."""
        check_labels(search.namespace_prefix, "namespace_prefix")
        check_filter(search.filter)
        # The record scopes filter inside Milvus too (the entities' attrs), before its limit.
        clauses = [*([vector_filter] if vector_filter else []), *scope_filter(search.scopes)]
        vector_filter = " and ".join(clauses) or None
        if search.mode not in MODES:
            raise InvalidInputError(f"must be one of {', '.join(MODES)}", "mode")
        if search.min_score is not None and not (search.query or search.vector):
            raise InvalidInputError("needs a `query` or a `vector` to score by", "min_score")
        keyword: Future[list[tuple[int, float]]] | None = None
        if search.mode != "vector":
            # The keyword query runs in PostgreSQL while the query is embedded and Milvus
            # searched, as in memory search: a hybrid search costs the slower signal.
            keyword = self._keyword(tenant, search)
        # Keyword mode ranks by text alone: nothing to embed.
        space, vector = (None, None) if search.mode == "keyword" else self._meaning(tenant, search)
        if keyword is not None:
            hits = self._text_search(tenant, search, space, vector, keyword, vector_filter)
        elif vector is None or space is None:
            page = self.repo.page(
                tenant.id,
                search.namespace_prefix,
                search.filter,
                search.include_expired,
                search.limit,
                search.offset,
                scopes=search.scopes,
            )
            hits = [ItemHit(item, None) for item in page]
        else:
            hits = self._vector_search(tenant, search, space, vector, vector_filter)
        if search.refresh_ttl:
            # Only items with a TTL are written, in one statement; a search of items without
            # one commits nothing.
            self.repo.refresh([h.item.id for h in hits if h.item.ttl_minutes is not None])
        return hits

    def _meaning(
        self, tenant: Tenant, search: ItemSearch
    ) -> tuple[Space | None, list[float] | None]:
        """The space and query vector of a search (none: a listing by recency)."""
        if search.query is not None and search.vector is not None:
            raise InvalidInputError("give `query` or `vector`, not both", "vector")
        if not (search.query or search.vector or search.space):
            return None, None
        space = self.space(tenant, search.space)
        if not search.query:
            return space, search.vector
        if not space.is_default:
            raise InvalidInputError(
                f"space {space.name!r} holds your own vectors: send `vector`, not `query`",
                "query",
            )
        return space, self.queries.vector(search.query)

    def _vector_search(
        self,
        tenant: Tenant,
        search: ItemSearch,
        space: Space,
        vector: list[float],
        vector_filter: str | None,
    ) -> list[ItemHit]:
        if len(vector) != space.dimension:
            raise InvalidInputError(
                f"must have {space.dimension} numbers (space {space.name!r}), got {len(vector)}",
                "vector",
            )
        need = search.offset + search.limit
        args = (tenant.id, search.namespace_prefix, search.filter, search.include_expired)
        # The prefix (and the caller's ``vector_filter``) are applied inside Milvus, before
        # its limit: every hit is in scope but for expiry, checked in PostgreSQL below. A
        # payload filter only PostgreSQL can apply: its items are named in the expression
        # when they are few, else the search deepens until enough hits pass it.
        candidates: list[int] | None = None
        if search.filter:
            candidates = self.repo.ranked_ids(
                *args, space.name, MAX_IN_LIST + 1, scopes=search.scopes
            )
        restricted = candidates is not None and len(candidates) <= MAX_IN_LIST
        ranked: list[ItemHit] = []
        exhausted = True
        if candidates is None or candidates:
            # Vectors per item can be many (one per path): ask for more hits than items.
            k = min(MAX_TOPK, max(need * 4, 64) if search.filter else candidates_for(need))
            while True:
                found = self.index.search(
                    space,
                    tenant.id,
                    vector,
                    k,
                    search.namespace_prefix,
                    candidates if restricted else None,
                    vector_filter,
                )
                best: dict[int, float] = {}
                for hit in found:
                    best.setdefault(hit.item_id, hit.score)
                rows = self.repo.matching(tenant.id, list(best), *args[1:], scopes=search.scopes)
                ranked = [
                    ItemHit(rows[i], s, Signals(vector=rank, vector_score=s))
                    for rank, (i, s) in enumerate(best.items(), start=1)
                    if i in rows and _passes(space, s, search.min_score)
                ]
                exhausted = len(found) < k
                if len(ranked) >= need or exhausted or k >= MAX_TOPK:
                    break
                k = min(MAX_TOPK, k * 4)
        page = ranked[search.offset : need]
        if len(page) < search.limit and exhausted and search.min_score is None:
            fill = self.repo.page(
                *args,
                search.limit - len(page),
                max(0, search.offset - len(ranked)),
                without_space=space.name,
                scopes=search.scopes,
            )
            page.extend(ItemHit(item, None) for item in fill)
        return page

    @staticmethod
    def _pool(search: ItemSearch) -> int:
        """How many hits each signal contributes before fusion."""
        need = search.offset + search.limit
        return max(candidates_for(need), need)

    def _keyword(self, tenant: Tenant, search: ItemSearch) -> Future[list[tuple[int, float]]]:
        """The keyword signal, started on a thread of its own."""
        if not search.query or not search.query.strip():
            raise InvalidInputError(f"{search.mode} search needs a query text", "query")
        where = scope(
            tenant.id,
            search.namespace_prefix,
            search.filter,
            search.include_expired,
            search.scopes,
        )
        return SIGNALS.submit(
            contextvars.copy_context().run,  # the request's stage timings and trace
            self.repo.store.keyword_ranked,
            search.query,
            self._pool(search),
            where,
        )

    def _text_search(
        self,
        tenant: Tenant,
        search: ItemSearch,
        space: Space | None,
        vector: list[float] | None,
        keyword: Future[list[tuple[int, float]]],
        vector_filter: str | None,
    ) -> list[ItemHit]:
        """Keyword or hybrid: rank by full-text match (and, hybrid, by vector too), fuse."""
        need = search.offset + search.limit
        pool = self._pool(search)
        scores: dict[int, float] = {}
        ranked: list[ItemHit] = []
        if search.mode == "hybrid" and space is not None and vector is not None:
            ranked = self._vector_search(
                tenant,
                replace(search, offset=0, limit=pool, min_score=None),
                space,
                vector,
                vector_filter,
            )
        matches = keyword.result()
        words = {item_id: fusion.keyword_score(ts_rank) for item_id, ts_rank in matches}
        if search.mode == "keyword":
            scores = words
        else:
            cosines = {h.item.id: h.score for h in ranked if h.score is not None}
            meanings = {i: fusion.vector_score(c) for i, c in cosines.items()}
            # Each signal was asked for ``pool`` hits (floor_of: a full list's floor).
            vector_floor = fusion.floor_of(list(meanings.values()), pool)
            keyword_floor = fusion.floor_of(list(words.values()), pool)
            scores = {
                i: fusion.fuse(
                    meanings.get(i), words.get(i), vector_floor, keyword_floor, cosines.get(i)
                )
                for i in {*words, *meanings}
            }
        if search.min_score is not None:
            scores = {i: s for i, s in scores.items() if s >= search.min_score}
        order = sorted(scores, key=lambda i: (-scores[i], i))[search.offset : need]
        rows = self.repo.matching(
            tenant.id,
            order,
            search.namespace_prefix,
            search.filter,
            search.include_expired,
            scopes=search.scopes,
        )
        # Ranks are 1-based positions in each signal's list, as memory search's signals.
        texts = {i: (rank, ts_rank) for rank, (i, ts_rank) in enumerate(matches, start=1)}
        meaning = {h.item.id: h.signals for h in ranked}
        return [
            ItemHit(rows[i], scores[i], _signals(meaning.get(i), texts.get(i)))
            for i in order
            if i in rows
        ]


def _passes(space: Space, score: float, min_score: float | None) -> bool:
    """Whether a vector-mode hit reaches ``min_score`` on the calibrated scale."""
    if min_score is None:
        return True
    calibrated = fusion.vector_score(score) if space.metric == "cosine" else score
    return calibrated >= min_score


def _signals(vector: Signals | None, keyword: tuple[int, float] | None) -> Signals:
    """A hybrid or keyword hit's signals: its vector rank and raw score, its keyword rank
    and raw ``ts_rank_cd``."""
    return Signals(
        vector=vector.vector if vector else None,
        keyword=keyword[0] if keyword else None,
        vector_score=vector.vector_score if vector else None,
        keyword_score=keyword[1] if keyword else None,
    )
