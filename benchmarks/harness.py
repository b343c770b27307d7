"""The service under test: its isolated stores, the state of its Milvus index, and the real
server as a subprocess."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis
from alembic import command
from common import BenchConfig
from psycopg import sql
from pymilvus import MilvusClient

from somafractalmemory.bootstrap import alembic_config

PYTHON = sys.executable
START_TIMEOUT = 180.0


def prepare_stores(cfg: BenchConfig) -> None:
    """A clean benchmark stack: database created and migrated, its tables, the Redis db and
    the benchmark collections emptied."""
    name = cfg.postgres_dsn.rsplit("/", 1)[1]
    with psycopg.connect(cfg.admin_dsn, autocommit=True, connect_timeout=5) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    command.upgrade(alembic_config(cfg.sqlalchemy_url), "head")
    with psycopg.connect(cfg.postgres_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE tenants RESTART IDENTITY CASCADE")
    cache = redis.Redis.from_url(cfg.redis_url)
    cache.flushdb()
    cache.close()
    client = MilvusClient(uri=cfg.milvus_uri)
    # The items' default collection too: its ids (restarted above) would name other items.
    for collection in (cfg.collection, f"{cfg.collection}_items", cfg.scratch_collection):
        if client.has_collection(collection):
            client.drop_collection(collection)
    client.close()


@dataclass(frozen=True)
class IndexState:
    """How much of a collection Milvus's vector index covers.

    ``describe_index`` counts sealed segments only: rows still in a growing segment (every
    recent write until Milvus seals it, or a flush does) are in neither ``sealed`` nor
    ``indexed``, and Milvus searches them with its interim index (IVF_FLAT, ``nprobe`` set by
    the server, see docs/deployment.md, "Recall"), not with HNSW and its ``ef``.
    """

    index_type: str
    rows: int  # entities in the collection (``count(*)``, Strong consistency)
    sealed: int  # rows in sealed segments (describe_index's total_rows)
    indexed: int  # rows of sealed segments whose index is built
    pending: int  # sealed rows waiting for their index

    @property
    def complete(self) -> bool:
        """Every row sealed and indexed, none pending."""
        return self.sealed >= self.rows and self.indexed >= self.sealed and self.pending == 0

    def __str__(self) -> str:
        return (
            f"{self.index_type} {self.indexed:,} / {self.rows:,} rows indexed "
            f"({self.rows - min(self.sealed, self.rows):,} in growing segments, "
            f"{self.pending:,} pending)"
        )


def index_state(cfg: BenchConfig) -> IndexState:
    """The index state of the benchmark's collection (from ``describe_index``)."""
    client = MilvusClient(uri=cfg.milvus_uri, alias="sfm-bench-index")
    try:
        info = client.describe_index(cfg.collection, client.list_indexes(cfg.collection)[0])
        counted = client.query(
            cfg.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
    finally:
        client.close()
    return IndexState(
        index_type=str(info["index_type"]),
        rows=int(counted[0]["count(*)"]),
        sealed=int(info["total_rows"]),
        indexed=int(info["indexed_rows"]),
        pending=int(info["pending_index_rows"]),
    )


def flush_and_index(cfg: BenchConfig, timeout: float) -> tuple[IndexState, float]:
    """Flush the collection (every growing segment sealed) and wait until its index covers
    every row; the state then and the seconds it took. Raises after ``timeout`` seconds: a
    figure timed on a half-built index would not be what it says."""
    started = time.monotonic()
    client = MilvusClient(uri=cfg.milvus_uri, alias="sfm-bench-flush")
    try:
        client.flush(cfg.collection, timeout=timeout)
    finally:
        client.close()
    state = index_state(cfg)
    while not state.complete:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"Milvus index not built after {timeout:.0f} s: {state}")
        time.sleep(2)
        state = index_state(cfg)
    return state, time.monotonic() - started


def healthy(base_url: str) -> bool:
    """Whether ``/healthz`` answers 200."""
    try:
        return httpx.get(f"{base_url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


class Server:
    """``uvicorn somafractalmemory.http_api:app`` on the benchmark stack."""

    def __init__(self, cfg: BenchConfig, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.env = {**cfg.server_env(), **(env or {})}
        self.log_path = Path(tempfile.mkstemp(prefix="sfm-bench-server-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [PYTHON, "-m", "somafractalmemory.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"somafractalmemory {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def start(self) -> None:
        """Ensure the collection, start the server and wait until ``/healthz`` is 200."""
        if healthy(self.cfg.base_url):
            raise RuntimeError(f"something already answers on {self.cfg.base_url}; not starting")
        self._cli("ensure-collection")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "uvicorn",
                    "somafractalmemory.http_api:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.cfg.port),
                    "--proxy-headers",
                    "--no-server-header",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not healthy(self.cfg.base_url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become healthy:\n{self.log_tail()}")
            time.sleep(0.5)

    def create_key(self, tenant: str) -> str:
        """A new API key for ``tenant`` (the key is the last line the CLI prints)."""
        return self._cli("keys", "create", "--tenant", tenant).splitlines()[-1]

    def rss_mib(self) -> float:
        """The server's resident memory."""
        if self.process is None:
            return 0.0
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@contextmanager
def running_server(cfg: BenchConfig, env: dict[str, str] | None = None) -> Iterator[Server]:
    """The started server (``env``: settings over the stack's), always stopped at the end."""
    server = Server(cfg, env)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        print(f"server log: {server.log_path}", file=sys.stderr)
