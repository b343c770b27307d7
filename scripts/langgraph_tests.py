#!/usr/bin/env python3
"""Run LangGraph's own store tests against SomaFractalMemory (``make test-langgraph``).

1. ``pip download --no-deps --no-binary :all:`` the pinned source distributions of
   ``langgraph-checkpoint`` and ``langgraph-checkpoint-postgres`` into ``.cache/langgraph-tests``
   (git-ignored; nothing is vendored) and check their sha256 against the values recorded
   below (observed on first download);
2. extract their ``tests/`` and put ``tests/langgraph/upstream_conftest.py`` in place of their
   ``conftest.py`` (our fixtures for theirs; see that file for exactly what is swapped), with
   ``testkit/`` beside (it starts the SFM server and makes its database);
3. run ``tests/test_store.py`` of both and ``tests/test_async_store.py`` of the postgres
   package, one pytest process (with its own SFM server) per module, all three at once,
   deselecting what ``tests/langgraph/deselect.txt`` lists (and failing if an entry there names
   no test that exists; an entry may be a pattern, ``*`` matching any characters);
4. print each module's output, then per module: run, passed, failed, skipped, deselected, and
   how many of the tests run reached SFM (built an SFM store and sent it an op; the rest test
   upstream's own helpers, e.g. the in-memory store's filter functions).

Upstream's pytest options (``[tool.pytest.ini_options]`` of each sdist's ``pyproject.toml``:
``--strict-markers --strict-config``, ``asyncio_mode``, ...) are kept; ours are added to them.

The stack comes from POSTGRES_DSN, MILVUS_URI, MILVUS_COLLECTION and REDIS_URL (the Make target
sets a database and collection of their own); each module's process gets the database and
collection named there plus a suffix of its own (``_checkpoint_test_store``, ...), and a Redis
key prefix of its own. Exit status: 0 when every kept test passed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "langgraph-tests"
OURS = ROOT / "tests" / "langgraph"

PACKAGES = {
    "langgraph-checkpoint": (
        "4.3.2",
        "langgraph_checkpoint-4.3.2.tar.gz",
        "fcab8468c7e965d7055e2a35c253d73a145624ef4728b150ca7c361f4afca286",
        ["tests/test_store.py"],
    ),
    "langgraph-checkpoint-postgres": (
        "3.2.0",
        "langgraph_checkpoint_postgres-3.2.0.tar.gz",
        "dffef0e6822d7c614019f7f2c4bdbef42859746aee2d3e6d9d9747cf3744ca90",
        ["tests/test_store.py", "tests/test_async_store.py"],
    ),
}
# Ours, added to upstream's options: no cache directory in the extracted tree, and
# pytest-asyncio's loop scopes spelled out (upstream leaves them to a deprecated default).
OUR_ADDOPTS = "-p no:cacheprovider"
OUR_INI = {
    "asyncio_default_fixture_loop_scope": "function",
    "asyncio_default_test_loop_scope": "function",
}
# Written by tests/langgraph/upstream_conftest.py: the ids of the tests that reached SFM.
REACH_ENV = "SFM_REACHED_FILE"


def pytest_ini(pyproject: str) -> str:
    """pytest.ini holding upstream's ``[tool.pytest.ini_options]`` plus ours."""
    options = dict(tomllib.loads(pyproject)["tool"]["pytest"]["ini_options"])
    options["addopts"] = f"{options.get('addopts', '')} {OUR_ADDOPTS}".strip()
    for key, value in OUR_INI.items():
        options.setdefault(key, value)
    lines = ["[pytest]"]
    for key, value in options.items():
        rendered = " ".join(value) if isinstance(value, list) else str(value)
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    name: str,
    version: str,
    filename: str,
    expected: str,
    *,
    downloads: Path = CACHE / "sdists",
    wheel: bool = False,
) -> Path:
    """The sdist (or, with ``wheel``, the wheel) ``filename`` of ``name==version``, downloaded
    into ``downloads`` once, its sha256 checked against ``expected`` every time. Shared by the
    LangChain and OpenAI Agents runners."""
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / filename
    if not target.exists():
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--only-binary" if wheel else "--no-binary", ":all:"),
                *(f"{name}=={version}", "-d", str(downloads)),
            ],
            check=True,
        )
    found = sha256(target)
    if found != expected:
        target.unlink()
        raise SystemExit(f"{filename}: sha256 {found}, expected {expected}; refusing to run it")
    return target


def extract_tests(name: str, sdist: Path) -> Path:
    """A fresh directory holding the package's ``tests/`` with our conftest."""
    workdir = CACHE / "run" / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        members = [m for m in archive.getmembers() if m.name.startswith(f"{top}/tests/")]
        pyproject = archive.extractfile(f"{top}/pyproject.toml")
        assert pyproject is not None
        ini = pytest_ini(pyproject.read().decode())
        for member in members:
            member.name = member.name[len(top) + 1 :]
        archive.extractall(workdir, members=members, filter="data")
    shutil.copyfile(OURS / "upstream_conftest.py", workdir / "tests" / "conftest.py")
    # The helpers every suite of ours uses (their `tests` package hides ours, not testkit).
    shutil.copytree(
        ROOT / "testkit", workdir / "testkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    (workdir / "pytest.ini").write_text(ini)
    return workdir


def read_deselect(path: Path) -> list[tuple[str, str]]:
    """(test id or pattern, reason) for each ``id  # reason`` line of a deselect file; a ``*``
    in an id matches any run of characters (``[`` and ``]`` are literal: they are in
    parametrized ids). Shared by the LangChain and OpenAI Agents runners."""
    found = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            test_id, _, reason = line.partition("#")
            found.append((test_id.strip(), reason.strip()))
    return found


def deselections(name: str) -> list[tuple[str, str]]:
    """The entries of tests/langgraph/deselect.txt for package ``name`` (ids inside it)."""
    found = []
    for test_id, reason in read_deselect(OURS / "deselect.txt"):
        package, _, inner = test_id.partition("::")
        if package == name:
            found.append((inner, reason))
    return found


@dataclass
class Deselected:
    """A deselect.txt entry (one test id, or a pattern) and the collected ids it names."""

    entry: str
    reason: str
    tests: list[str]

    def describe(self) -> str:
        if self.tests == [self.entry]:
            return f"deselected {self.entry}: {self.reason}"
        return f"deselected {len(self.tests)} tests matching {self.entry}: {self.reason}"


def collected(workdir: Path, modules: list[str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "--verbosity=-1", *modules],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SFM_COLLECT_ONLY": "1"},
    )
    return {line.strip() for line in done.stdout.splitlines() if "::" in line}


def expand(entries: list[tuple[str, str]], known: set[str]) -> tuple[list[Deselected], list[str]]:
    """Each entry with the collected test ids it names, and the entries naming none (stale)."""
    expanded, stale = [], []
    for entry, reason in entries:
        pattern = re.compile("".join(".*" if c == "*" else re.escape(c) for c in entry))
        matched = sorted(t for t in known if pattern.fullmatch(t))
        if matched:
            expanded.append(Deselected(entry, reason, matched))
        else:
            stale.append(entry)
    return expanded, stale


def missing_twins(deselected: list[Deselected], known: set[str]) -> list[str]:
    """The ``twin:`` reasons naming a test that is not collected, or deselected too."""
    gone = {test for d in deselected for test in d.tests}
    missing = []
    for d in deselected:
        if not d.reason.startswith("twin:"):
            continue
        module = d.entry.partition("::")[0]
        twin = f"{module}::{d.reason.removeprefix('twin:').strip()}"
        if twin not in known or twin in gone:
            missing.append(f"{d.entry} (twin {twin})")
    return missing


def reached(path: Path) -> set[str]:
    """The ids of the tests that reached SFM, as the conftest recorded them."""
    return set(json.loads(path.read_text())) if path.exists() else set()


def summarise(
    report: Path, deselected: list[Deselected], modules: list[str], hits: set[str] | None = None
) -> list[str]:
    """Per module: run, passed, failed, skipped, deselected (with reasons) and, given the ids
    of the tests that built an SFM store and sent it an op (``hits``), how many reached SFM."""
    lines = []
    tree = ET.parse(report)
    cases = list(tree.iter("testcase"))
    for module in modules:
        dotted = module.removesuffix(".py").replace("/", ".")
        mine = [c for c in cases if c.get("classname", "") == dotted]
        failed = [c for c in mine if c.find("failure") is not None or c.find("error") is not None]
        skipped = [c for c in mine if c.find("skipped") is not None]
        gone = [d for d in deselected if d.entry.startswith(f"{module}::")]
        line = (
            f"{module}: run {len(mine)}, passed {len(mine) - len(failed) - len(skipped)}, "
            f"failed {len(failed)}, skipped {len(skipped)}, "
            f"deselected {sum(len(d.tests) for d in gone)}"
        )
        if hits is not None:
            sfm = len({t for t in hits if t.startswith(f"{module}::")})
            line += f"; reached SFM {sfm} of the {len(mine)} run"
        lines.append(line)
        lines.extend(f"    {d.describe()}" for d in gone)
        lines.extend(f"    FAILED {c.get('name')}" for c in failed)
    return lines


@dataclass
class Job:
    """One upstream test module run by a pytest process of its own."""

    name: str
    version: str
    expected: str
    workdir: Path
    module: str
    tag: str
    deselected: list[Deselected]
    process: subprocess.Popen[bytes] | None = None

    @property
    def report(self) -> Path:
        return self.workdir / f"report-{self.tag}.xml"

    @property
    def reached_file(self) -> Path:
        return self.workdir / f"reached-{self.tag}.json"

    @property
    def log(self) -> Path:
        return self.workdir / f"output-{self.tag}.log"

    def start(self, extra: list[str]) -> None:
        args = [sys.executable, "-m", "pytest", self.module, f"--junitxml={self.report}"]
        args += ["-ra"]  # upstream's addopts set the verbosity
        args += [
            f"--deselect={test}"
            for d in self.deselected
            if d.entry.startswith(f"{self.module}::")
            for test in d.tests
        ]
        self.report.unlink(missing_ok=True)
        self.reached_file.unlink(missing_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*args, *extra],
                cwd=self.workdir,
                env={**job_env(self.tag), REACH_ENV: str(self.reached_file)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def interrupt(self) -> None:
        """Ctrl-C for a process still running (pytest then stops its server)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait()


def job_env(tag: str) -> dict[str, str]:
    """The environment of one job: a database, collection and Redis key prefix of its own,
    named after the ones the Make target sets (so they still name test stores)."""
    env = dict(os.environ)
    parts = urlsplit(env["POSTGRES_DSN"])
    database = f"{parts.path.lstrip('/')}_{tag}"
    env["POSTGRES_DSN"] = urlunsplit(
        (parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment)
    )
    # Neither name is a prefix of the other's: each job drops only what starts with its own.
    env["MILVUS_COLLECTION"] = f"{env['MILVUS_COLLECTION']}_{tag}"
    env["SOMA_REDIS_PREFIX"] = f"{env.get('SOMA_REDIS_PREFIX', 'sfm')}-lg-{tag}"
    return env


def main() -> int:
    CACHE.mkdir(parents=True, exist_ok=True)
    only = sys.argv[1:]  # optional pytest arguments, e.g. -k
    jobs: list[Job] = []
    for name, (version, filename, expected, modules) in PACKAGES.items():
        sdist = fetch(name, version, filename, expected)
        workdir = extract_tests(name, sdist)
        known = collected(workdir, modules)
        deselected, stale = expand(deselections(name), known)
        if stale:
            print(f"deselect.txt names tests {name} does not have: {stale}", file=sys.stderr)
            return 2
        if twinless := missing_twins(deselected, known):
            print(f"deselect.txt names twins that do not run: {twinless}", file=sys.stderr)
            return 2
        for module in modules:
            tag = f"{name.rsplit('-', 1)[-1]}_{Path(module).stem}".replace("-", "_")
            jobs.append(Job(name, version, expected, workdir, module, tag, deselected))
    # One pytest process (and SFM server) per module, all at once: they wait on Milvus (a
    # collection per vector store), not on the CPU, so side by side they take about as long
    # as the longest alone.
    status = 0
    summary: list[str] = []
    ran = sfm = 0
    try:
        for job in jobs:
            job.start(only)
        for job in jobs:
            code = job.wait()
            status = status or code
            print(f"== {job.name} {job.version}: {job.module} (exit {code})", flush=True)
            sys.stdout.write(job.log.read_text(errors="replace"))
            if job.report.exists():
                summary.append(f"{job.name} {job.version} (sha256 {job.expected[:12]}...)")
                hits = reached(job.reached_file)
                lines = summarise(job.report, job.deselected, [job.module], hits)
                summary.extend(f"  {line}" for line in lines)
                ran += sum(1 for _ in ET.parse(job.report).iter("testcase"))
                sfm += len(hits)
    finally:
        for job in jobs:
            job.interrupt()
    total = f"In all: {ran} upstream tests run, {sfm} reached SFM (built a store, sent it an op)"
    print("\n".join(["", "LangGraph store tests against SomaFractalMemory:", *summary, total]))
    return status


if __name__ == "__main__":
    sys.exit(main())
