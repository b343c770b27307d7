"""The benchmark's figures as Markdown (benchmarks/RESULTS.md and stdout)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from common import BATCH, Latency
from searches import HTTPX_RUN, LIMIT, RUNS, TOP_K, Recall, TwinSearch
from writes import CEILINGS, SERVICE, WriteFigures

PHASES = ("growing", "indexed")


@dataclass(frozen=True)
class SearchPhase:
    """The search figures in one state of the Milvus index (see run.search_phase)."""

    index_before: str
    index_after: str
    index_wait: float
    http: dict[str, Latency]
    stages: dict[str, dict[str, Latency]]
    outside: dict[str, Latency]
    raw: dict[str, Latency]
    recall: dict[str, Recall]

    def raw_sum(self, mode: str) -> float:
        """The sum of the raw p50s of the calls ``mode`` makes (vector: embedding + Milvus +
        fetch; hybrid: the same + the full-text query)."""
        calls = ("embed", "milvus", "fetch") + (("keyword",) if mode == "hybrid" else ())
        return sum(self.raw[c].p50 for c in calls)

    def ratio(self, mode: str) -> float:
        return self.http[mode].p50 / self.raw_sum(mode)


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
    search: dict[str, SearchPhase]
    twin: TwinSearch
    stack: str
    elapsed: float


def search_figures(r: Results) -> dict[str, object]:
    """The figures plot.py draws and checks (benchmarks/results/search.json)."""
    figures = r.write.throughput
    return {
        "count": r.count,
        "write_ratio": figures[SERVICE].per_second / figures["embed"].per_second,
        "phases": {
            phase: {
                "index": p.index_before,
                "p50": {
                    **{f"HTTP {m}": p.http[m].p50 for m in ("vector", "hybrid")},
                    **{c: p.raw[c].p50 for c in ("embed", "milvus", "fetch", "keyword")},
                },
                "ratio": {
                    m: [p.ratio(m), p.http[m].p50, p.raw_sum(m)] for m in ("vector", "hybrid")
                },
            }
            for phase, p in r.search.items()
        },
        "twin": {
            "indexed_p50": Latency.of(r.twin.indexed).p50,
            "growing_p50": Latency.of(r.twin.growing).p50,
            "overlap": r.twin.overlap,
        },
    }


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
    indexed = r.search["indexed"]
    out = [
        f"## Search: {r.queries} queries a mode over {r.count:,} memories, top_k {TOP_K}, "
        "sequential, before and after the index is built",
        "",
        "Queries go in pairs of texts never asked before (the service caches query vectors in "
        "Redis by text): the first in vector mode, the second in the default mode (hybrid), "
        "then the second once more (its vector now cached); then both through the raw calls "
        "on the benchmark's own clients. Half the queries of each mode are stored texts, half "
        "paraphrase questions. The raw rows are over all "
        f"{2 * r.queries} texts.",
        "",
        "The same queries run twice, in two states of Milvus's index. **Growing**: right "
        "after the writes, as a service sees its recent writes; Milvus has sealed none of "
        "these rows, so its HNSW index holds none of them and every vector search goes through "
        "the interim index over growing segments (IVF_FLAT; the `nprobe` set on the server, "
        "64 in scripts/milvus.sh). **Indexed**: the collection is then flushed and the "
        f"benchmark waits until HNSW covers every row ({indexed.index_wait:.0f} s), empties "
        "the Redis query-vector cache (so the same texts are embedded again) and asks the "
        "same queries again. The index state is read (`describe_index` and `count(*)`) at the "
        "start and the end of each run:",
        "",
        *(
            f"- {phase}: at the start {p.index_before}; at the end {p.index_after}"
            for phase, p in r.search.items()
        ),
        "",
        "The HTTP searches go through a keep-alive connection of the standard library "
        "(`http.client`), as lean as the raw calls' own clients (psycopg, pymilvus). The "
        "`httpx` row asks each vector query once more through httpx (the Python client's "
        "library), with ` ?` appended so that its vector is not cached: the difference is "
        "what that client library costs.",
        "",
    ]
    calls = [
        ('HTTP `POST /memories/search`, `"mode": "vector"`', "http", "vector"),
        ("HTTP `POST /memories/search`, default mode (hybrid)", "http", "hybrid"),
        ("the same hybrid query again (query vector from the cache)", "http", "hybrid, repeated"),
        ("HTTP vector mode again, through `httpx` (a text of its own)", "http", HTTPX_RUN),
        ("raw: API-key lookup (PostgreSQL)", "raw", "auth"),
        ("raw: query embedding (`Embedder.embed_one`)", "raw", "embed"),
        (f"raw: Milvus search, `tenant_id == X`, limit {LIMIT}, Session", "raw", "milvus"),
        (f"raw: PostgreSQL fetch of the {LIMIT} hits' rows by id", "raw", "fetch"),
        (f"raw: PostgreSQL full-text query, limit {LIMIT} (hybrid)", "raw", "keyword"),
    ]
    rows = []
    for label, kind, name in calls:
        cells = [label]
        for phase in PHASES:
            x = getattr(r.search[phase], kind)[name]
            cells += [f"{x.p50:.1f}", f"{x.p95:.1f}", f"{x.p99:.1f}"]
        rows.append(cells)
    out += _table(
        [
            "call",
            *(f"{phase} {q} ms" for phase in PHASES for q in ("p50", "p95", "p99")),
        ],
        rows,
    )
    twin_indexed, twin_growing = Latency.of(r.twin.indexed), Latency.of(r.twin.growing)
    out += [
        "",
        "The two runs are minutes apart on a shared machine, so their difference mixes the "
        "index with the machine's load (compare the embedding rows, which the index does not "
        "touch). For the index alone, the raw Milvus search again, interleaved: every entity "
        "of the indexed collection copied into a twin collection (the service's schema and "
        f"index; {r.twin.twin}), then, for each of the {len(r.twin.indexed)} texts, the "
        "tenant's search on the indexed collection and on the twin in turn, with the same "
        "query vector:",
        "",
        *_table(
            ["raw Milvus search, limit " + str(LIMIT), "p50 ms", "p95 ms", "p99 ms"],
            [
                ["indexed collection (HNSW)", *_cells(twin_indexed)],
                ["growing twin (interim index)", *_cells(twin_growing)],
            ],
        ),
        "",
        f"**Indexed / growing p50: {twin_indexed.p50 / twin_growing.p50:.2f}**; mean share "
        f"of the indexed top {TOP_K} also in the growing twin's top {TOP_K}: "
        f"{r.twin.overlap:.3f}.",
        "",
    ]
    for mode, label in (("vector", "Vector mode"), ("hybrid", "Hybrid")):
        sums = "embedding + Milvus + fetch" if mode == "vector" else "the same + full-text query"
        bold = "**" if mode == "vector" else ""
        out += [
            f"{bold}{label}: HTTP p50 / sum of raw p50s ({sums}): "
            + "; ".join(
                f"{phase} {p.ratio(mode):.2f} ({p.http[mode].p50:.1f} ms vs "
                f"{p.raw_sum(mode):.1f} ms)"
                for phase, p in r.search.items()
            )
            + f".{bold}",
            "",
        ]
    out += [
        "Inside the server (its `Server-Timing` header, p50 ms per stage; `postgres` is every "
        "PostgreSQL call of the search; `outside` is the HTTP time in no stage: key lookup, "
        "rate limit, query-vector cache, framework, serialisation, transport):",
        "",
    ]
    runs = [run for run, _mode, _which in RUNS]
    names = sorted({name for p in r.search.values() for run in runs for name in p.stages[run]})
    header = ["stage", *(f"{run} ({phase})" for run in runs for phase in PHASES)]
    rows = [
        [
            name,
            *(
                _stage_p50(r.search[phase].stages[run].get(name), r.search[phase].http[run].n)
                for run in runs
                for phase in PHASES
            ),
        ]
        for name in names
    ]
    rows.append(["outside", *(_p50(r.search[ph].outside[run]) for run in runs for ph in PHASES)])
    out += _table(header, rows)
    out += ["", "Recall of the memory each query came from:", ""]
    out += _table(
        [
            "mode",
            "index",
            "exact text ranked first",
            "paraphrase ranked first",
            f"paraphrase in top {TOP_K}",
        ],
        [
            [
                mode,
                phase,
                _pct(rc.exact_first, rc.exact_total),
                _pct(rc.paraphrase_first, rc.paraphrase_total),
                _pct(rc.paraphrase_top10, rc.paraphrase_total),
            ]
            for mode in r.search["growing"].recall
            for phase in PHASES
            for rc in [r.search[phase].recall[mode]]
        ],
    )
    out += [
        "",
        "A paraphrase question names fewer details than its memory, so several memories can "
        "answer it equally well; only the exact-text rate should be 100 %.",
        "",
    ]
    return out


def _cells(x: Latency) -> list[str]:
    return [f"{x.p50:.1f}", f"{x.p95:.1f}", f"{x.p99:.1f}"]


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
        f"- Command: `{r.command}` (from the repository root; step 1 of "
        "`benchmarks/suite.py`, which `make bench` and `make bench-quick` run)",
        f"- Code: {r.revision}",
        f"- Run time: {r.elapsed:.0f} s; load average at start and end: {r.load}",
        "",
        "The write and search sections come from this run. Every later section (between "
        "`<!-- section:... -->` markers) names its own date, command and commit: a suite run "
        "rewrites the sections of the steps it ran and keeps the others as they were, so "
        "sections can come from different runs and commits.",
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
        f"- Isolated stack: {r.stack}, started and stopped by the script.",
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
