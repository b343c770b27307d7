"""Shared parts of the quality, freshness, concurrency and scale benchmarks.

They run on a stack of their own (database ``soma_bench_q``, collections ``soma_bench_q_*``,
Redis db 7, port 9697; ``SOMA_BENCH_STACK`` and friends rename it, see
:func:`common.config_from_env`), so they never touch the write/search benchmark's stack,
and each writes its own section of benchmarks/RESULTS.md between markers, leaving the rest of
the file as it is.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from common import BenchConfig, config_from_env, machine, revision

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
CACHE = HERE / ".cache"
DATA = HERE / "results"
TOP_K = 10


def isolated_config() -> BenchConfig:
    """The benchmark stack of these modules: ``soma_bench_q``, Redis db 7, port 9697, unless
    ``SOMA_BENCH_STACK`` and friends name another (:func:`common.config_from_env`)."""
    return config_from_env("soma_bench_q", "7", 9697)


def uptime() -> str:
    """``uptime``'s line (load averages over 1, 5 and 15 minutes)."""
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


# Environment variables that change what a benchmark runs or where: shown in its command.
COMMAND_ENV = ("PYTHONPATH", "SOMA_BENCH_STACK", "SOMA_BENCH_REDIS_DB", "SOMA_BENCH_PORT")


def command_line() -> str:
    """This process's command line, as typed from the repository root, with the variables
    of :data:`COMMAND_ENV` that are set."""
    here = os.getcwd()
    python = os.path.relpath(sys.executable) if sys.executable.startswith(here) else "python"
    script = os.path.relpath(sys.argv[0]) if sys.argv[0].startswith(here) else sys.argv[0]
    env = [f"{name}={os.environ[name]}" for name in COMMAND_ENV if name in os.environ]
    return shlex.join([*env, python, script, *sys.argv[1:]])


def preamble(command: str, load_start: str, elapsed: float) -> list[str]:
    """Date, command, code, machine and load lines for the top of a section."""
    facts = machine()
    return [
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}` (from the repository root)",
        f"- Code: {revision()}",
        f"- Machine: {facts['nproc']} CPUs ({facts['CPU']}), {facts['RAM']} RAM, "
        f"Python {facts['Python']}; shared with other jobs",
        f"- `uptime` at start: `{load_start}`",
        f"- `uptime` at end: `{uptime()}`",
        f"- Run time: {elapsed:.0f} s",
    ]


def put_section(name: str, text: str) -> None:
    """Write ``text`` as the section ``name`` of RESULTS.md: replaced in place between its
    markers when present, else appended; every other part of the file is kept."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    current = RESULTS.read_text() if RESULTS.exists() else ""
    if start in current and end in current:
        head, rest = current.split(start, 1)
        _, tail = rest.split(end, 1)
        new = head + block.rstrip("\n") + tail
    else:
        new = current.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(new)
    DATA.mkdir(exist_ok=True)
    (DATA / f"{name}.md").write_text(text.rstrip() + "\n")


def save_json(name: str, data: Any) -> None:
    """Figures for the plot: benchmarks/results/<name>.json."""
    DATA.mkdir(exist_ok=True)
    (DATA / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def client(cfg: BenchConfig, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=cfg.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300
    )


def search(
    http: httpx.Client, text: str, mode: str, top_k: int = TOP_K, vector: list[float] | None = None
) -> list[dict[str, Any]]:
    """``POST /memories/search``; its results."""
    body: dict[str, Any] = {"query": text, "mode": mode, "top_k": top_k}
    if vector is not None:
        body["vector"] = vector
    response = http.post("/memories/search", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"search: {response.status_code} {response.text[:300]}")
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def store_batch(http: httpx.Client, memories: list[dict[str, Any]]) -> None:
    """``POST /memories/batch``, expecting 201."""
    response = http.post("/memories/batch", json={"memories": memories})
    if response.status_code != 201:
        raise RuntimeError(f"batch store: {response.status_code} {response.text[:300]}")
