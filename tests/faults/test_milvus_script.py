"""``scripts/milvus.sh stop`` ends the server that ``start`` started, and nothing else.

A second Milvus is started through the script on ports, a data directory and a pid file of its
own (every port off the shared instance's, as :class:`PrivateMilvus` picks them); ``stop``
must end it and the ``milvus run standalone`` it forked, while the shared Milvus on 19530 (when
one runs) keeps answering.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from testkit.server import ROOT, answering
from testkit.stores import milvus_client
from tests.faults.support import PrivateMilvus

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "scripts" / "milvus.sh"
SHARED_PORT = 19530


def first_free_from(port: int) -> int:
    """The port milvus-server picks for /healthz: the first free one from 9091 up."""
    while answering(port):
        port += 1
    return port


def group_pids(pgid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def test_stop_ends_the_started_server_and_its_child_only() -> None:
    shared_up = answering(SHARED_PORT)
    workdir = Path(tempfile.mkdtemp(prefix="sfm-milvus-script-"))
    ports = PrivateMilvus(workdir / "data")  # only its free ports and etcd configuration
    pid_file = workdir / "milvus.pid"
    options = [f"--etcd-port {ports.etcd_client_port}"]
    options += [f"--{name} {port}" for name, port in ports.ports.items() if name != "proxy-port"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MILVUS", "ETCD_"))},
        "MILVUS_DATA_DIR": str(ports.datadir),
        "MILVUS_PORT": str(ports.port),
        "MILVUS_HEALTH_PORT": str(first_free_from(9091)),
        "MILVUS_PID_FILE": str(pid_file),
        "MILVUS_LOG_FILE": str(workdir / "milvus.log"),
        "MILVUS_SERVER_ARGS": " ".join(options),
        "ETCD_CONFIG_PATH": str(ports.etcd_config),
    }
    pid = None
    try:
        started = subprocess.run(
            [str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=240
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"started on 127.0.0.1:{ports.port}" in started.stdout, started.stdout
        pid = int(pid_file.read_text())
        assert os.getpgid(pid) == pid, "the server runs in a process group of its own"
        group = group_pids(pid)
        assert any("run standalone" in command_line(p) for p in group), group
        client = milvus_client(ports.uri)
        client.list_collections()
        client.close()

        stopped = subprocess.run(
            [str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=90
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"stopped (pid {pid})" in stopped.stdout
        assert group_pids(pid) == [], [command_line(p) for p in group_pids(pid)]
        assert not any(command_line(p) for p in group), "a process of the group survived"
        assert not answering(ports.port)
        assert not pid_file.exists()
        again = subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, text=True)
        assert again.stdout.strip() == "milvus: not started by this script"
    finally:
        if pid is not None and group_pids(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
    if shared_up:
        assert answering(SHARED_PORT), "the shared Milvus stopped answering"
        client = milvus_client(f"http://127.0.0.1:{SHARED_PORT}")
        client.list_collections()
        client.close()
