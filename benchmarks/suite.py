"""Every benchmark in turn: ``.venv/bin/python benchmarks/suite.py [--quick]`` (``make bench``,
``make bench-quick``).

1. run.py: write path and search latency beside the raw calls (10,000 memories; 2,000 quick);
2. quality.py: LoCoMo Recall@10 / MRR@10 / nDCG@10 per mode beside the baselines;
3. freshness.py (full run only): store-then-search misses, write-to-searchable lag under load;
4. concurrency.py (full run only): 1, 4 and 16 clients of hybrid search over 10,000 memories;
5. scale.py (full run only): search p50/p95 as the tenant grows;
6. load.py (full run only): 20 clients mixing stores, searches, gets and deletes for 60 s,
   then the check that nothing acknowledged was lost;
7. history.py: the history trigger's write cost, the supersession filter's search cost and
   history's bytes per version (10,000 memories x 3 versions; 2,000 quick);
8. context.py (full run only): LoCoMo evidence inside ``POST /context`` at 500 to 4,000 tokens
   beside packed baselines, and its latency beside a hybrid search;
9. tenants.py (full run only): a small tenant's search p50 at 100 and 100,000 tenants, and the
   stores' memory;
10. plot.py: benchmarks/results.png from the figures of the steps above.

run.py rewrites benchmarks/RESULTS.md; the sections of the other steps are then put back (each
step writes its own; a step not run this time keeps its previous section, dated).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from extra import HERE, RESULTS, put_section

SECTION = re.compile(r"<!-- section:([\w-]+) -->\n(.*?)\n<!-- /section:\1 -->", re.DOTALL)


# plot.py needs matplotlib, which lives in the tools venv (`make bench` passes its python), not
# in .venv.
PLOT_PYTHON = os.environ.get("SOMA_PLOT_PYTHON", sys.executable)


def step(script: str, *args: str, python: str = sys.executable) -> None:
    command = [python, "-u", str(HERE / script), *args]
    print(f"\n=== {' '.join(command)}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=True)
    print(f"=== {script}: {time.perf_counter() - started:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="the 10k, quality and history (2k) parts only"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    # Every marked section of RESULTS.md (these modules' and others', e.g. load.py's).
    current = RESULTS.read_text() if RESULTS.exists() else ""
    saved = dict(SECTION.findall(current))
    step("run.py", *(["--quick"] if args.quick else []))
    for name, text in saved.items():  # run.py rewrote the file: put the last sections back
        put_section(name, text)
    step("quality.py")
    # --quick: freshness, concurrency, scale and load keep their last sections. Concurrency left
    # the quick run when a slower machine took it past 10 minutes (its 10,000 memories are
    # embedded by the server first: 67 s of its 116 s there).
    if not args.quick:
        step("freshness.py")
        step("concurrency.py")
        step("scale.py")
        step("load.py", "--results", str(RESULTS))
    step("history.py", *(["--quick"] if args.quick else []))
    if not args.quick:
        step("context.py")
        step("tenants.py")
    step("plot.py", python=PLOT_PYTHON)
    print(f"\nsuite: {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
