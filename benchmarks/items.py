"""Item search beside memory search: ``.venv/bin/python benchmarks/items.py [--count N]``.

One tenant holds the same corpus twice: as memories (``POST /memories/batch``) and as items
(``PUT /items``, namespace ``["corpus", <topic>]``, embedded from ``value.text``), both
embedded by the server. Then each query text is searched both ways, alternately (memory,
item, memory, item, ...) so a drift of the machine weighs on both alike: vector mode (the
items' default), hybrid mode, and items under one namespace prefix. Each query text is asked
once per way and mode with a suffix of its own, so the query-embedding cache answers neither.
The target (the one-record-model issue): item search p50 within 1.1x of memory search.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from common import Latency, LeanClient
from corpus import make_memories, make_queries
from extra import (
    client,
    command_line,
    isolated_config,
    preamble,
    put_section,
    save_json,
    store_batch,
    table,
    uptime,
)
from harness import prepare_stores, running_server

SEED = 4242
BATCH = 500
QUERIES = 200
WARMUP = 20


def load(http: Any, count: int) -> tuple[list[str], list[str]]:
    """Store the corpus as memories and as items; the query texts, and the items' topics."""
    memories = make_memories(count, SEED)
    for i in range(0, count, BATCH):
        chunk = memories[i : i + BATCH]
        store_batch(
            http,
            [
                {"coord": m.coord, "payload": {"text": m.text}, "memory_type": m.memory_type}
                for m in chunk
            ],
        )
    topics = [f"t{i % 8}" for i in range(count)]
    for i, memory in enumerate(memories):
        body = {"namespace": ["corpus", topics[i]], "key": f"m{i}", "value": {"text": memory.text}}
        response = http.put("/items", json=body)
        if response.status_code not in (200, 201):
            raise RuntimeError(f"put item: {response.status_code} {response.text[:300]}")
    queries = make_queries(memories, QUERIES + WARMUP, SEED + 1)
    return [q.text for q in queries], topics


def timed(lean: LeanClient, path: str, body: dict[str, Any]) -> float:
    """Seconds one search takes, as the client sees it."""
    started = time.perf_counter()
    status, _timing, data = lean.post(path, body)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{path}: {status} {data[:300]!r}")
    return elapsed


CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # case: (memory search body, item search body), the query text added per request
    "vector": ({"mode": "vector", "top_k": 10}, {"mode": "vector", "limit": 10}),
    "hybrid": ({"mode": "hybrid", "top_k": 10}, {"mode": "hybrid", "limit": 10}),
    "vector, one prefix": (
        {"mode": "vector", "top_k": 10},
        {"mode": "vector", "limit": 10, "namespace_prefix": ["corpus", "t3"]},
    ),
}


def run(lean: LeanClient, texts: list[str]) -> dict[str, dict[str, Latency]]:
    """Every case, memory and item search alternated query by query."""
    figures: dict[str, dict[str, Latency]] = {}
    for case, (memory_body, item_body) in CASES.items():
        memory_s: list[float] = []
        item_s: list[float] = []
        for i, text in enumerate(texts):
            unique = f"{text} ({case} {i})"
            memory = timed(lean, "/memories/search", {**memory_body, "query": unique + " m"})
            item = timed(lean, "/items/search", {**item_body, "query": unique + " i"})
            if i >= WARMUP:
                memory_s.append(memory)
                item_s.append(item)
        figures[case] = {"memories": Latency.of(memory_s), "items": Latency.of(item_s)}
        print(
            f"{case}: memories p50 {figures[case]['memories'].p50:.1f} ms, "
            f"items p50 {figures[case]['items'].p50:.1f} ms"
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    cfg = isolated_config()
    prepare_stores(cfg)
    with running_server(cfg) as server:
        key = server.create_key("items")
        with client(cfg, key) as http:
            started = time.perf_counter()
            texts, _topics = load(http, args.count)
            stored = time.perf_counter() - started
            print(f"stored {args.count:,} memories and {args.count:,} items in {stored:.0f} s")
        lean = LeanClient(cfg.base_url, key)
        try:
            figures = run(lean, texts)
        finally:
            lean.close()
    save_json(
        "items",
        {case: {k: v.__dict__ for k, v in f.items()} for case, f in figures.items()},
    )
    pre = preamble(command, load_start, time.perf_counter() - began)
    text = render(figures, args.count, stored, pre)
    put_section("items", text)
    print(text)
    return 0


def render(
    figures: dict[str, dict[str, Latency]], count: int, stored: float, pre: list[str]
) -> str:
    rows = []
    for case, f in figures.items():
        ratio = f["items"].p50 / f["memories"].p50
        rows.append(
            [
                case,
                f"{f['memories'].p50:.1f}",
                f"{f['memories'].p95:.1f}",
                f"{f['items'].p50:.1f}",
                f"{f['items'].p95:.1f}",
                f"{ratio:.2f}",
                "met" if ratio <= 1.1 else "not met",
            ]
        )
    out = [
        f"## Items beside memories: search over {count:,} of each",
        "",
        *pre,
        "",
        f"The same {count:,} texts stored as memories and as items of one tenant "
        f"({stored:.0f} s, embedded by the server); {QUERIES} query texts (after {WARMUP} "
        "warm-up ones), each searched as a memory search and as an item search in turn, with a "
        "suffix of its own so the query-embedding cache never answers. Items are spread over 8 "
        "namespaces under `corpus`; the prefix case searches one of them (an eighth of the "
        "items) against a memory search of the whole tenant.",
        "",
        *table(
            [
                "case",
                "memories p50 ms",
                "memories p95 ms",
                "items p50 ms",
                "items p95 ms",
                "items / memories p50",
                "target 1.1x",
            ],
            rows,
        ),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
