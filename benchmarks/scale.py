"""Search latency as a tenant grows: ``.venv/bin/python benchmarks/scale.py [--sizes ...]``.

Memories with corpus texts and generated vectors (random unit vectors of the model's dimension,
sent in the client-supplied ``vector`` field, batches of 100 to stay under the 1 MiB body
limit) are stored through ``POST /memories/batch`` up to each size; at each size, searches in
vector mode (a generated query vector: Milvus and PostgreSQL only, no embedding) and in hybrid
mode (the query text plus a generated vector) are timed over HTTP.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from common import DIMENSION, Latency
from corpus import make_memories
from extra import (
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
from searches import index_state

SEED = 99
BATCH = 100
QUERIES = 200
INDEX_WAIT = 120.0


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    result: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return result


def wait_for_index(cfg: Any) -> str:
    """Wait (up to INDEX_WAIT) until Milvus reports no rows pending indexing."""
    deadline = time.monotonic() + INDEX_WAIT
    state = index_state(cfg)
    while "pending_index_rows 0" not in state and time.monotonic() < deadline:
        time.sleep(5)
        state = index_state(cfg)
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated sizes")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    rng = np.random.default_rng(SEED)
    texts = [m.text for m in make_memories(min(sizes[-1], 200_000), SEED)]
    cfg = isolated_config()
    prepare_stores(cfg)
    rows: list[dict[str, Any]] = []
    with running_server(cfg) as server:
        key = server.create_key("scale")
        with client(cfg, key) as http:
            stored = 0
            for size in sizes:
                started = time.perf_counter()
                while stored < size:
                    n = min(BATCH, size - stored)
                    vectors = unit_vectors(rng, n)
                    store_batch(
                        http,
                        [
                            {
                                "coord": f"{stored + j},{(stored + j) % 97},5",
                                "payload": {"text": texts[(stored + j) % len(texts)]},
                                "vector": vectors[j].tolist(),
                            }
                            for j in range(n)
                        ],
                    )
                    stored += n
                load_seconds = time.perf_counter() - started
                index = wait_for_index(cfg)
                qvectors = unit_vectors(rng, QUERIES + 10)
                qtexts = [texts[int(i)] for i in rng.integers(0, min(size, len(texts)), QUERIES)]
                for i in range(10):  # warm-up
                    search(http, qtexts[i], "vector", vector=qvectors[i].tolist())
                timings: dict[str, list[float]] = {"vector": [], "hybrid": []}
                for i in range(QUERIES):
                    for mode in timings:
                        vector = qvectors[10 + i].tolist()
                        started = time.perf_counter()
                        search(http, qtexts[i], mode, vector=vector)
                        timings[mode].append(time.perf_counter() - started)
                row = {
                    "size": size,
                    "load_seconds": load_seconds,
                    "index": index,
                    **{m: Latency.of(t) for m, t in timings.items()},
                }
                print(
                    f"{size:,}: vector p50 {row['vector'].p50:.1f} ms, "
                    f"hybrid p50 {row['hybrid'].p50:.1f} ms ({index})"
                )
                rows.append(row)
    save_json(
        "scale",
        [{**r, "vector": r["vector"].__dict__, "hybrid": r["hybrid"].__dict__} for r in rows],
    )
    text = render(rows, sizes, preamble(command, load_start, time.perf_counter() - began))
    put_section("scale", text)
    print(text)
    return 0


def render(rows: list[dict[str, Any]], sizes: list[int], pre: list[str]) -> str:
    base = rows[0]
    out = [
        "## Scale: search latency as the tenant grows",
        "",
        *pre,
        "",
        "Corpus texts with generated vectors (random unit vectors, client-supplied `vector`, "
        f"batches of {BATCH}) stored through `POST /memories/batch` up to each size; then "
        f"{QUERIES} searches per mode over HTTP, each with a generated query vector (no "
        "embedding: the Milvus and PostgreSQL parts of the search only), hybrid also with a "
        "stored text as the keyword query. Sequential, one client.",
        "",
        *table(
            [
                "memories",
                "load s",
                "vector p50 ms",
                "vector p95 ms",
                "hybrid p50 ms",
                "hybrid p95 ms",
                f"vector p50 / at {base['size']:,}",
                "Milvus index after load",
            ],
            [
                [
                    f"{r['size']:,}",
                    f"{r['load_seconds']:.0f}",
                    f"{r['vector'].p50:.1f}",
                    f"{r['vector'].p95:.1f}",
                    f"{r['hybrid'].p50:.1f}",
                    f"{r['hybrid'].p95:.1f}",
                    f"{r['vector'].p50 / base['vector'].p50:.2f}",
                    r["index"],
                ]
                for r in rows
            ],
        ),
        "",
    ]
    if 1_000_000 not in sizes:
        out += [
            "1,000,000 memories: not run (loading them through the API at this machine's rate "
            "would take far longer than the time this run had); the target p50(1M) ≤ 2x "
            "p50(10k) is therefore unmeasured.",
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
