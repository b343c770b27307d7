"""benchmarks/results.png from the last figures (``make bench`` runs it with
``.cache/tools-venv/bin/python``, the tools venv, which has matplotlib).

Reads benchmarks/results/*.json (search, quality, concurrency, freshness, scale) and links the
picture from RESULTS.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from extra import DATA, HERE, put_section
from quality_report import HYBRID_TARGET, vector_ratio

PNG = HERE / "results.png"
SYSTEMS = ("vector", "keyword", "hybrid", "exact", "bm25", "exact+bm25 rrf")
LABELS = ("SFM\nvector", "SFM\nkeyword", "SFM\nhybrid", "exact\ncosine", "BM25", "exact+BM25\nRRF")


def empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", transform=ax.transAxes)
    ax.axis("off")


def load(name: str) -> Any:
    path = DATA / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def latency_panel(ax: Any, search: Any) -> None:
    if not search:
        empty(ax, "no search figures (run run.py)")
        return
    p = search["phases"]["indexed"]["p50"]
    parts = [("embed", "#8da0cb"), ("milvus", "#66c2a5"), ("fetch", "#fc8d62")]
    xs = [0, 1, 3, 4]
    http = [p["HTTP vector"], p["HTTP hybrid"]]
    ax.bar([xs[0], xs[2]], http, color="#555555", label="HTTP (whole search)")
    for mode_x, with_keyword in ((xs[1], False), (xs[3], True)):
        bottom = 0.0
        stack = parts + ([("keyword", "#e78ac3")] if with_keyword else [])
        for name, color in stack:
            ax.bar(mode_x, p[name], bottom=bottom, color=color, label=f"raw: {name}")
            bottom += p[name]
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper center")
    ax.set_ylim(0, max(http) * 1.45)  # room for the legend above the bars
    ax.set_xticks(xs, ["vector\nHTTP", "vector\nraw calls", "hybrid\nHTTP", "hybrid\nraw calls"])
    ax.set_ylabel("p50 latency, ms")
    ax.set_title("Search p50 (run.py section, index built): service vs its raw calls")


def quality_panel(ax: Any, quality: Any) -> None:
    if not quality:
        empty(ax, "no quality figures")
        return
    setups = list(quality)
    width = 0.8 / len(setups)
    colors = ("#1f77b4", "#ff7f0e")
    for j, setup in enumerate(setups):
        values = [quality[setup]["indexed"]["systems"][s]["ndcg"] for s in SYSTEMS]
        xs = [i + (j - (len(setups) - 1) / 2) * width for i in range(len(SYSTEMS))]
        bars = ax.bar(xs, values, width, label=setup, color=colors[j % 2])
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
    top = max(quality[s]["indexed"]["systems"][n]["ndcg"] for s in setups for n in SYSTEMS)
    ax.set_ylim(0, top * 1.25)
    ax.axvline(2.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(SYSTEMS)), LABELS, fontsize=7)
    ax.set_ylabel("nDCG@10")
    ax.set_title("LoCoMo nDCG@10, index built: SFM modes (left) vs baselines (right)")
    ax.legend(fontsize=7, loc="upper left")


def concurrency_panel(ax: Any, conc: Any) -> None:
    if not conc:
        empty(ax, "no concurrency figures")
        return
    clients = [c["clients"] for c in conc]
    ax.plot(clients, [c["per_second"] for c in conc], "o-", color="#2ca02c")
    ax.set_xscale("log", base=2)
    ax.set_xticks(clients, [str(c) for c in clients])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("hybrid searches / s", color="#2ca02c")
    twin = ax.twinx()
    twin.plot(clients, [c["latency"]["p95"] for c in conc], "s--", color="#d62728")
    twin.set_ylabel("p95 latency, ms", color="#d62728")
    ax.set_title("Concurrency: throughput (solid) and p95 (dashed)")


def last_panel(ax: Any, scale: Any, fresh: Any) -> None:
    if scale:
        sizes = [r["size"] for r in scale]
        for mode, style, color in (("vector", "o", "#1f77b4"), ("hybrid", "s", "#2ca02c")):
            p50 = [r[mode]["p50"] for r in scale]
            p95 = [r[mode]["p95"] for r in scale]
            ax.plot(sizes, p50, style + "-", color=color, label=f"{mode} p50")
            ax.plot(sizes, p95, style + "--", color=color, alpha=0.45, label=f"{mode} p95")
        ax.set_xscale("log")
        ax.set_xlabel("memories in the tenant (generated vectors)")
        ax.set_ylabel("ms")
        ax.legend(fontsize=7)
        ax.set_title("Scale: search latency without embedding")
    elif fresh:
        lag = fresh["lag"]["lag_ms"]
        ax.bar(["lag p50", "lag p95"], [lag["p50"], lag["p95"]], color="#9467bd")
        ax.axhline(1000, color="red", ls="--", label="target p95 1 s")
        ax.set_ylabel("ms")
        ax.set_title("Write-to-searchable lag under load")
        ax.legend(fontsize=7)
    else:
        empty(ax, "no scale or freshness figures")


def targets(search: Any, quality: Any, fresh: Any, scale: Any) -> list[str]:
    """One line per target of the issue these sections measure: met, not met, or not run."""
    out = []
    for phase, figures in (search or {}).get("phases", {}).items():
        for mode, (ratio, http, raw) in figures["ratio"].items():
            out.append(
                f"- search p50 over HTTP / raw calls, {mode}, {search['count']:,} memories, "
                f"{phase} ({figures['index']}): {ratio:.2f} ({http:.1f} vs {raw:.1f} ms; "
                f"{'met' if ratio <= 1.3 else 'NOT met'}, target <= 1.3)"
            )
    if search:
        batch = search["write_ratio"]
        out.append(
            f"- batch store / embedding-only throughput: {batch:.2f} "
            f"({'met' if batch >= 0.8 else 'NOT met'}, target >= 0.8)"
        )
    else:
        out.append("- search and write path: not run")
    for setup, phases in (quality or {}).items():
        for phase, fig in phases.items():
            ratio = vector_ratio(fig)
            out.append(
                f"- LoCoMo, {setup}, {phase} ({fig['index']}): vector Recall@10 / exact = "
                f"{ratio:.3f} ({'met' if ratio >= 0.98 else 'NOT met'}, target >= 0.98)"
            )
        sy = phases["indexed"]["systems"]
        for base in ("exact", "bm25", "exact+bm25 rrf"):
            h, b = sy["hybrid"]["ndcg"], sy[base]["ndcg"]
            out.append(
                f"- LoCoMo, {setup}, indexed: hybrid nDCG@10 {h:.3f} vs {base} {b:.3f}: "
                f"{'met' if h > b else 'NOT met'} (target: above)"
            )
        h = sy["hybrid"]["ndcg"]
        if setup in HYBRID_TARGET:
            out.append(
                f"- LoCoMo, {setup}, indexed: hybrid nDCG@10 {h:.3f}: "
                f"{'met' if round(h, 3) >= HYBRID_TARGET[setup] else 'NOT met'} "
                f"(target >= {HYBRID_TARGET[setup]})"
            )
        for mode in ("keyword", "vector"):
            m = sy[mode]["ndcg"]
            out.append(
                f"- LoCoMo, {setup}, indexed: hybrid nDCG@10 {h:.3f} vs {mode} mode {m:.3f}: "
                f"{'met' if h >= m else 'NOT met'} (target: at least)"
            )
    if not quality:
        out.append("- LoCoMo quality: not run")
    if fresh:
        misses = sum(fresh["pairs"]["misses"].values())
        n = fresh["pairs"]["n"]
        out.append(
            f"- store-then-search misses: {misses} in {n:,} pairs "
            f"({'met' if misses == 0 else 'NOT met'}, target 0 in 1,000"
            + ("" if n >= 1000 else f"; only {n:,} pairs in this run")
            + ")"
        )
        lag = fresh["lag"]["lag_ms"]
        if lag:
            ok = lag["p95"] <= 1000 and not fresh["lag"]["timeouts"]
            out.append(
                f"- write-to-searchable lag p95 under load: {lag['p95']:.0f} ms "
                f"({'met' if ok else 'NOT met'}, target <= 1 s)"
            )
    else:
        out.append("- freshness: not run")
    sizes = {r["size"]: r for r in scale or []}
    if 1_000_000 in sizes and 10_000 in sizes:
        for mode in ("vector", "keyword", "hybrid", "vector, embedded"):
            if mode not in sizes[1_000_000] or mode not in sizes[10_000]:
                continue
            ratio = sizes[1_000_000][mode]["p50"] / sizes[10_000][mode]["p50"]
            out.append(
                f"- p50 at 1M / p50 at 10k, {mode}: {ratio:.2f} "
                f"({'met' if ratio <= 2 else 'NOT met'}, target <= 2)"
            )
    else:
        out.append("- p50 at 1M / p50 at 10k: not measured (1M not run)")
    if 100_000 in sizes and "vector, embedded" in sizes[100_000]:
        row = sizes[100_000]
        p50 = row["vector, embedded"]["p50"]
        floor = ""
        if "raw" in row:
            raw = row["raw"]
            total = sum(raw[c]["p50"] for c in ("embed", "milvus, embedded", "fetch"))
            floor = f"; its raw calls alone: {total:.1f} ms"
        out.append(
            f"- 100k memories: vector-mode p50 {p50:.1f} ms with the query embedded "
            f"({'met' if p50 <= 15 else 'NOT met'}, target <= 15 ms{floor})"
        )
    elif 100_000 in sizes:
        out.append(
            f"- 100k memories: vector-mode p50 {sizes[100_000]['vector']['p50']:.1f} ms "
            "without the query embedding (the target of 15 ms includes the embedding, which "
            "run.py measures; see the search section)"
        )
    return out


def main() -> int:
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    latency_panel(axes[0][0], load("search"))
    quality_panel(axes[0][1], load("quality"))
    concurrency_panel(axes[1][0], load("concurrency"))
    last_panel(axes[1][1], load("scale"), load("freshness"))
    fig.suptitle("SomaFractalMemory benchmarks (2 shared cores; see RESULTS.md)")
    fig.tight_layout()
    fig.savefig(PNG, dpi=110)
    put_section(
        "plot",
        "## Plot and targets of the sections above\n\n"
        "![search latency, LoCoMo quality, concurrency, scale](results.png)\n\n"
        "`benchmarks/results.png` (`make bench` runs `benchmarks/plot.py` with\n"
        "`.cache/tools-venv/bin/python`), drawn from the figures of the sections above\n"
        "(`benchmarks/results/*.json`).\n\n"
        + "\n".join(targets(load("search"), load("quality"), load("freshness"), load("scale"))),
    )
    print(PNG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
