"""Concurrent hybrid search: ``.venv/bin/python benchmarks/concurrency.py``.

10,000 memories in one tenant (stored through ``POST /memories/batch``, embedded by the server);
then 1, 4 and 16 clients (threads, an HTTP connection each) issue default-mode (hybrid) searches
back to back for a fixed time each. Every request is a distinct query text (stored texts and
paraphrase questions), so the server's query-embedding cache never answers.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from common import Latency
from corpus import make_memories, make_queries
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

SEED = 777
CLIENTS = (1, 4, 16)
BATCH = 500


def load(http: Any, count: int, seed: int) -> list[str]:
    """Store ``count`` corpus memories; the distinct query texts for them."""
    memories = make_memories(count, seed)
    for i in range(0, count, BATCH):
        store_batch(
            http,
            [
                {"coord": m.coord, "payload": {"text": m.text}, "memory_type": m.memory_type}
                for m in memories[i : i + BATCH]
            ],
        )
    queries = make_queries(memories, count, seed + 1)
    texts = [q.text for q in queries] + [q.target.paraphrase for q in queries if q.exact]
    return list(dict.fromkeys(texts))


def run_clients(cfg: Any, key: str, n: int, seconds: float, texts: list[str]) -> dict[str, Any]:
    """``n`` threads searching for ``seconds``; throughput and latency."""
    lock = threading.Lock()
    cursor = [0]
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    def next_text() -> str:
        with lock:  # wraps round (and the query cache then answers) only if texts run out
            text = texts[cursor[0] % len(texts)]
            cursor[0] += 1
            return text

    def worker() -> None:
        mine: list[float] = []
        with client(cfg, key) as http:
            while time.perf_counter() < deadline:
                text = next_text()
                started = time.perf_counter()
                try:
                    search(http, text, "hybrid")
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(str(exc)[:200])
                    continue
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return {
        "clients": n,
        "requests": len(latencies),
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "latency": Latency.of(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="per client count")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    load_start = uptime()
    command = command_line()
    cfg = isolated_config()
    prepare_stores(cfg)
    with running_server(cfg) as server:
        key = server.create_key("concurrency")
        with client(cfg, key) as http:
            started = time.perf_counter()
            texts = load(http, args.count, SEED)
            stored = time.perf_counter() - started
            print(f"stored {args.count:,} in {stored:.0f} s")
            for text in texts[-20:]:  # warm-up, not reused below
                search(http, text, "hybrid")
        texts = texts[:-20]
        figures: list[dict[str, Any]] = []
        for n in CLIENTS:
            used = sum(f["requests"] + f["errors"] + n for f in figures)  # never asked again
            fig = run_clients(cfg, key, n, args.seconds, texts[used:] or texts)
            print(f"{n} clients: {fig['per_second']:.1f}/s, p95 {fig['latency'].p95:.0f} ms")
            figures.append(fig)
    save_json("concurrency", [{**f, "latency": f["latency"].__dict__} for f in figures])
    pre = preamble(command, load_start, time.perf_counter() - began)
    text = render(figures, args.count, args.seconds, stored, pre)
    put_section("concurrency", text)
    print(text)
    return 0


def render(
    figures: list[dict[str, Any]], count: int, seconds: float, stored: float, pre: list[str]
) -> str:
    one = figures[0]["per_second"]
    out = [
        f"## Concurrency: hybrid search over {count:,} memories, 1, 4 and 16 clients",
        "",
        *pre,
        "",
        f"{count:,} memories stored first ({stored:.0f} s, embedded by the server). Each client "
        f"is a thread with its own HTTP connection, searching back to back (default mode, "
        f"top 10) for {seconds:.0f} s; every request is a query text not asked before in the "
        "run, so the query-embedding cache never answers. One server process (uvicorn), on the "
        "same 2 cores as PostgreSQL, Milvus, Redis and this client.",
        "",
        *table(
            [
                "clients",
                "requests",
                "searches/s",
                "vs 1 client",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
            ],
            [
                [
                    str(f["clients"]),
                    f"{f['requests']:,}",
                    f"{f['per_second']:.1f}",
                    f"{f['per_second'] / one:.2f}",
                    f"{f['latency'].p50:.0f}",
                    f"{f['latency'].p95:.0f}",
                    f"{f['latency'].p99:.0f}",
                    str(f["errors"]),
                ]
                for f in figures
            ],
        ),
        "",
        "On 2 shared cores the query embedding (CPU-bound) is the ceiling: more clients add "
        "queueing to the latency rather than throughput.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
