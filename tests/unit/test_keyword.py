"""Which lexemes pick the keyword candidates (stores/keyword.py), without a database."""

from __future__ import annotations

from somafractalmemory.stores import keyword
from somafractalmemory.stores.keyword import LexemeStats

# A million rows: "team" in half of them, "plan" in a fifth, everything else rarer than 0.1%.
STATS = LexemeStats(rows=1_000_000, freqs={"team": 0.5, "plan": 0.2, "monday": 0.01}, floor=0.001)


def test_quote_keeps_lexemes_verbatim() -> None:
    assert keyword.quote("o'neil") == "'o''neil'"
    assert keyword.quote("a\\b") == "'a\\\\b'"
    assert keyword.any_of(["a", "b"]) == "'a' | 'b'"
    assert keyword.all_of(["a", "b"]) == "'a' & 'b'"


def test_stats_from_pg_stats() -> None:
    stats = LexemeStats.from_pg_stats(100.0, ["team", "plan"], [0.5, 0.2, 0.2, 0.5, 0.0])
    assert stats.freqs == {"team": 0.5, "plan": 0.2}
    assert stats.floor == 0.2
    assert stats.estimate("team") == 50.0
    assert stats.estimate("unknown") == 20.0
    assert LexemeStats.from_pg_stats(-1.0, None, None) == LexemeStats()
    assert LexemeStats.from_pg_stats(10.0, ["a"], [0.5]) == LexemeStats(rows=10.0)


def test_rare_lexemes_pick_the_candidates_and_common_ones_do_not() -> None:
    pick = keyword.selective_query(["team", "zanzibar", "plan"], STATS)
    assert pick == keyword.Pick("'zanzibar'", ["zanzibar"], fits=True)


def test_everything_fits_on_a_small_table_or_without_statistics() -> None:
    small = LexemeStats(rows=1_000, freqs=STATS.freqs, floor=STATS.floor)
    assert keyword.selective_query(["team", "plan"], small).used == ["plan", "team"]
    assert keyword.selective_query(["team", "plan"], LexemeStats()).used == ["plan", "team"]


def test_only_common_words_make_an_and_of_the_rarest() -> None:
    common = LexemeStats(rows=1_000_000, freqs={"a": 0.01, "b": 0.005, "c": 0.5})
    assert keyword.selective_query(["c", "a", "b"], common) == keyword.Pick(
        "'b' & 'a'", ["b", "a"], fits=True
    )
    # Never fitting: the AND of them all, marked as over the budget (its rows hold only
    # common words: the caller ranks fewer of them).
    pick = keyword.selective_query(["team", "plan", "monday"], STATS)
    assert pick == keyword.Pick("'monday' & 'plan' & 'team'", ["monday", "plan", "team"], False)
    lone = keyword.selective_query(["team"], STATS)
    assert (lone.query, lone.fits) == ("'team'", False)


def test_tiers_use_each_lexeme_once() -> None:
    tiers = list(keyword.tiers(["team", "zanzibar", "plan", "zanzibar"], STATS))
    assert (tiers[0].query, tiers[0].fits) == ("'zanzibar'", True)
    assert (tiers[1].query, tiers[1].fits) == ("'plan' & 'team'", False)
    assert len(tiers) == 2
    assert list(keyword.tiers([], STATS)) == []
