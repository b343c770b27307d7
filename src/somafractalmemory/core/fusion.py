"""Calibrated relevance scores and their fusion: one scale, [0, 1], for every search mode.

Raw signals say little on their own: a cosine of 0.3 is unrelated text for this model while
0.6 is a paraphrase, and PostgreSQL's ``ts_rank_cd`` is unbounded and grows with the number of
query words matched. Each is mapped to [0, 1], monotone (a higher raw score never maps lower):

- vector: a logistic over the cosine, ``L(cos) = 1 / (1 + exp(-(cos - COS_MID) / COS_SCALE))``,
  stretched so that the whole cosine range [-1, 1] maps onto [0, 1]: ``(L(cos) - L(-1)) /
  (L(1) - L(-1))``; an identical text (cosine 1) scores 1, ``COS_MID`` about 0.52;
- keyword: ``s / (s + TEXT_K)`` over the ``ts_rank_cd`` ``s``: 0.5 at ``s = TEXT_K``, 0 when
  no query word matches, tending to 1;
- hybrid: the weighted sum ``VECTOR_WEIGHT * v + KEYWORD_WEIGHT * k`` of the two calibrated
  scores. A memory found by one signal only gets the other's imputed (:func:`floor_of`): the
  lowest calibrated score that signal returned when its list was full (the memory's own value
  is at most that, since it was not in the list), 0 when the list was not full (the memory did
  not match at all). An exact stored text (cosine >= ``EXACT_COS``) scores at least its vector
  score, so it ranks first in hybrid mode as it does in vector mode, however the keyword rank
  of a longer text that repeats the query's words compares.

The constants were chosen on LoCoMo (both set-ups) and the paraphrase set of
``benchmarks/corpus.py`` with ``benchmarks/fusion_tune.py``; the figures are in
benchmarks/RESULTS.md ("fusion"). Scores are comparable across queries, so a ``min_score``
threshold means the same thing for every query (README, "Scores and min_score").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

COS_MID = 0.35
COS_SCALE = 0.2
TEXT_K = 0.3
VECTOR_WEIGHT = 0.4
KEYWORD_WEIGHT = 1.0 - VECTOR_WEIGHT
# A cosine this high is the same text (or a near copy): hybrid then keeps its vector score.
EXACT_COS = 0.98


def _logistic(z: float) -> float:
    # Written both ways so that exp never overflows.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def vector_score(cosine: float, mid: float = COS_MID, scale: float = COS_SCALE) -> float:
    """The calibrated score of a cosine similarity, in [0, 1] (1 for cosine 1)."""
    low = _logistic((-1.0 - mid) / scale)
    high = _logistic((1.0 - mid) / scale)
    value = (_logistic((cosine - mid) / scale) - low) / (high - low)
    return min(1.0, max(0.0, value))


def keyword_score(ts_rank: float, k: float = TEXT_K) -> float:
    """The calibrated score of a ``ts_rank_cd``, in [0, 1)."""
    if ts_rank <= 0.0:
        return 0.0
    return ts_rank / (ts_rank + k)


def floor_of(scores: Sequence[float], limit: int) -> float:
    """What a signal's calibrated score is taken to be for a memory it did not return: its
    lowest returned score when it returned ``limit`` hits (a bound on what it left out), else
    0 (it returned everything that matched)."""
    if len(scores) < limit or not scores:
        return 0.0
    return min(scores)


def fuse(
    vector: float | None,
    keyword: float | None,
    vector_floor: float,
    keyword_floor: float,
    cosine: float | None = None,
    vector_weight: float = VECTOR_WEIGHT,
) -> float:
    """The hybrid score of a memory from its calibrated signal scores (``None``: that signal
    did not return it, its floor is used). ``cosine``: the raw cosine, for the exact-text
    rule."""
    v = vector_floor if vector is None else vector
    k = keyword_floor if keyword is None else keyword
    fused = vector_weight * v + (1.0 - vector_weight) * k
    if cosine is not None and vector is not None and cosine >= EXACT_COS:
        fused = max(fused, vector)
    return min(1.0, max(0.0, fused))


# POST /context's default min_score: an agent's prompt gets nothing rather than unrelated
# records (README, "Scores and min_score", for the figures it was chosen on).
CONTEXT_MIN_SCORE = 0.3
