"""Keyword (full-text) search over the memories table.

Which rows are ranked is decided by the candidate rules of :mod:`.keyword`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from somafractalmemory.models import (
    SearchScope,
)
from somafractalmemory.stores import keyword
from somafractalmemory.stores.pg_base import PostgresBase
from somafractalmemory.stores.tables import (
    IS_CURRENT,
    IS_MEMORY,
    records,
    scope_clauses,
)

_TS_CONFIG: sa.ColumnClause[Any] = sa.literal_column("'english'::regconfig")


def memory_scope(tenant_id: int, scope: SearchScope) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of a memory search's scope; payload filters use JSONB containment."""
    clauses = [records.c.tenant_id == tenant_id, IS_MEMORY]
    if scope.memory_type is not None:
        clauses.append(records.c.memory_type == scope.memory_type.value)
    if scope.created_after is not None:
        clauses.append(records.c.created_at >= scope.created_after)
    if scope.created_before is not None:
        clauses.append(records.c.created_at < scope.created_before)
    if scope.filters:
        clauses.append(records.c.payload.op("@>")(sa.cast(scope.filters, postgresql.JSONB)))
    clauses.extend(scope_clauses(scope.scopes))
    return clauses + record_state(scope.include_superseded, scope.valid_at)


def record_state(
    include_superseded: bool, valid_at: datetime | None
) -> list[sa.ColumnElement[bool]]:
    """The clauses for a record's state: current only (unless superseded ones are asked for),
    and valid at ``valid_at`` (no bound on either side means always)."""
    clauses: list[sa.ColumnElement[bool]] = [] if include_superseded else [IS_CURRENT]
    if valid_at is not None:
        clauses.append(sa.or_(records.c.valid_from.is_(None), records.c.valid_from <= valid_at))
        clauses.append(sa.or_(records.c.valid_to.is_(None), records.c.valid_to > valid_at))
    return clauses


class KeywordReads(PostgresBase):
    """Full-text search of a tenant's memories."""

    def keyword_search(
        self, tenant_id: int, text: str, limit: int, scope: SearchScope
    ) -> list[tuple[int, float]]:
        """The tenant's best full-text matches for ``text`` among its memories in ``scope``;
        see :meth:`keyword_ranked`."""
        return self.keyword_ranked(text, limit, memory_scope(tenant_id, scope))

    def keyword_ranked(
        self, text: str, limit: int, where: Sequence[sa.ColumnElement[bool]]
    ) -> list[tuple[int, float]]:
        """The best full-text matches for ``text`` among the records ``where`` selects (a
        tenant's memories, or its items under a namespace) as (id, rank), best first.

        Any word may match (the query's lexemes are OR-ed) and ``ts_rank_cd`` against that OR
        orders the matches, but only a bounded set of candidate rows is ranked, picked by the
        query's rarest lexemes (see :mod:`somafractalmemory.stores.keyword`), so the cost does
        not grow with the tenant. The scope is applied in the same statement, before any
        limit.
        """
        with self.reading("keyword_search") as conn:
            lexemes = [
                str(x)
                for x in conn.execute(
                    sa.select(
                        sa.func.unnest(
                            sa.func.tsvector_to_array(sa.func.to_tsvector(_TS_CONFIG, text))
                        )
                    )
                ).scalars()
            ]
            if not lexemes:
                return []
            every = keyword.any_of(lexemes)
            found: dict[int, float] = {}
            picks = list(keyword.tiers(lexemes, self._lexeme_stats(conn)))
            for pick in picks:
                cap = keyword.CANDIDATE_CAP if pick.fits else limit * keyword.FILL_FACTOR
                found.update(self._ranked(conn, where, pick.query, every, limit, cap))
                if len(found) >= limit:
                    break
            if len(found) < limit and every not in (pick.query for pick in picks):
                # Rows holding only some common word: a few, so the list is never short.
                cap = limit * keyword.FILL_FACTOR
                found.update(self._ranked(conn, where, every, every, limit, cap))
        return sorted(found.items(), key=lambda hit: (-hit[1], hit[0]))[:limit]

    @staticmethod
    def _ranked(
        conn: Connection,
        where: Sequence[sa.ColumnElement[bool]],
        pick: str,
        rank_by: str,
        limit: int,
        cap: int,
    ) -> list[tuple[int, float]]:
        """Rank by ``rank_by`` at most ``cap`` of the rows ``where`` selects that match the
        tsquery ``pick``.

        Ranking is two-staged: ``ts_rank`` (term frequency, cheap) keeps the best
        ``limit * FILL_FACTOR`` of the candidates, and only those are ranked by ``ts_rank_cd``
        (cover density, which reads each row's positions and costs about six times as much).
        Over a full cap of candidates ``ts_rank_cd`` alone was most of the keyword tail at a
        million memories; the pre-rank keeps it to a few hundred rows.
        """
        candidates = sa.select(records.c.id, records.c.text_tsv).where(
            *where, records.c.text_tsv.op("@@")(sa.cast(pick, postgresql.TSQUERY))
        )
        picked = candidates.limit(cap).subquery("candidates")
        query = sa.cast(rank_by, postgresql.TSQUERY)
        keep = limit * keyword.FILL_FACTOR
        if cap > keep:
            coarse = sa.func.ts_rank(picked.c.text_tsv, query)
            picked = (
                sa.select(picked.c.id, picked.c.text_tsv)
                .order_by(coarse.desc(), picked.c.id)
                .limit(keep)
                .subquery("kept")
            )
        rank = sa.func.ts_rank_cd(picked.c.text_tsv, query).label("rank")
        statement = sa.select(picked.c.id, rank).order_by(rank.desc(), picked.c.id).limit(limit)
        return [(int(r.id), float(r.rank)) for r in conn.execute(statement)]

    def _lexeme_stats(self, conn: Connection) -> keyword.LexemeStats:
        """PostgreSQL's lexeme statistics of ``records.text_tsv``, cached for a while."""
        now = time.monotonic()
        if self._stats is not None and now - self._stats[0] < keyword.STATS_TTL:
            return self._stats[1]
        row = conn.execute(
            sa.text(
                "SELECT c.reltuples, s.most_common_elems::text::text[] AS elems, "
                "s.most_common_elem_freqs AS freqs FROM pg_class c "
                "LEFT JOIN pg_stats s ON s.schemaname = current_schema() "
                "AND s.tablename = 'records' AND s.attname = 'text_tsv' "
                "WHERE c.oid = 'records'::regclass"
            )
        ).one()
        stats = keyword.LexemeStats.from_pg_stats(float(row.reltuples), row.elems, row.freqs)
        self._stats = (now, stats)
        return stats
