"""Tune core/fusion.py: ``PYTHONPATH=src:. .venv/bin/python benchmarks/fusion_tune.py``.

Three sets, so that the constants do not fit one alone: LoCoMo with all conversations in one
tenant, LoCoMo with a tenant per conversation (both as benchmarks/quality.py loads them), and
the paraphrase questions of benchmarks/corpus.py (3,000 generated memories; each question's one
relevant memory is the one it paraphrases; its exact-text queries measure "exact text first").

The signals are gathered once: the keyword list of each question from the real server
(``POST /memories/search``, keyword mode, the server's candidate depth, with each hit's raw
``ts_rank_cd`` from ``signals.keyword_score``), the vector list by exact cosine in numpy with
the same model (the server's HNSW matches exact cosine at 0.999-1.000, benchmarks/RESULTS.md
"quality"). Every combination of the grid is then fused offline exactly as core/fusion.py
fuses (floors, the exact-text rule), so the grid costs seconds, not a server run each.

Then, with the constants core/fusion.py holds, ``min_score``: how many of 20 off-topic
questions (general knowledge, nothing LoCoMo's conversations talk about) get no hybrid result
at each threshold, against LoCoMo Recall@10 at that threshold. Embeddings are cached in the
git-ignored benchmarks/.cache/ (keyed by model and texts).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import pickle
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import EMBEDDING_MODEL
from corpus import make_memories, make_queries
from extra import (
    CACHE,
    TOP_K,
    client,
    command_line,
    isolated_config,
    preamble,
    put_section,
    store_batch,
    uptime,
)
from harness import prepare_stores, running_server
from quality import VECTOR_BATCH, chunks, locomo, turns_and_questions
from quality_report import RRF_K

from somafractalmemory.core import fusion
from somafractalmemory.core.embedding import create_embedder
from somafractalmemory.core.search import candidates_for

DEPTH = candidates_for(TOP_K)  # what each signal contributes to a hybrid search of top 10
CORPUS_SIZE = 3000
CORPUS_QUERIES = 600
WORKERS = 4
CASES = CACHE / "fusion-cases.pickle"
GRID = {
    "cos_mid": (0.25, 0.3, 0.35, 0.4, 0.45),
    "cos_scale": (0.1, 0.15, 0.2, 0.3),
    "text_k": (0.1, 0.2, 0.3, 0.5, 1.0),
    "vector_weight": (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5),
}
THRESHOLDS = (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
OFF_TOPIC = (
    "what is the capital of Japan?",
    "how many moons does Jupiter have?",
    "who wrote the Critique of Pure Reason?",
    "what is the boiling point of mercury?",
    "when did the Byzantine empire fall?",
    "what is the derivative of arctangent?",
    "which element has atomic number 74?",
    "how does a TCP three-way handshake work?",
    "what is the GDP of Norway?",
    "who won the 1954 football world cup?",
    "what is the speed of sound in steel?",
    "how do you compile a Linux kernel module?",
    "what is the half-life of carbon-14?",
    "which river flows through Budapest?",
    "what is a Fourier transform used for?",
    "who discovered penicillin?",
    "what is the tallest mountain in Africa?",
    "how is sulfuric acid produced industrially?",
    "what does the Krebs cycle produce?",
    "what is the population of Mongolia?",
)

Key = Any  # hashable: (conversation, dia_id) for LoCoMo, a coordinate for the corpus


@dataclass(frozen=True)
class Case:
    """One question: its relevant keys and the two signals' lists (key, raw score), best first."""

    relevant: frozenset[Key]
    vector: list[tuple[Key, float]]
    keyword: list[tuple[Key, float]]


def embed(embedder: Any, texts: list[str], name: str) -> np.ndarray:
    """The texts' embeddings, cached under benchmarks/.cache/ by model and texts."""
    digest = hashlib.sha256("\n".join([EMBEDDING_MODEL, *texts]).encode()).hexdigest()[:16]
    path = CACHE / f"fusion-{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(exist_ok=True)
    vectors = np.array(embedder.embed(texts), dtype=np.float32)
    np.save(path, vectors)
    return vectors


def exact_top(vectors: np.ndarray, keys: list[Key], query: np.ndarray) -> list[tuple[Key, float]]:
    sims = vectors @ query
    order = np.argsort(-sims, kind="stable")[:DEPTH]
    return [(keys[i], float(sims[i])) for i in order]


def keyword_lists(
    http: Any, texts: list[str], key_of: Callable[[dict[str, Any]], Key]
) -> list[list[tuple[Key, float]]]:
    """Each text's keyword-mode hits from the server, with their raw ts_rank_cd."""

    def ask(text: str) -> list[tuple[Key, float]]:
        response = http.post(
            "/memories/search", json={"query": text, "mode": "keyword", "top_k": DEPTH}
        )
        if response.status_code != 200:
            raise RuntimeError(f"search: {response.status_code} {response.text[:300]}")
        return [
            (key_of(r), float(r["signals"]["keyword_score"])) for r in response.json()["results"]
        ]

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(ask, texts))


class Arrays:
    """A set's cases as padded arrays (question x candidate), for fusing a grid at once."""

    def __init__(self, cases: list[Case]) -> None:
        width = 2 * DEPTH
        n = len(cases)
        self.cos = np.full((n, width), np.nan)
        self.ts = np.full((n, width), np.nan)
        self.rel = np.zeros((n, width), dtype=bool)
        self.valid = np.zeros((n, width), dtype=bool)
        self.vector_full = np.array([len(c.vector) >= DEPTH for c in cases])
        self.keyword_full = np.array([len(c.keyword) >= DEPTH for c in cases])
        self.vrank = np.full((n, width), np.inf)
        self.krank = np.full((n, width), np.inf)
        for q, case in enumerate(cases):
            slots: dict[Key, int] = {}
            for rank, (key, cos) in enumerate(case.vector, start=1):
                j = slots.setdefault(key, len(slots))
                self.cos[q, j], self.vrank[q, j] = cos, rank
            for rank, (key, ts) in enumerate(case.keyword, start=1):
                j = slots.setdefault(key, len(slots))
                self.ts[q, j], self.krank[q, j] = ts, rank
            for key, j in slots.items():
                self.valid[q, j] = True
                self.rel[q, j] = key in case.relevant
        count = np.array([min(len(c.relevant), TOP_K) for c in cases])
        discounts = 1.0 / np.log2(np.arange(TOP_K) + 2)
        self.ideal = np.array([discounts[:m].sum() for m in count])
        self.n_relevant = np.array([len(c.relevant) for c in cases])
        self.discounts = discounts

    def metrics(self, scores: np.ndarray) -> tuple[float, float]:
        """Mean nDCG@10 and Recall@10 of ranking each question's candidates by ``scores``
        (NaN or -inf: not returned)."""
        scores = np.where(self.valid & np.isfinite(scores), scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
        rows = np.arange(len(scores))[:, None]
        hit = self.rel[rows, order] & np.isfinite(scores[rows, order])
        ndcg = (hit * self.discounts).sum(axis=1) / self.ideal
        recall = hit.sum(axis=1) / self.n_relevant
        return float(ndcg.mean()), float(recall.mean())

    def fused(self, mid: float, scale: float, k: float, w: float) -> np.ndarray:
        """core/fusion.py's hybrid score of every candidate, vectorised."""
        lo = 1.0 / (1.0 + np.exp((1.0 + mid) / scale))
        hi = 1.0 / (1.0 + np.exp(-(1.0 - mid) / scale))
        with np.errstate(over="ignore", invalid="ignore"):
            v = (1.0 / (1.0 + np.exp(-(self.cos - mid) / scale)) - lo) / (hi - lo)
            t = np.where(self.ts > 0, self.ts / (self.ts + k), 0.0)
        t = np.where(np.isnan(self.ts), np.nan, t)
        v_floor = np.where(self.vector_full, np.nanmin(np.where(np.isnan(v), np.inf, v), 1), 0.0)
        t_floor = np.where(self.keyword_full, np.nanmin(np.where(np.isnan(t), np.inf, t), 1), 0.0)
        v_full = np.where(np.isnan(v), v_floor[:, None], v)
        t_full = np.where(np.isnan(t), t_floor[:, None], t)
        scores = w * v_full + (1.0 - w) * t_full
        exact = ~np.isnan(self.cos) & (self.cos >= fusion.EXACT_COS)
        scores = np.where(exact, np.maximum(scores, v_full), scores)
        return np.clip(scores, 0.0, 1.0)

    def baselines(self) -> dict[str, tuple[float, float]]:
        rrf = 1.0 / (RRF_K + self.vrank) + 1.0 / (RRF_K + self.krank)
        return {
            "vector (exact cosine)": self.metrics(-self.vrank),
            "keyword (ts_rank_cd)": self.metrics(
                np.where(np.isfinite(self.krank), -self.krank, np.nan)
            ),
            "plain RRF": self.metrics(rrf),
        }


def gather() -> tuple[dict[str, list[Case]], dict[str, Any]]:
    """The cases of the three sets, the off-topic cases, and the exact-text checks."""
    turns, questions, _skipped = turns_and_questions(locomo())
    embedder = create_embedder(EMBEDDING_MODEL)
    started = time.perf_counter()
    tvec = embed(embedder, [t.text for t in turns], "locomo-turns")
    qvec = embed(embedder, [q.text for q in questions], "locomo-questions")
    ovec = embed(embedder, list(OFF_TOPIC), "off-topic")
    memories = make_memories(CORPUS_SIZE, seed=21)
    queries = make_queries(memories, CORPUS_QUERIES, seed=22)
    mvec = embed(embedder, [m.text for m in memories], "corpus-memories")
    cqvec = embed(embedder, [q.text for q in queries], "corpus-queries")
    print(f"embeddings: {time.perf_counter() - started:.0f} s", flush=True)
    convs = sorted({t.key[0] for t in turns})
    keys = [t.key for t in turns]

    def locomo_key(r: dict[str, Any]) -> Key:
        return int(r["payload"]["conv"]), str(r["payload"]["dia_id"])

    def body(i: int) -> dict[str, Any]:
        t = turns[i]
        payload = {"text": t.text, "dia_id": t.key[1], "conv": t.key[0]}
        return {"coord": t.coord, "payload": payload, "vector": tvec[i].tolist()}

    cfg = isolated_config()
    prepare_stores(cfg)
    sets: dict[str, list[Case]] = {}
    extra: dict[str, Any] = {}
    with running_server(cfg) as server:
        with client(cfg, server.create_key("fusion-all")) as http:
            for part in chunks(list(range(len(turns))), VECTOR_BATCH):
                store_batch(http, [body(i) for i in part])
            words = keyword_lists(http, [q.text for q in questions], locomo_key)
            sets["LoCoMo, one tenant"] = [
                Case(q.relevant, exact_top(tvec, keys, qvec[i]), words[i])
                for i, q in enumerate(questions)
            ]
            off_words = keyword_lists(http, list(OFF_TOPIC), locomo_key)
            extra["off_topic"] = [
                Case(frozenset(), exact_top(tvec, keys, ovec[i]), off_words[i])
                for i in range(len(OFF_TOPIC))
            ]
            print("one tenant: done", flush=True)
        per_conv: list[Case | None] = [None] * len(questions)
        for c in convs:
            members = [i for i, t in enumerate(turns) if t.key[0] == c]
            asked = [i for i, q in enumerate(questions) if q.conv == c]
            with client(cfg, server.create_key(f"fusion-c{c}")) as http:
                for part in chunks(members, VECTOR_BATCH):
                    store_batch(http, [body(i) for i in part])
                words = keyword_lists(http, [questions[i].text for i in asked], locomo_key)
            sub = tvec[members]
            sub_keys = [keys[i] for i in members]
            for i, w in zip(asked, words, strict=True):
                per_conv[i] = Case(questions[i].relevant, exact_top(sub, sub_keys, qvec[i]), w)
        sets["LoCoMo, tenant per conversation"] = [c for c in per_conv if c is not None]
        print("tenant per conversation: done", flush=True)
        coords = [m.coord for m in memories]
        with client(cfg, server.create_key("fusion-corpus")) as http:
            for part in chunks(list(range(len(memories))), VECTOR_BATCH):
                store_batch(
                    http,
                    [
                        {
                            "coord": memories[i].coord,
                            "payload": {"text": memories[i].text},
                            "vector": mvec[i].tolist(),
                        }
                        for i in part
                    ],
                )
            words = keyword_lists(http, [q.text for q in queries], lambda r: str(r["coord"]))
        cases = [
            Case(frozenset({q.target.coord}), exact_top(mvec, coords, cqvec[i]), words[i])
            for i, q in enumerate(queries)
        ]
        sets["corpus paraphrases"] = [c for c, q in zip(cases, queries, strict=True) if not q.exact]
        extra["corpus exact"] = [c for c, q in zip(cases, queries, strict=True) if q.exact]
    return sets, extra


def first_rate(arrays: Arrays, scores: np.ndarray) -> float:
    """The share of questions whose best-scored candidate is relevant."""
    scores = np.where(arrays.valid & np.isfinite(scores), scores, -np.inf)
    best = np.argmax(scores, axis=1)
    return float(arrays.rel[np.arange(len(best)), best].mean())


def report(sets: dict[str, list[Case]], extra: dict[str, Any]) -> list[str]:
    arrays = {name: Arrays(cases) for name, cases in sets.items()}
    now = (fusion.COS_MID, fusion.COS_SCALE, fusion.TEXT_K, fusion.VECTOR_WEIGHT)
    lines = [
        "| set | questions | " + " | ".join(["vector", "keyword", "plain RRF", "fusion"]) + " |"
    ]
    lines.append("|---|---|---|---|---|---|")
    for name, a in arrays.items():
        base = a.baselines()
        fused = a.metrics(a.fused(*now))
        cells = [f"{n:.3f} / {r:.3f}" for n, r in [*base.values(), fused]]
        lines.append(f"| {name} | {len(sets[name])} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: nDCG@10 / Recall@10. Fusion: the constants core/fusion.py holds "
        f"(cos_mid {now[0]}, cos_scale {now[1]}, text_k {now[2]}, vector weight {now[3]}).",
        "",
    ]
    exact = Arrays(extra["corpus exact"])
    rates = {
        "vector": first_rate(exact, -exact.vrank),
        "keyword": first_rate(exact, np.where(np.isfinite(exact.krank), -exact.krank, np.nan)),
        "hybrid": first_rate(exact, exact.fused(*now)),
    }
    lines.append(
        f"Exact stored text ranked first ({len(extra['corpus exact'])} corpus queries): "
        + ", ".join(f"{m} {100 * r:.1f}%" for m, r in rates.items())
    )
    combos = list(itertools.product(*GRID.values()))
    rows = []
    for combo in combos:
        ndcgs = [a.metrics(a.fused(*combo))[0] for a in arrays.values()]
        rows.append((float(np.mean(ndcgs)), combo, ndcgs))
    rows.sort(key=lambda r: -r[0])
    names = list(arrays)
    lines += [
        "",
        f"Grid: {len(combos)} combinations of {', '.join(GRID)}; best 10 by mean nDCG@10:",
        "",
    ]
    lines.append(
        "| cos_mid | cos_scale | text_k | vector weight | " + " | ".join(names) + " | mean |"
    )
    lines.append("|---" * (5 + len(names)) + "|")
    for mean, combo, ndcgs in rows[:10]:
        lines.append(
            "| "
            + " | ".join(str(x) for x in combo)
            + " | "
            + " | ".join(f"{n:.3f}" for n in ndcgs)
            + f" | {mean:.3f} |"
        )
    off = Arrays(extra["off_topic"])
    one = arrays["LoCoMo, one tenant"]
    per = arrays["LoCoMo, tenant per conversation"]
    lines += ["", "min_score (hybrid, the constants above):", ""]
    lines.append(
        "| min_score | off-topic questions with no result (of 20) | "
        "LoCoMo Recall@10 one tenant | tenant per conversation |"
    )
    lines.append("|---|---|---|---|")
    off_scores = off.fused(*now)
    for t in THRESHOLDS:
        silent = int((np.where(off.valid, off_scores, -1.0) < t).all(axis=1).sum()) if t else 0
        r1 = one.metrics(np.where(one.fused(*now) >= t, one.fused(*now), np.nan))[1]
        r2 = per.metrics(np.where(per.fused(*now) >= t, per.fused(*now), np.nan))[1]
        lines.append(f"| {t} | {silent} | {r1:.3f} | {r2:.3f} |")
    best = np.sort(np.where(off.valid, off_scores, -1.0).max(axis=1))
    lines += [
        "",
        "Best hybrid score of each off-topic question: " + ", ".join(f"{s:.2f}" for s in best),
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cached",
        action="store_true",
        help="fuse the signals the last run gathered (benchmarks/.cache/fusion-cases.pickle) "
        "instead of storing and asking again",
    )
    args = parser.parse_args()
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    if args.cached:
        # Our own file, written by the last full run of this script.
        sets, extra = pickle.loads(CASES.read_bytes())
    else:
        sets, extra = gather()
        CASES.write_bytes(pickle.dumps((sets, extra)))
    lines = report(sets, extra)
    text = "\n".join(
        [
            "## Fusion tuning: core/fusion.py's constants on LoCoMo and the corpus paraphrases",
            "",
            *preamble(command, load_start, time.perf_counter() - began),
            "",
            *lines,
            "",
        ]
    )
    put_section("fusion", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
