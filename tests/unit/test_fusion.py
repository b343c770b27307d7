"""The calibration of search scores (core/fusion.py): monotone, in [0, 1], exact text first."""

from __future__ import annotations

import pytest

from somafractalmemory.context_schemas import CONTEXT_MIN_SCORE
from somafractalmemory.core import fusion


def test_vector_score_is_monotone_and_bounded() -> None:
    cosines = [-1.0 + i / 50 for i in range(101)]
    scores = [fusion.vector_score(c) for c in cosines]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores)
    assert len(set(scores)) == len(scores)  # strictly increasing
    assert 0.5 <= fusion.vector_score(fusion.COS_MID) < 0.55
    assert fusion.vector_score(1.0) == pytest.approx(1.0)
    assert fusion.vector_score(-1.0) == pytest.approx(0.0)
    assert fusion.vector_score(-1e6) == 0.0  # no overflow, clamped
    assert fusion.vector_score(1.0 + 1e-6) == 1.0


def test_keyword_score_is_monotone_and_bounded() -> None:
    ranks = [i / 10 for i in range(200)]
    scores = [fusion.keyword_score(r) for r in ranks]
    assert scores[0] == 0.0
    assert all(0.0 <= s < 1.0 for s in scores)
    assert scores == sorted(scores)
    assert fusion.keyword_score(fusion.TEXT_K) == pytest.approx(0.5)
    assert fusion.keyword_score(-0.1) == 0.0


def test_floor_is_the_lowest_score_of_a_full_list_only() -> None:
    assert fusion.floor_of([0.9, 0.4, 0.6], 3) == 0.4
    assert fusion.floor_of([0.9, 0.4], 3) == 0.0
    assert fusion.floor_of([], 0) == 0.0


def test_fused_score_is_bounded_and_rewards_both_signals() -> None:
    both = fusion.fuse(0.8, 0.6, 0.3, 0.1)
    vector_only = fusion.fuse(0.8, None, 0.3, 0.1)
    keyword_only = fusion.fuse(None, 0.6, 0.3, 0.1)
    assert both > vector_only
    assert both > keyword_only
    assert both == pytest.approx(fusion.VECTOR_WEIGHT * 0.8 + fusion.KEYWORD_WEIGHT * 0.6)
    assert vector_only == pytest.approx(fusion.VECTOR_WEIGHT * 0.8 + fusion.KEYWORD_WEIGHT * 0.1)
    for v in (None, 0.0, 0.5, 1.0):
        for k in (None, 0.0, 0.5, 1.0):
            assert 0.0 <= fusion.fuse(v, k, 1.0, 1.0) <= 1.0
    # monotone in each signal
    assert fusion.fuse(0.9, 0.5, 0.0, 0.0) > fusion.fuse(0.7, 0.5, 0.0, 0.0)
    assert fusion.fuse(0.5, 0.9, 0.0, 0.0) > fusion.fuse(0.5, 0.7, 0.0, 0.0)


def test_an_exact_text_scores_highest() -> None:
    """The stored text itself (cosine 1) outranks a text with a far better keyword rank."""
    exact_v = fusion.vector_score(1.0)
    exact = fusion.fuse(exact_v, fusion.keyword_score(0.1), 0.0, 0.0, cosine=1.0)
    wordy = fusion.fuse(fusion.vector_score(0.8), fusion.keyword_score(5.0), 0.0, 0.0, cosine=0.8)
    assert exact > wordy
    assert exact == pytest.approx(exact_v)
    assert fusion.vector_score(1.0) > fusion.vector_score(0.97)


def test_the_client_default_is_the_servers() -> None:
    assert CONTEXT_MIN_SCORE == fusion.CONTEXT_MIN_SCORE
