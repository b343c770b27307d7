#!/usr/bin/env python3
"""The integration suite with the newest pymilvus, against milvus-lite (``make test-milvus-lite``).

What this checks, and what it does not: **client-library and query-syntax compatibility**.
milvus-lite (PyPI ``milvus-lite``) is a protocol emulator: it serves the Milvus gRPC protocol
on TCP from an embedded engine, so SFM's calls (collection and index set-up, partition keys,
filter expressions, insert, delete, query, search), as pymilvus of the newest line sends them,
run for real end to end. It is not a Milvus server: it ignores consistency levels, is not safe
for concurrent writes, and has no segments, index builds or load states of Milvus's own.
Server behaviour is what ``make test`` checks, against a real Milvus 2.3.5.

1. a venv of its own, ``.cache/milvus-lite-venv`` (git-ignored, rebuilt when the versions
   below change): the pinned ``pymilvus`` and ``milvus-lite`` in its own site-packages, the
   project installed editable (its console script, for the CLI tests), and every other
   dependency taken from the repository's ``.venv`` through a ``.pth`` file (so no torch is
   installed twice; ``pip check`` must pass on the combination);
2. a milvus-lite server on a free port, data in a temporary directory, with Milvus's gRPC
   keepalive policy (see :data:`KEEPALIVE_POLICY`);
3. ``pytest`` of :data:`SELECTION` in that venv with ``MILVUS_URI`` pointing at it (the
   database, collection and Redis db are the Make target's); servers and CLI processes the
   tests start run in the same venv (``testkit.server.VENV_BIN`` is the running venv's);
4. milvus-lite stopped, its data removed. Exit status: pytest's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.server import answering, free_port, wait_until  # noqa: E402

PYMILVUS = "3.0.2"  # the newest pymilvus on PyPI when pinned (pyproject still says <2.6)
MILVUS_LITE = "3.2.2"
VENV = ROOT / ".cache" / "milvus-lite-venv"
PYTHON = VENV / "bin" / "python"
BUILT = VENV / "sfm-built.txt"
START_TIMEOUT = 60.0
# The integration files whose tests go through Milvus (collection set-up, partition keys,
# filter expressions, insert, delete, query, search in every mode), as `make test` runs them.
# Left out, and why (the README's "Supported versions" says the same):
# - test_concurrent_writers.py: eight writers at once on one tenant; milvus-lite is not safe
#   for concurrent writes;
# - test_limits.py: the rate limit is Redis's and timing's (a per-minute budget), no Milvus
#   call of its own; test_cache_*.py, test_key_cache.py: the Redis cache and its races;
#   test_migrations.py, test_pg_connection.py, test_statement_errors.py, test_env_file.py:
#   PostgreSQL and settings only; test_webhooks.py: HTTP delivery;
# - test_records_migration.py: a previous release's layout migrated; its
#   migrate-item-collections step ends with a rename, and milvus-lite 3.2.2's
#   rename_collection drops the load state (Milvus keeps it), so the next step, move-items,
#   finds the collection "released" (the same cause as the deselected test below).
FILES = [
    "tests/integration/test_memories_api.py",
    "tests/integration/test_items.py",
    "tests/integration/test_history.py",
    "tests/integration/test_keyword_search.py",
    "tests/integration/test_item_collections.py",
    "tests/integration/test_export_import.py",
    "tests/integration/test_vector_recall.py",
    "tests/integration/test_recall_scope.py",
    "tests/integration/test_recall.py",
    "tests/integration/test_consistency.py",
    "tests/integration/test_graph_and_ops.py",
    "tests/integration/test_bad_input.py",
    "tests/integration/test_context.py",
    "tests/integration/test_langgraph_batch.py",
    "tests/integration/test_reads_dont_write.py",
    "tests/integration/test_client.py",
    "tests/integration/test_mcp.py",
]
# Tests of the files above that check what only a real Milvus server does.
DESELECTED = {
    "tests/integration/test_item_collections.py::test_v1_collection_migrates_without_reembedding": (
        "the v1 to v2 migration ends with a rename; milvus-lite 3.2.2's rename_collection drops "
        "the collection's load state (Milvus 2.3.5 keeps it), so the migrated collection is "
        "reported 'not loaded'"
    ),
    "tests/integration/test_items.py::"
    "test_a_space_is_made_whole_when_its_load_outlasts_the_store_timeout": (
        "needs a collection load slower than the 1 s store timeout, Milvus server behaviour; "
        "milvus-lite loads at once, so the test has nothing to test"
    ),
    # The three below are the selection's slowest (82, 42 and 25 s of its 9 minutes on an
    # idle machine) and test nothing of the client library beyond what the rest sends.
    "tests/integration/test_vector_recall.py::test_vector_search_recall_at_10_against_exact": (
        "the recall of Milvus's own HNSW index against exact search, server behaviour; "
        "milvus-lite's index is not Milvus's"
    ),
    "tests/integration/test_recall.py::test_read_your_writes": (
        "read-your-writes is Milvus's consistency levels, which milvus-lite ignores"
    ),
    "tests/integration/test_consistency.py::"
    "test_reconcile_command_reports_and_exits_nonzero_on_drift": (
        "the CLI's report and exit status; reconcile's Milvus calls are the same as in "
        "test_reconcile_finds_and_repairs_drift, which runs"
    ),
}
SELECTION = [*FILES, *(f"--deselect={test}" for test in DESELECTED)]
LABEL = (
    f"milvus-lite {MILVUS_LITE} + pymilvus {PYMILVUS}: client-library and query-syntax "
    "compatibility (a protocol emulator, not Milvus server behaviour)"
)


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(PYTHON), *args, "--quiet"], check=True
    )


def build_venv() -> None:
    """The venv of step 1, unless it is there for these versions already."""
    wanted = f"pymilvus=={PYMILVUS} milvus-lite=={MILVUS_LITE}\n"
    if PYTHON.exists() and BUILT.exists() and BUILT.read_text() == wanted:
        return
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(VENV)], check=True)
    own = subprocess.run(
        [str(PYTHON), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    main_site = sysconfig.get_paths()["purelib"]  # the repository's .venv, running this
    # addsitedir, not a plain path: main's own .pth files (its editable installs) apply too.
    (Path(own) / "_sfm_main_venv.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
    # pip sees main's pymilvus through the .pth and leaves it alone ("outside environment"):
    # the new one goes into this venv's site-packages, which come first on sys.path.
    pip("install", f"pymilvus=={PYMILVUS}")
    pip("install", "--no-deps", "--ignore-installed", f"milvus-lite=={MILVUS_LITE}")
    # Its own dependencies (pyarrow, faiss), which .venv no longer has: the server's extra holds
    # milvus-lite below 2.5, which needs neither.
    pip("install", "faiss-cpu", "pyarrow")
    pip("install", "--no-deps", "--no-build-isolation", "-e", str(ROOT))
    check_requirements()
    BUILT.write_text(wanted)


def check_requirements() -> None:
    """``pip check`` on the combination, but for the server extra's hold on milvus-lite
    (below 2.5, whose pyarrow and faiss the server never uses): this venv runs milvus-lite
    3.x as the emulated server on purpose."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(PYTHON), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [
        line
        for line in done.stdout.splitlines()
        if line.strip()
        and not (line.startswith("somafractalmemory ") and "milvus-lite" in line)
        and line.strip() != "No broken requirements found."
    ]
    if problems:
        raise SystemExit("pip check failed:\n" + "\n".join(problems))


def start_milvus_lite(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (data / "milvus-lite.log").open("wb")
    server = subprocess.Popen(
        [str(PYTHON), __file__, "serve", str(data / "db"), str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_until(
        f"milvus-lite on port {port}",
        lambda: server.poll() is None and answering(port),
        START_TIMEOUT,
        interval=0.1,
    )
    return server, f"http://127.0.0.1:{port}"


# Milvus lets a client ping every 5 s, with or without calls in flight; milvus-lite's server
# keeps gRPC's defaults (a ping at most every 5 minutes without calls), and pymilvus pings
# every 10 s. Without these options, after a few idle minutes the emulator answers a client's
# connection with GOAWAY "too_many_pings", and every channel to it in that process fails to
# connect (seen: "Fail connecting to server", UNAVAILABLE "Too many pings").
KEEPALIVE_POLICY = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_ping_strikes", 0),
]


def serve(data_dir: str, port: int) -> None:
    """milvus-lite's gRPC server, as ``milvus-lite server`` builds it, with Milvus's keepalive
    policy (run in the milvus-lite venv: ``python milvus_lite_tests.py serve DIR PORT``)."""
    from concurrent import futures

    import grpc  # type: ignore[import-untyped]
    from milvus_lite.adapter.grpc.server import _MAX_MESSAGE_SIZE  # type: ignore[import-not-found]
    from milvus_lite.adapter.grpc.servicer import MilvusServicer  # type: ignore[import-not-found]
    from milvus_lite.db import MilvusLite  # type: ignore[import-not-found]
    from pymilvus.grpc_gen import milvus_pb2_grpc

    db = MilvusLite(data_dir)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[
            ("grpc.max_receive_message_length", _MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", _MAX_MESSAGE_SIZE),
            *KEEPALIVE_POLICY,
        ],
    )
    milvus_pb2_grpc.add_MilvusServiceServicer_to_server(MilvusServicer(db), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(grace=5))
    try:
        server.wait_for_termination()
    finally:
        db.close()


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main() -> int:
    started = time.monotonic()
    build_venv()
    data = Path(tempfile.mkdtemp(prefix="sfm-milvus-lite-"))
    server, uri = start_milvus_lite(data)
    try:
        env = {**os.environ, "MILVUS_URI": uri, "PYTHONPATH": os.pathsep.join(["src", "."])}
        versions = subprocess.run(
            [
                str(PYTHON),
                "-c",
                "import pymilvus; from pymilvus import MilvusClient; "
                f"print('pymilvus', pymilvus.__version__, 'server', "
                f"MilvusClient(uri={uri!r}).get_server_version())",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"== {LABEL}\n== {versions}, at {uri}", flush=True)
        pytest = [str(PYTHON), "-m", "pytest", "-p", "no:cacheprovider", "-q", "-ra"]
        status = subprocess.run(
            [*pytest, *SELECTION, *sys.argv[1:]],
            cwd=ROOT,
            env=env,
            check=False,
        ).returncode
    finally:
        stop(server)
        if server.returncode not in (0, -signal.SIGTERM):
            sys.stdout.write((data / "milvus-lite.log").read_text(errors="replace")[-4000:])
        shutil.rmtree(data, ignore_errors=True)
    verdict = "passed" if status == 0 else f"FAILED (exit {status})"
    print(f"== {LABEL}: {verdict} in {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    sys.exit(main())
