"""The benchmark's figures as Markdown (benchmarks/RESULTS.md and stdout)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from common import BATCH, Latency
from searches import HTTPX_RUN, LIMIT, RUNS, TOP_K, Recall
from writes import CEILINGS, SERVICE, WriteFigures


@dataclass(frozen=True)
class Results:
    """Everything one run measured."""

    date: str
    revision: str
    command: str
    machine: dict[str, str]
    load: str
    count: int
    write: WriteFigures
    server_rss_mib: float
    queries: int
    http: dict[str, Latency]
    stages: dict[str, dict[str, Latency]]
    outside: dict[str, Latency]
    raw: dict[str, Latency]
    recall: dict[str, Recall]
    index: str
    elapsed: float


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f} %)" if whole else "n/a"


def _lat(label: str, x: Latency) -> list[str]:
    return [label, f"{x.p50:.1f}", f"{x.p95:.1f}", f"{x.p99:.1f}", f"{x.mean:.1f}"]


def _write(r: Results) -> list[str]:
    figures = r.write.throughput
    service = figures[SERVICE]
    embedding = figures["embed"]
    out = [
        f"## Write path: {r.count:,} memories, batches of {BATCH}",
        "",
        "Sequential requests. After each batch request, the same batch goes through each raw "
        "path alone (the same texts, or rows and entities of the same shape), so the service "
        "and its ceilings meet the same machine conditions.",
        "",
    ]
    rows = [
        ["service `POST /memories/batch`", f"{service.per_second:,.0f}", f"{service.seconds:.1f}"]
    ]
    rows += [
        [label, f"{figures[name].per_second:,.0f}", f"{figures[name].seconds:.1f}"]
        for name, label in CEILINGS.items()
    ]
    out += _table(["path", "memories/s", "seconds"], rows)
    batch = r.write.batch_seconds
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(r.write.stages.items()))
    staged = sum(r.write.stages.values())
    out += [
        "",
        f"**Service / embedding ceiling: {service.per_second / embedding.per_second:.2f}** "
        f"({service.per_second:,.0f} vs {embedding.per_second:,.0f} memories/s).",
        "",
        f"- Per batch request: first {batch[0]:.2f} s, median {statistics.median(batch):.2f} s, "
        f"last {batch[-1]:.2f} s, slowest {max(batch):.2f} s.",
        f"- The service's own stage times over all batches (`Server-Timing`): {stages or 'n/a'}; "
        f"the rest of its {service.seconds:.1f} s (request parsing and validation, key lookup, "
        f"transport): {service.seconds - staged:.1f} s.",
        f"- Server resident memory after the writes: {r.server_rss_mib:,.0f} MiB.",
        "",
    ]
    return out


def _search(r: Results) -> list[str]:
    raw = r.raw
    vector_sum = raw["embed"].p50 + raw["milvus"].p50 + raw["fetch"].p50
    hybrid_sum = vector_sum + raw["keyword"].p50
    out = [
        f"## Search: {r.queries} queries a mode over {r.count:,} memories, top_k {TOP_K}, "
        "sequential",
        "",
        "Queries go in pairs of texts never asked before (the service caches query vectors in "
        "Redis by text): the first in vector mode, the second in the default mode (hybrid), "
        "then the second once more (its vector now cached); then both through the raw calls "
        "on the benchmark's own clients. Half the queries of each mode are stored texts, half "
        "paraphrase questions. Every figure below comes from the same minutes of the run; "
        f"the raw rows are over all {2 * r.queries} texts.",
        "",
        "The HTTP searches go through a keep-alive connection of the standard library "
        "(`http.client`), as lean as the raw calls' own clients (psycopg, pymilvus). The "
        "`httpx` row asks each vector query once more through httpx (the Python client's "
        "library), with ` ?` appended so that its vector is not cached: the difference is "
        "what that client library costs.",
        "",
    ]
    out += _table(
        ["call", "p50 ms", "p95 ms", "p99 ms", "mean ms"],
        [
            _lat('HTTP `POST /memories/search`, `"mode": "vector"`', r.http["vector"]),
            _lat("HTTP `POST /memories/search`, default mode (hybrid)", r.http["hybrid"]),
            _lat(
                "the same hybrid query again (query vector from the cache)",
                r.http["hybrid, repeated"],
            ),
            _lat("HTTP vector mode again, through `httpx` (a text of its own)", r.http[HTTPX_RUN]),
            _lat("raw: API-key lookup (PostgreSQL)", raw["auth"]),
            _lat("raw: query embedding (`Embedder.embed_one`)", raw["embed"]),
            _lat(f"raw: Milvus search, `tenant_id == X`, limit {LIMIT}, Session", raw["milvus"]),
            _lat(f"raw: PostgreSQL fetch of the {LIMIT} hits' rows by id", raw["fetch"]),
            _lat(f"raw: PostgreSQL full-text query, limit {LIMIT} (hybrid)", raw["keyword"]),
        ],
    )
    out += [
        "",
        f"**Vector mode: HTTP p50 / sum of raw p50s (embedding + Milvus + fetch) = "
        f"{r.http['vector'].p50 / vector_sum:.2f}** "
        f"({r.http['vector'].p50:.1f} ms vs {vector_sum:.1f} ms).",
        "",
        f"Hybrid: HTTP p50 / sum of raw p50s (the same + full-text query) = "
        f"{r.http['hybrid'].p50 / hybrid_sum:.2f} "
        f"({r.http['hybrid'].p50:.1f} ms vs {hybrid_sum:.1f} ms).",
        "",
        "Inside the server (its `Server-Timing` header, p50 ms per stage; `postgres` is every "
        "PostgreSQL call of the search; `outside` is the HTTP time in no stage: key lookup, "
        "rate limit, query-vector cache, framework, serialisation, transport):",
        "",
    ]
    runs = [run for run, _mode, _which in RUNS]
    names = sorted({name for run in runs for name in r.stages[run]})
    rows = [
        [name, *(_stage_p50(r.stages[run].get(name), r.http[run].n) for run in runs)]
        for name in names
    ]
    rows.append(["outside", *(_p50(r.outside[run]) for run in runs)])
    out += _table(["stage", *runs], rows)
    out += ["", "Recall of the memory each query came from:", ""]
    out += _table(
        [
            "mode",
            "exact text ranked first",
            "paraphrase ranked first",
            f"paraphrase in top {TOP_K}",
        ],
        [
            [
                mode,
                _pct(rc.exact_first, rc.exact_total),
                _pct(rc.paraphrase_first, rc.paraphrase_total),
                _pct(rc.paraphrase_top10, rc.paraphrase_total),
            ]
            for mode, rc in r.recall.items()
        ],
    )
    out += [
        "",
        "A paraphrase question names fewer details than its memory, so several memories can "
        "answer it equally well; only the exact-text rate should be 100 %.",
        "",
        f"Milvus index at search time: {r.index or 'n/a'}.",
        "",
    ]
    return out


def _stage_p50(x: Latency | None, requests: int) -> str:
    """A stage's p50, and in how many of the run's requests it was, when not in all (the
    repeated hybrid query embeds only when its cache lookup answers after the embedding)."""
    if x is None or x.n == requests:
        return _p50(x)
    return f"{_p50(x)} (in {x.n} of {requests})"


def _p50(x: Latency | None) -> str:
    return f"{x.p50:.1f}" if x else ""


def render(r: Results) -> str:
    """The report."""
    out = [
        "# SomaFractalMemory benchmarks",
        "",
        f"- Date: {r.date}",
        f"- Command: `{r.command}` (from the repository root; also step 1 of `make bench`)",
        f"- Code: {r.revision}",
        f"- Run time: {r.elapsed:.0f} s; load average at start and end: {r.load}",
        "",
        "## Machine",
        "",
        *_table(list(r.machine), [list(r.machine.values())]),
        "",
        "The server (uvicorn, one process), PostgreSQL, Redis, Milvus and this script share "
        "the machine, with whatever else runs on it.",
        "",
        *_write(r),
        *_search(r),
        "## Method",
        "",
        "- Isolated stack: database `soma_bench` (migrated, emptied), Milvus collection "
        "`soma_bench_memories` (dropped first), Redis db 14 (flushed); the real server "
        "(`uvicorn somafractalmemory.http_api:app`, port 9696) started and stopped by the script.",
        "- Texts: template sentences filled with seeded random words, all distinct "
        "(`benchmarks/corpus.py`); half the queries are stored texts, half paraphrase questions.",
        "- Warm-up before timing: 200 memories and 20 searches under a separate tenant, 20 "
        "queries of the timed kind under `bench`, and a warm-up round of every raw call.",
        "- Raw calls ask what the service asks: the same limit and search parameters in Milvus, "
        "the same full-text expression in PostgreSQL, the same columns fetched.",
        "- PostgreSQL ceilings write into `CREATE TEMP TABLE ... (LIKE records INCLUDING ALL)` "
        "(same columns, generated tsvector, GIN and unique indexes), one transaction a batch; "
        "Milvus ceilings into a scratch collection made by the service's `ensure_collection`.",
        "- Times from `time.perf_counter`; percentiles with `statistics.quantiles` (inclusive).",
        "",
    ]
    return "\n".join(out)
