"""Bounded keyword search: which of a query's lexemes pick the candidates that get ranked.

Ranking every row that shares any word with the query costs time in proportion to the tenant:
a query with a common word ("team", "Monday") matches a large share of a big tenant, and
``ts_rank_cd`` reads each of those rows' tsvector. So the rows to rank are chosen first by
the query's *selective* lexemes, estimated from PostgreSQL's own column statistics
(``pg_stats.most_common_elems`` of ``memories.text_tsv``, collected by ``ANALYZE``):

1. the query's lexemes, rarest first, are OR-ed while their estimated rows together stay within
   :data:`BUDGET_ROWS`; when all fit, that is the plain OR of every lexeme, as a search on a
   small table always is;
2. when even the rarest lexeme alone is estimated above the budget (every word is common),
   the candidates are the rows holding the rarest few lexemes together (AND), as many as it
   takes to get the estimate under the budget (words of one text are not independent, so the
   independent estimate is multiplied by :data:`CORRELATION`);
3. while fewer rows than asked for are found, the next tier does the same with the lexemes
   the earlier tiers did not use, up to :data:`MAX_TIERS` statements;
4. at most :data:`CANDIDATE_CAP` candidate rows of one tier are ranked, whatever the
   estimates say; a tier whose lexemes, all of them together, are still estimated above the
   budget picks rows that hold only common words, any of which is as good a candidate as
   another, so it ranks at most ``limit * FILL_FACTOR`` of them, as the fill below does;
5. if the list is still short (an AND tier found too little, or a filter leaves few rows),
   the OR of every lexeme fills it, ranking at most ``limit * FILL_FACTOR`` of its rows, so a
   row that holds just one common word of the query is still found when nothing better is.

Candidates are ranked with ``ts_rank_cd`` against the OR of *every* query lexeme (after a cheap
``ts_rank`` pre-rank keeps the best ``limit * FILL_FACTOR`` of a tier's candidates), so common
words still order the candidates; they only stop deciding which rows are looked at, much as
inverse document frequency would make them count for little. Statistics are global (all
tenants) and cached for :data:`STATS_TTL` seconds; without statistics every lexeme counts as
rare and the plain OR is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

BUDGET_ROWS = 2_000
CANDIDATE_CAP = 2_000
STATS_TTL = 300.0
MAX_TIERS = 3
FILL_FACTOR = 10
CORRELATION = 20.0


@dataclass(frozen=True)
class LexemeStats:
    """How often lexemes occur in ``memories.text_tsv``: fractions of rows for the most
    common ones, an upper bound (``floor``) for every other, and the table's row count."""

    rows: float = 0.0
    freqs: dict[str, float] = field(default_factory=dict)
    floor: float = 0.0

    @classmethod
    def from_pg_stats(
        cls, rows: float, elems: Sequence[str] | None, freqs: Sequence[float] | None
    ) -> LexemeStats:
        """From ``reltuples`` and ``pg_stats.most_common_elems`` / ``most_common_elem_freqs``
        (the frequencies are followed by their minimum, maximum and the null frequency)."""
        if not elems or not freqs or len(freqs) < len(elems) + 1:
            return cls(rows=max(rows, 0.0))
        return cls(
            rows=max(rows, 0.0),
            freqs=dict(zip(elems, freqs[: len(elems)], strict=True)),
            floor=float(freqs[len(elems)]),
        )

    def frequency(self, lexeme: str) -> float:
        return self.freqs.get(lexeme, self.floor)

    def estimate(self, lexeme: str) -> float:
        """Estimated rows holding ``lexeme``."""
        return self.rows * self.frequency(lexeme)


def quote(lexeme: str) -> str:
    """``lexeme`` as a tsquery operand, taken verbatim (no parsing, no stemming)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def any_of(lexemes: Iterable[str]) -> str:
    return " | ".join(quote(x) for x in lexemes)


def all_of(lexemes: Iterable[str]) -> str:
    return " & ".join(quote(x) for x in lexemes)


@dataclass(frozen=True)
class Pick:
    """A tsquery that picks candidate rows, the lexemes it uses, and whether its estimated
    rows fit the budget (False: even the AND of every lexeme left is estimated above it)."""

    query: str
    used: list[str]
    fits: bool = True


def selective_query(
    lexemes: Iterable[str], stats: LexemeStats, budget: float = BUDGET_ROWS
) -> Pick:
    """The tsquery that picks candidate rows among ``lexemes``: the OR of the rarest
    lexemes whose estimated rows together stay within ``budget`` (all of them when all fit),
    else the AND of the rarest few whose estimated rows together, counted as if independent
    and then :data:`CORRELATION` times over, fit (or of all of them, when none do)."""
    ordered = sorted(set(lexemes), key=lambda x: (stats.estimate(x), x))
    chosen: list[str] = []
    total = 0.0
    for lexeme in ordered:
        estimate = stats.estimate(lexeme)
        if total + estimate > budget:
            break
        chosen.append(lexeme)
        total += estimate
    if chosen:
        return Pick(any_of(chosen), chosen)
    together: list[str] = []
    estimate = stats.rows * CORRELATION
    for lexeme in ordered:
        together.append(lexeme)
        estimate *= stats.frequency(lexeme)
        if estimate <= budget:
            break
    return Pick(all_of(together), together, fits=estimate <= budget)


def tiers(
    lexemes: Sequence[str], stats: LexemeStats, budget: float = BUDGET_ROWS
) -> Iterator[Pick]:
    """The candidate picks to run in turn, at most :data:`MAX_TIERS`, each over the
    lexemes the earlier ones did not use; the caller stops once it has enough rows."""
    remaining = list(dict.fromkeys(lexemes))
    for _ in range(MAX_TIERS):
        if not remaining:
            return
        pick = selective_query(remaining, stats, budget)
        yield pick
        remaining = [x for x in remaining if x not in pick.used]
