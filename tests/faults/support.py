"""Real store processes of the fault tests' own: nothing here is shared.

A private ``redis-server``, a private Milvus standalone (from the PyPI ``milvus`` package in
the venv) and a private PostgreSQL cluster are started on free ports, so the tests can stop,
freeze and restart them for real without touching the shared PostgreSQL, Redis and Milvus
other engineers use. Databases and collections of the tests' own on the shared stores come
from :mod:`testkit.stores`, the server as a subprocess from :mod:`testkit.server`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql

from somafractalmemory.settings import Settings
from testkit.server import ROOT, VENV_BIN, ApiServer, answering, free_port, wait_until
from testkit.stores import milvus_client, private_stack

REDIS_SERVER = "/usr/bin/redis-server"
MILVUS_SERVER = VENV_BIN / "milvus-server"


# The server a SIGKILL-under-load test kills and restarts: no rate limit, a frequent drainer
# whose grace is older than any request can be (the store timeout bounds each store call), so
# it never races a request still in flight and settles the killed servers' entries.
CRASH_SERVER_ENV = {
    "SOMA_RATE_LIMIT_PER_MINUTE": "0",
    "SOMA_OUTBOX_INTERVAL_SECONDS": "2",
    "SOMA_OUTBOX_GRACE_SECONDS": "30",
}


@contextlib.contextmanager
def crash_server(
    test_settings: Settings, tmp_path_factory: Any, name: str
) -> Iterator[tuple[ApiServer, Settings]]:
    """A migrated database and ensured collections of their own (suffix ``_<name>``), and the
    server on them (not started); killed at the end."""
    with private_stack(test_settings, f"_{name}") as settings:
        log = Path(tmp_path_factory.mktemp(name)) / "server.log"
        server = ApiServer(
            settings, log, SOMA_REDIS_PREFIX=settings.redis_key_prefix, **CRASH_SERVER_ENV
        )
        try:
            yield server, settings
        finally:
            server.kill()


def kill_and_restart(server: ApiServer, up: threading.Event) -> float:
    """SIGKILL the server under load and start it again, the loaders held (``up`` clear)
    meanwhile; the seconds it was away."""
    up.clear()
    killed_at = time.monotonic()
    server.kill()
    server.start()
    up.set()
    return time.monotonic() - killed_at


def metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in Prometheus text."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not on /metrics"
    return float(found.group(1))


# -- processes -----------------------------------------------------------------------------------
def _stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process group this module started ``proc`` in, and reap it."""
    if proc.poll() is None or _group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - not ours
        return True
    return True


class PrivateRedis:
    """A ``redis-server`` of the test's own on a free port, stopped and started at will.

    It writes nothing on its own (``--save ''``, no AOF); :meth:`snapshot` writes ``dump.rdb``
    explicitly, so a restart can come back holding what it held when it was stopped (as a
    Redis behind a network partition would).
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> None:
        assert self.proc is None, "already running"
        log = open(self.workdir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
                "--dbfilename",
                "dump.rdb",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_until(f"private redis on {self.port}", lambda: self.client().ping(), 10, 0.02)

    def snapshot(self) -> None:
        """Write what Redis holds to its dump file (loaded again by the next start)."""
        self.client().save()

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open and nothing answers, as with a Redis
        that hangs."""
        assert self.proc is not None, "not running"
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT)."""
        assert self.proc is not None, "not running"
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Kill it (SIGKILL: gone at once, no shutdown save)."""
        if self.proc is not None:
            _stop_group(self.proc)
            self.proc = None
        wait_until(f"redis on {self.port} gone", lambda: not answering(self.port), 10, 0.05)


class PrivateMilvus:
    """A Milvus standalone of the test's own: every port off the shared instance's.

    The first start goes through ``.venv/bin/milvus-server`` (which unpacks the binary and
    writes ``configs/milvus.yaml``). Its port options are only starting points for a search of
    free ports, so the resolved ports are read back from the written configuration. A restart
    runs the same binary with the same configuration and data directly: the wrapper would
    move a port still in TIME_WAIT after a kill, and a restart must come back where it was.
    The embedded etcd is moved with ``ETCD_CONFIG_PATH`` (the wrapper has no option for its
    client and peer ports, 2379/2380 by default, which the shared instance holds).
    """

    PORT_OPTIONS = (
        "proxy-port",
        "proxy-internal-port",
        "root-coord-port",
        "query-coord-port",
        "query-node-port",
        "index-coord-port",
        "index-node-port",
        "data-coord-port",
        "data-node-port",
    )

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self.ports = {name: free_port() for name in self.PORT_OPTIONS}
        self.etcd_client_port = free_port()
        self.etcd_peer_port = free_port()
        self.metrics_port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_once = False
        datadir.mkdir(parents=True, exist_ok=True)
        self.etcd_config = datadir / "embed-etcd.yaml"
        client = f"http://127.0.0.1:{self.etcd_client_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd_config.write_text(
            f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\n"
        )

    @property
    def port(self) -> int:
        return self.ports["proxy-port"]

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "MILVUS"))}
        env["ETCD_CONFIG_PATH"] = str(self.etcd_config)
        # A restarted standalone reloads its collections only once the killed instance's
        # sessions expire (common.session.ttl, 30 s by default): 10 s keeps the restart
        # test short without changing what is tested (the SFM server's own recovery).
        env["COMMON_SESSION_TTL"] = "10"
        return env

    def launch(self) -> None:
        """Start the server without waiting for it (see :meth:`wait_ready`)."""
        assert self.proc is None, "already running"
        log = open(self.datadir / "server.log", "ab")
        if not self.started_once:
            command_line = [
                str(MILVUS_SERVER),
                "--data",
                str(self.datadir),
                "--etcd-port",
                str(self.etcd_client_port),
            ]
            for option, port in self.ports.items():
                command_line += [f"--{option}", str(port)]
            self.proc = subprocess.Popen(
                command_line,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )
        else:
            binary = self.datadir / "bin" / "milvus"
            env = self._env()
            env.update(
                {
                    "DEPLOY_MODE": "STANDALONE",
                    "METRICS_PORT": str(self.metrics_port or free_port()),
                    "MILVUS_RUN_DIR": str(self.datadir / "run"),
                    "LD_LIBRARY_PATH": f"{binary.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}",
                }
            )
            self.proc = subprocess.Popen(
                [str(binary), "run", "standalone"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.datadir,
            )
        log.close()

    def _server_pid(self) -> int | None:
        assert self.proc is not None
        if not self.started_once:
            found = subprocess.run(
                ["pgrep", "-g", str(self.proc.pid), "-f", "run standalone"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            return int(found[0]) if found else None
        return self.proc.pid

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until the proxy answers, then check it listens where it was told to."""
        assert self.proc is not None

        def up() -> bool:
            if not _group_alive(self.proc.pid):  # type: ignore[union-attr]
                raise RuntimeError(f"milvus exited; see {self.datadir / 'server.log'}")
            client = milvus_client(self.uri, timeout=2)
            try:
                client.list_collections(timeout=2)
            finally:
                client.close()
            return True

        wait_until(f"private milvus on {self.port}", up, timeout, 0.5)
        if not self.started_once:
            config = (self.datadir / "configs" / "milvus.yaml").read_text()
            for option, port in self.ports.items():
                assert re.search(rf"(?<![0-9]){port}(?![0-9])", config), (
                    f"milvus-server moved --{option} off {port}"
                )
            pid = self._server_pid()
            if pid is not None:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                for item in environ:
                    if item.startswith(b"METRICS_PORT="):
                        self.metrics_port = int(item.split(b"=", 1)[1])
            self.started_once = True

    def start(self, timeout: float = 120) -> None:
        self.launch()
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Kill the whole server (SIGKILL, as a crash or an OOM kill would)."""
        if self.proc is not None:
            _stop_group(self.proc)
            self.proc = None
        wait_until(f"milvus on {self.port} gone", lambda: not answering(self.port), 15, 0.1)

    def freeze(self) -> None:
        """SIGSTOP the whole server: connections stay open and nothing answers (a hung or
        partitioned Milvus). Thaw it within the session TTL (10 s), or it drops its state."""
        assert self.proc is not None, "not running"
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        assert self.proc is not None, "not running"
        os.killpg(self.proc.pid, signal.SIGCONT)


def postgres_bin() -> Path:
    """The server binaries of the newest PostgreSQL Debian installed (15 on our machines)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    assert found, "no PostgreSQL server binaries under /usr/lib/postgresql"
    return found[-1].parent


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (``initdb``, ``pg_ctl``) on a free port,
    stopped and restarted at will; trust authentication for ``postgres`` on 127.0.0.1.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the ``postgres``
    OS user and every command runs as it (``runuser``); its directory lives under /tmp,
    outside pytest's private temporary tree, which that user cannot enter.
    """

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.workdir = Path(tempfile.mkdtemp(prefix="sfm-faults-pg-"))
        self.datadir = self.workdir / "data"
        self.log_path = self.workdir / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")

    def _run(self, program: str, *args: str, timeout: float = 90) -> None:
        command_line = [str(self.bin / program), *args]
        if os.geteuid() == 0:
            command_line = ["runuser", "-u", "postgres", "--", *command_line]
        done = subprocess.run(
            command_line, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)}: {done.stdout}{done.stderr}")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        """``initdb`` (trust, user ``postgres``)."""
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "-N")

    def _ctl(self, action: str, *args: str) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            "60",
            action,
            *args,
        )

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self._ctl("start")
        wait_until(f"private postgres on {self.port}", lambda: answering(self.port), 30, 0.1)

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m MODE``: sessions are cut, the server comes back on its port."""
        self._ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE`` (a no-op when it is not running)."""
        if (self.datadir / "postmaster.pid").exists():
            self._ctl("stop", "-m", mode)

    def _pids(self) -> list[int]:
        postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [postmaster, *(int(pid) for pid in children)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open and nothing
        answers, as behind a network partition that drops packets."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def create_database(self, name: str) -> str:
        """Create database ``name``; its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def remove(self) -> None:
        """Stop it (immediate) and delete its files."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)


__all__ = [
    "PrivateMilvus",
    "PrivatePostgres",
    "PrivateRedis",
    "metric",
    "postgres_bin",
]
