"""Real processes for tests and benchmarks: a free port, waiting on a condition, and the SFM
server (``uvicorn somafractalmemory.http_api:app``) as a subprocess.

One helper for everything that needs the server over real HTTP (tests/integration,
tests/browser, tests/faults, benchmarks/load.py and the LangGraph suites, which get a copy of
``testkit/`` beside their tests from ``scripts/langgraph_tests.py``): pick a free port, start
it with an environment naming the stack, poll a probe quickly until it answers 200 (failing
early, with the server's output, if the process exits), and stop it (SIGTERM, then SIGKILL) or
kill it (SIGKILL, no shutdown).

This module imports nothing of the server at run time (settings only for type checking).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import httpx

if TYPE_CHECKING:
    from somafractalmemory.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# The venv running this process (the repository's .venv; `make test-milvus-lite` runs the
# tests from a venv of its own, whose servers and CLI must use its pymilvus too).
VENV_BIN = Path(sys.prefix) / "bin"
PYTHON = VENV_BIN / "python"
T = TypeVar("T")

# The shared stack's ports (PostgreSQL, Redis, Milvus and its etcd/metrics): never handed out.
SHARED_PORTS = frozenset({5432, 6379, 19530, 19529, 2379, 2380, 9091})
START_TIMEOUT = 180.0  # seconds: importing torch and loading the model on a busy machine
POLL_INTERVAL = 0.05  # seconds between probes: the probe is cheap, waiting is not


def free_port() -> int:
    """A TCP port nothing listens on (bound and released at once; never a shared one)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in SHARED_PORTS:
            return port


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


def server_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """This process's environment with the stack of ``settings`` (and ``overrides``)."""
    env = {
        **os.environ,
        "POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "MILVUS_URI": settings.milvus_uri,
        "MILVUS_COLLECTION": settings.milvus_collection,
        "REDIS_URL": settings.redis_url.get_secret_value(),
        # The background sweep deletes every tenant's expired items: a server of its own on
        # the test stack must sweep no sooner than the in-process app, or it races TTL tests.
        "SOMA_ITEMS_SWEEP_INTERVAL_SECONDS": str(settings.items_sweep_interval_seconds),
        # Nor deliver webhooks sooner (the test settings deliver none on the shared stack).
        "SOMA_WEBHOOK_CONCURRENCY": str(settings.webhook_concurrency),
        "PYTHONUNBUFFERED": "1",
    }
    if settings.milvus_token.get_secret_value():
        env["MILVUS_TOKEN"] = settings.milvus_token.get_secret_value()
    env.update(overrides)
    return env


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


class ServerError(RuntimeError):
    """The server exited, or did not answer its probe in time; carries its output's tail."""


class ServerProcess:
    """One uvicorn subprocess serving ``somafractalmemory.http_api:app``.

    ``env`` is the whole process environment (the stack's POSTGRES_DSN, MILVUS_URI, ...);
    output goes to ``log_path`` (appended to, so a restart keeps the earlier output). The
    process leads a session of its own, so :meth:`kill` takes its children too. The port is
    kept across restarts.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        *,
        access_log: bool = True,
        log_level: str = "info",
        cwd: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env)
        self.log_path = log_path
        self.access_log = access_log
        self.log_level = log_level
        self.cwd = cwd
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        line = [self.python, "-m", "uvicorn", "somafractalmemory.http_api:app"]
        line += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", self.log_level]
        if not self.access_log:
            line.append("--no-access-log")
        return line

    def launch(self) -> None:
        """Start the process without waiting for it (see :meth:`wait_ready`)."""
        assert self.proc is None, "already running"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
            )

    def wait_ready(self, probe: str = "/healthz", timeout: float = START_TIMEOUT) -> None:
        """Poll ``probe`` until it answers 200; :class:`ServerError` if the process exits
        first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        last: object = None
        with httpx.Client(timeout=5.0) as http:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise ServerError(f"SFM server exited ({code}):\n{self.log_tail(60)}")
                try:
                    answer = http.get(f"{self.url}{probe}")
                    if answer.status_code == 200:
                        return
                    last = f"{answer.status_code} {answer.text[:300]}"
                except httpx.TransportError as exc:
                    last = exc  # not listening yet
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"SFM server on {self.url}: {probe} not 200 after {timeout:.0f} s "
                        f"(last: {last!r})\n{self.log_tail(60)}"
                    )
                time.sleep(POLL_INTERVAL)

    def start(self, probe: str = "/healthz", timeout: float = START_TIMEOUT) -> None:
        """:meth:`launch`, then :meth:`wait_ready`."""
        self.launch()
        self.wait_ready(probe, timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (the lifespan closes the stores), SIGKILL after ``timeout`` seconds."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the process and its children: no shutdown, no flush, no lifespan exit."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None

    def output(self, since: int = 0) -> str:
        """What the server wrote, from byte ``since`` of its log (see :meth:`log_size`)."""
        with self.log_path.open("rb") as log:
            log.seek(since)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


@contextmanager
def running_server(
    env: Mapping[str, str],
    log_path: Path,
    *,
    probe: str = "/healthz",
    timeout: float = START_TIMEOUT,
    access_log: bool = True,
    log_level: str = "info",
) -> Iterator[ServerProcess]:
    """A started :class:`ServerProcess`, stopped on the way out."""
    server = ServerProcess(env, log_path, access_log=access_log, log_level=log_level)
    try:
        server.start(probe, timeout)
        yield server
    finally:
        server.stop()


__all__ = [
    "START_TIMEOUT",
    "ServerError",
    "ServerProcess",
    "free_port",
    "running_server",
    "server_env",
]


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
