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


# The server's query-embedding micro-batching (SOMA_EMBEDDING_BATCH_MAX): off (every query
# embedded alone, as before it existed) and on (the default), measured in the same run.
VARIANTS = {"batching off": "1", "batching on": "32"}


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
    texts, warmups = texts[:-40], texts[-40:]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    used = 0
    for round_, n in enumerate(CLIENTS):
        # Alternate which variant runs first at each client count.
        order = list(VARIANTS) if round_ % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            with running_server(cfg, {"SOMA_EMBEDDING_BATCH_MAX": VARIANTS[name]}):
                with client(cfg, key) as http:
                    for text in warmups[:20] if name == order[0] else warmups[20:]:
                        search(http, text, "hybrid")
                fig = run_clients(cfg, key, n, args.seconds, texts[used:] or texts)
            used += fig["requests"] + fig["errors"] + n  # never asked again
            print(
                f"{name}, {n} clients: {fig['per_second']:.1f}/s, p95 {fig['latency'].p95:.0f} ms"
            )
            results[name].append(fig)
    save_json(
        "concurrency",
        [{**f, "latency": f["latency"].__dict__} for f in results["batching on"]],
    )
    pre = preamble(command, load_start, time.perf_counter() - began)
    text = render(results, args.count, args.seconds, stored, pre)
    put_section("concurrency", text)
    print(text)
    return 0


def render(
    results: dict[str, list[dict[str, Any]]],
    count: int,
    seconds: float,
    stored: float,
    pre: list[str],
) -> str:
    rows = []
    for name, figures in results.items():
        one = figures[0]["per_second"]
        rows += [
            [
                name,
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
        ]
    on, off = results["batching on"], results["batching off"]
    out = [
        f"## Concurrency: hybrid search over {count:,} memories, 1, 4 and 16 clients",
        "",
        *pre,
        "",
        f"{count:,} memories stored first ({stored:.0f} s, embedded by the server). Each client "
        f"is a thread with its own HTTP connection, searching back to back (default mode, "
        f"top 10) for {seconds:.0f} s; every request is a query text not asked before in the "
        "run, so the query-embedding cache never answers. One server process (uvicorn), on the "
        "same 2 cores as PostgreSQL, Milvus, Redis and this client, restarted for each row "
        "with query-embedding micro-batching off (`SOMA_EMBEDDING_BATCH_MAX=1`) or on (32, the "
        "default); the two alternate which runs first at each client count.",
        "",
        *table(
            [
                "variant",
                "clients",
                "requests",
                "searches/s",
                "vs 1 client",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
            ],
            rows,
        ),
        "",
        f"16 clients / 1 client, batching on: {on[-1]['per_second'] / on[0]['per_second']:.2f}x "
        f"(target >= 2x); off: {off[-1]['per_second'] / off[0]['per_second']:.2f}x. "
        f"One-client p50, on / off: {on[0]['latency'].p50 / off[0]['latency'].p50:.2f} "
        "(target 0.95 to 1.05). 16-client p95, on / off: "
        f"{on[-1]['latency'].p95:.0f} / {off[-1]['latency'].p95:.0f} ms.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
