#!/usr/bin/env python3
"""Run the OpenAI Agents SDK's own session tests against SomaFractalMemory
(``make test-openai-agents``).

1. ``pip download --no-deps --no-binary :all:`` the pinned sdist of ``openai-agents`` into
   ``.cache/openai-agents-tests`` (git-ignored; nothing is vendored) and check its sha256
   against the value recorded below (observed on first download);
2. extract its ``tests/`` unchanged (their ``conftest.py`` too) with ``testkit/`` and
   ``tests/openai_agents/upstream_plugin.py`` beside; the plugin starts an SFM server and makes
   the modules' ``SQLiteSession`` an ``SFMSession`` on a fresh tenant (see that file);
3. run ``tests/memory/test_session.py`` and ``tests/memory/test_session_limit.py`` (the ones
   that exercise a session through the protocol, many through ``Runner.run``, ``run_sync`` and
   ``run_streamed`` with the SDK's scripted model: no LLM), deselecting what
   ``tests/openai_agents/deselect.txt`` lists (failing if an entry there names no test);
4. print pytest's output, then per module: run, passed, failed, skipped, deselected.

The stack comes from POSTGRES_DSN, MILVUS_URI, MILVUS_COLLECTION and REDIS_URL (the Make target
sets a database, collection and Redis db of their own). Exit status: pytest's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from langgraph_tests import collected, expand, fetch, read_deselect, summarise

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "openai-agents-tests"
OURS = ROOT / "tests" / "openai_agents"

NAME, VERSION = "openai-agents", "0.24.0"
SDIST = "openai_agents-0.24.0.tar.gz"
SDIST_SHA256 = "4b4b285f4fed81fdf1b4ac426a9101658d9cd29b4fb1aaeee18f639b77e704e3"
MODULES = ["tests/memory/test_session.py", "tests/memory/test_session_limit.py"]
PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
addopts = -p no:cacheprovider -p upstream_plugin
"""


def extract(sdist: Path) -> Path:
    """A fresh directory: their ``tests/``, our plugin, ``testkit/`` and a pytest.ini."""
    workdir = CACHE / "run"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        members = [m for m in archive.getmembers() if m.name.startswith(f"{top}/tests/")]
        for member in members:
            member.name = member.name[len(top) + 1 :]
        archive.extractall(workdir, members=members, filter="data")
    shutil.copyfile(OURS / "upstream_plugin.py", workdir / "upstream_plugin.py")
    shutil.copytree(
        ROOT / "testkit", workdir / "testkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    (workdir / "pytest.ini").write_text(PYTEST_INI)
    return workdir


def main() -> int:
    workdir = extract(fetch(NAME, VERSION, SDIST, SDIST_SHA256, downloads=CACHE / "sdists"))
    path = os.pathsep.join([str(workdir), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    os.environ["PYTHONPATH"] = path
    known = collected(workdir, MODULES)
    if not known:
        print("collecting the upstream session tests found none", file=sys.stderr)
        return 2
    deselected, stale = expand(read_deselect(OURS / "deselect.txt"), known)
    if stale:
        print(f"deselect.txt names tests that do not exist: {stale}", file=sys.stderr)
        return 2
    report = CACHE / "report.xml"
    report.unlink(missing_ok=True)
    args = ["-q", "-ra", f"--junitxml={report}", *MODULES]
    args += [f"--deselect={test}" for d in deselected for test in d.tests]
    status = subprocess.run(
        [sys.executable, "-m", "pytest", *args, *sys.argv[1:]], cwd=workdir, check=False
    ).returncode
    if report.exists():
        print(
            "\n".join(
                [
                    "",
                    f"The OpenAI Agents SDK's session tests ({NAME} {VERSION}, sha256 "
                    f"{SDIST_SHA256[:12]}...) against SomaFractalMemory (SFMSession):",
                    *summarise(report, deselected, MODULES),
                ]
            )
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
