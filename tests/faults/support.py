"""Real store processes and databases of the fault tests' own: nothing here is shared.

A private ``redis-server`` and a private Milvus standalone (from the PyPI ``milvus`` package
in the venv) are started on free ports, so the tests can stop and restart them for real
without touching the shared PostgreSQL, Redis and Milvus other engineers use. Private
databases and collections are named after the test stack's own, so ``make test`` and a
developer's isolated run never collide.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from alembic import command
from psycopg import sql
from pydantic import SecretStr
from pymilvus import MilvusClient

from somafractalmemory.bootstrap import alembic_config
from somafractalmemory.settings import Settings
from tests.support.server import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
REDIS_SERVER = "/usr/bin/redis-server"
MILVUS_SERVER = VENV_BIN / "milvus-server"
T = TypeVar("T")


def answering(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(what: str, check: Callable[[], T], timeout: float, interval: float = 0.25) -> T:
    """Call ``check`` until it returns something truthy without raising; fail after
    ``timeout`` seconds with the last error."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except Exception as exc:  # noqa: BLE001 - polling a real service: any error means "not yet"
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def with_updates(settings: Settings, **updates: Any) -> Settings:
    """A validated copy of ``settings`` with fields replaced (secrets given as plain text)."""
    data = settings.model_dump()
    for key, value in updates.items():
        data[key] = value
    for key, value in list(data.items()):
        if isinstance(value, SecretStr):
            data[key] = value.get_secret_value()
    return Settings.model_validate(data)


def stack_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The process environment that names the same stack as ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTGRES_", "MILVUS_", "REDIS_", "SOMA_", "OTEL_"))
    }
    env.update(
        {
            "POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
            "MILVUS_URI": settings.milvus_uri,
            "MILVUS_TOKEN": settings.milvus_token.get_secret_value(),
            "MILVUS_COLLECTION": settings.milvus_collection,
            "REDIS_URL": settings.redis_url.get_secret_value(),
            "SOMA_EMBEDDING_MODEL": settings.embedding_model,
            "SOMA_EMBEDDING_BACKEND": settings.embedding_backend,
            "SOMA_EMBEDDING_ONNX_DIR": str(settings.embedding_onnx_dir),
            "SOMA_EMBEDDING_THREADS": str(settings.embedding_threads),
            "PYTHON": str(PYTHON),
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


# -- PostgreSQL: private databases --------------------------------------------------------------
def sibling_dsn(dsn: str, suffix: str) -> str:
    """The DSN of a database named after the test database plus ``suffix``."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/") + suffix
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _admin(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def recreate_database(dsn: str) -> None:
    """Drop (forcing other sessions off) and create the database named in ``dsn``."""
    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(_admin(dsn), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(dsn: str) -> None:
    """Drop the database named in ``dsn``."""
    name = urlsplit(dsn).path.lstrip("/")
    with psycopg.connect(_admin(dsn), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def migrate(dsn: str) -> None:
    """``alembic upgrade head`` on ``dsn``, in-process."""
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    command.upgrade(alembic_config(url), "head")


def scalar(dsn: str, query: str, *params: object) -> Any:
    """One value from PostgreSQL, on a connection of the test's own."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


# -- Milvus: private collections -----------------------------------------------------------------
def milvus_client(uri: str, timeout: float = 10) -> MilvusClient:
    """A pymilvus client on a connection of its own.

    pymilvus shares one connection between every client with the same URI and token, and
    ``close()`` removes it for all of them; a private alias keeps the tests' own clients from
    closing the service's connection.
    """
    return MilvusClient(uri=uri, timeout=timeout, alias=f"sfm-faults-{uuid.uuid4().hex}")


def own_connection(uri: str) -> str:
    """The same Milvus server under another URI spelling, hence another pymilvus connection.

    In-process stacks built from the test stack's own URI would share the session stack's
    connection, and closing them would close it for the rest of the run.
    """
    return uri.rstrip("/") if uri.endswith("/") else uri + "/"


def drop_collections(uri: str, base: str) -> None:
    """Drop the collection ``base`` and the item collections named after it."""
    client = milvus_client(uri)
    try:
        for name in client.list_collections():
            if name == base or name.startswith((f"{base}_items", f"{base}_space_")):
                client.drop_collection(name)
    finally:
        client.close()


def ensure_collections(settings: Settings) -> None:
    """Create the memories' and the items' default collection, as bootstrap does.

    Set-up, not what is tested: it waits up to 30 s on Milvus (not the 5 s default store
    timeout), since a shared Milvus busy with other suites' collections loads a new one slowly.
    """
    from somafractalmemory.stack import create_stack
    from somafractalmemory.stores.ownership import read_identity

    stack = create_stack(settings.model_copy(update={"store_timeout": 30.0}))
    try:
        stack.milvus.ensure_collection(stack.embedder.dimension, read_identity(stack.postgres))
        stack.items.ensure_collections()
    finally:
        stack.close()


def metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in Prometheus text."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not on /metrics"
    return float(found.group(1))


def tenant_vector_count(uri: str, collection: str, tenant_id: int) -> int:
    """The tenant's entity count, asked of Milvus directly with strong consistency."""
    client = milvus_client(uri)
    try:
        rows = client.query(
            collection,
            filter=f"tenant_id == {int(tenant_id)}",
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
    finally:
        client.close()
    return int(rows[0]["count(*)"])


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


class ApiServer(ServerProcess):
    """The real HTTP server (uvicorn, ``somafractalmemory.http_api:app``) as a subprocess
    configured by the environment, killed with SIGKILL and started again at will (on the same
    port); ready means /readyz answers 200."""

    def __init__(self, settings: Settings, log_path: Path, **env: str) -> None:
        super().__init__(
            stack_env(settings, **env), log_path, access_log=False, cwd=ROOT, python=str(PYTHON)
        )

    def start(self, probe: str = "/readyz", timeout: float = 120) -> None:
        """Start it and wait until ``probe`` answers 200."""
        super().start(probe, timeout)


def python_module(*args: str) -> list[str]:
    """A command line running ``python -m ...`` in the venv."""
    return [str(PYTHON), "-m", *args]


__all__ = [
    "PYTHON",
    "ROOT",
    "ApiServer",
    "PrivateMilvus",
    "PrivatePostgres",
    "PrivateRedis",
    "answering",
    "drop_collections",
    "drop_database",
    "ensure_collections",
    "free_port",
    "metric",
    "migrate",
    "milvus_client",
    "own_connection",
    "python_module",
    "recreate_database",
    "scalar",
    "sibling_dsn",
    "stack_env",
    "tenant_vector_count",
    "wait_until",
    "with_updates",
]
