#!/usr/bin/env python3
"""Run LangChain's standard vector-store tests against SomaFractalMemory (``make test-langchain``).

1. ``pip download --no-deps --only-binary :all:`` the pinned wheel of ``langchain-tests`` into
   ``.cache/langchain-tests`` (git-ignored; nothing is vendored) and check its sha256 against
   the value recorded below (observed on first download);
2. extract its ``langchain_tests`` package into a fresh directory put first on PYTHONPATH.
   The suite's code is that wheel's, byte for byte; the package is not installed into the
   venv, so its pytest plugins (vcrpy, syrupy, pytest-socket, ...: its other dependencies,
   which the vector-store suite does not import) never load in ``make test``. What the suite
   imports (langchain-core, pytest, pytest-asyncio, numpy) is in the ``dev`` extra;
3. run ``tests/langchain/standard_vectorstore.py`` (the suite's ``VectorStoreIntegrationTests``,
   sync and async, with our ``vectorstore`` fixture only) and ``tests/langchain/sfm_vectorstore.py``
   (our own tests of what the suite leaves out) in one pytest process, with
   ``asyncio_mode=auto`` as the suite expects, deselecting what ``tests/langchain/deselect.txt``
   lists (failing if an entry there names no collected test);
4. print pytest's output, then per file: run, passed, failed, skipped, deselected.

The stack comes from POSTGRES_DSN, MILVUS_URI, MILVUS_COLLECTION and REDIS_URL (the Make target
sets a database, collection and Redis db of their own); tests/conftest.py recreates them and
starts one SFM server for the session. Exit status: pytest's (0 when every kept test passed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from langgraph_tests import Deselected, expand, fetch, read_deselect

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "langchain-tests"
OURS = ROOT / "tests" / "langchain"

NAME, VERSION = "langchain-tests", "1.1.9"
WHEEL = "langchain_tests-1.1.9-py3-none-any.whl"
WHEEL_SHA256 = "f33e36e2015da437df2001ec6949b443de09dd37d021dea6160cf85912ccf05f"
MODULES = ["tests/langchain/standard_vectorstore.py", "tests/langchain/sfm_vectorstore.py"]
PYTEST_OPTIONS = ["-p", "no:cacheprovider", "-o", "asyncio_mode=auto"]


def extract(wheel: Path) -> Path:
    """A fresh directory holding the wheel's ``langchain_tests`` package."""
    site = CACHE / "site"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(
            site, [n for n in archive.namelist() if n.startswith("langchain_tests/")]
        )
    return site


def collected(env: dict[str, str]) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, "--collect-only", "-q", *MODULES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"collecting the LangChain tests failed:\n{done.stdout}{done.stderr}")
    return {line.strip() for line in done.stdout.splitlines() if "::" in line}


def summarise(report: Path, deselected: list[Deselected]) -> list[str]:
    cases = list(ET.parse(report).iter("testcase"))
    lines = []
    for module in MODULES:
        dotted = module.removesuffix(".py").replace("/", ".")
        mine = [c for c in cases if c.get("classname", "").startswith(dotted)]
        failed = [c for c in mine if c.find("failure") is not None or c.find("error") is not None]
        skipped = [c for c in mine if c.find("skipped") is not None]
        gone = [d for d in deselected if d.entry.startswith(f"{module}::")]
        lines.append(
            f"  {module}: run {len(mine)}, passed {len(mine) - len(failed) - len(skipped)}, "
            f"failed {len(failed)}, skipped {len(skipped)}, "
            f"deselected {sum(len(d.tests) for d in gone)}"
        )
        lines.extend(f"      {d.describe()}" for d in gone)
        lines.extend(f"      FAILED {c.get('name')}" for c in failed)
        lines.extend(f"      SKIPPED {c.get('name')}" for c in skipped)
    return lines


def main() -> int:
    site = extract(
        fetch(NAME, VERSION, WHEEL, WHEEL_SHA256, downloads=CACHE / "wheels", wheel=True)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), "src", "."])}
    deselected, stale = expand(read_deselect(OURS / "deselect.txt"), collected(env))
    if stale:
        print(f"deselect.txt names tests that do not exist: {stale}", file=sys.stderr)
        return 2
    report = CACHE / "report.xml"
    report.unlink(missing_ok=True)
    args = [*PYTEST_OPTIONS, "-q", "-ra", f"--junitxml={report}", *MODULES]
    args += [f"--deselect={test}" for d in deselected for test in d.tests]
    status = subprocess.run(
        [sys.executable, "-m", "pytest", *args, *sys.argv[1:]], cwd=ROOT, env=env, check=False
    ).returncode
    if report.exists():
        summary = summarise(report, deselected)
        print(
            "\n".join(
                [
                    "",
                    f"LangChain's standard tests ({NAME} {VERSION}, sha256 "
                    f"{WHEEL_SHA256[:12]}...) and ours, against SomaFractalMemory:",
                    *summary,
                ]
            )
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
