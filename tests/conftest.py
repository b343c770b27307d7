"""Shared fixtures: a fresh test database, collection and Redis db, all real.

`make test` sets POSTGRES_DSN, MILVUS_URI, MILVUS_COLLECTION and REDIS_URL to the test stack
(database `soma_test`, collection `soma_test_memories`, Redis db 15). The session starts by
recreating the database, dropping the collection and flushing the Redis db, so every run
begins empty; every test then works in tenants of its own. Tests that need the server over real
HTTP share one uvicorn process for the session (``sfm_server``).

Under pytest-xdist (``make test`` runs four workers, ``-n 4``) each worker gets a stack of its
own, derived from those names (:func:`_isolate_xdist_worker`): the workers never share a
database, a collection prefix or a Redis db, so one's fresh start cannot wipe the other's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
import redis
from fastapi.testclient import TestClient
from pymilvus import MilvusClient

from somafractalmemory.api.app import create_app
from somafractalmemory.core.keys import KeyService
from somafractalmemory.models import DatabaseIdentity
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack, create_postgres_store, create_stack
from somafractalmemory.stores.ownership import read_identity
from testkit.server import ServerProcess, running_server, server_env
from testkit.stores import migrate, recreate_database

# tests/onnx_build need torch, which the server's environment has not: `make test` runs them
# in the export's build environment (`make test-onnx-build`), not here.
collect_ignore = ["onnx_build"]


def _worker_names(worker: str, dsn: str, collection: str, redis_url: str) -> dict[str, str]:
    """The stack names of xdist worker ``worker`` (``gw0``, ``gw1``, ...).

    The collection becomes ``<stem>_<worker>_memories`` rather than gaining a suffix: the
    session drops every collection *starting with* its own name, so no worker's name may be a
    prefix of another's. Redis dbs: the configured one, then two below it, then five and more
    below it (`make test`: 15, 13, 8, 7, ...; 14 and 12 to 9 are the suites `.ci/run` runs
    beside it: LangGraph, TypeScript, LangChain, milvus-lite, OpenAI Agents)."""
    index = int(worker.removeprefix("gw"))
    parts = urlsplit(dsn)
    stem = collection.removesuffix("_memories")
    redis_parts = urlsplit(redis_url)
    base_db = int(redis_parts.path.strip("/") or 0)
    db = (base_db, base_db - 2)[index] if index < 2 else base_db - 5 - index
    if db < 0:
        raise pytest.UsageError(f"xdist worker {worker}: no Redis db left below {base_db}")
    return {
        "POSTGRES_DSN": parts._replace(path=f"{parts.path}_{worker}").geturl(),
        "MILVUS_COLLECTION": f"{stem}_{worker}_memories",
        "REDIS_URL": redis_parts._replace(path=f"/{db}").geturl(),
    }


def _isolate_xdist_worker() -> None:
    """Point this xdist worker at a stack of its own (a no-op outside xdist).

    Done at import, before any fixture reads the environment: the settings, every server
    subprocess and every test building a stack of its own read these same variables."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    os.environ.update(
        _worker_names(
            worker,
            os.environ.get("POSTGRES_DSN", ""),
            os.environ.get("MILVUS_COLLECTION", ""),
            os.environ.get("REDIS_URL", ""),
        )
    )


_isolate_xdist_worker()


def _require_test_stack() -> None:
    dsn = os.environ.get("POSTGRES_DSN", "")
    collection = os.environ.get("MILVUS_COLLECTION", "")
    if "test" not in urlsplit(dsn).path or "test" not in collection:
        pytest.exit(
            "refusing to run: POSTGRES_DSN and MILVUS_COLLECTION must name test stores "
            "(use `make test`)",
            returncode=2,
        )


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The test stack's settings, from the environment `make test` sets."""
    _require_test_stack()
    # Tests sweep expired items themselves (POST /items/sweep, a Maintainer of their own);
    # the app's background sweep in the middle of a TTL test would race its counts. No
    # webhook deliveries from the shared stack: the contract test registers webhooks to
    # generated https:// URLs, which must not be called (tests/integration/test_webhooks.py
    # delivers on a stack of its own).
    return Settings(  # type: ignore[call-arg]
        items_sweep_interval_seconds=3600, webhook_concurrency=0
    )


def drop_test_collections(settings: Settings) -> None:
    """Drop every collection named after the test collection: its own, the items' (default
    and registered spaces) and those of the tests with stacks of their own.

    At the start they would hold ids of the old database; at the end, left loaded, the
    dozens of spaces the schema tests register keep Milvus busy for whatever runs next on
    the machine (benchmarks, the next suite)."""
    client = MilvusClient(uri=settings.milvus_uri)
    for name in client.list_collections():
        if name.startswith(settings.milvus_collection):
            client.drop_collection(name)
    client.close()


@pytest.fixture(scope="session")
def fresh_stack(settings: Settings) -> Iterator[Settings]:
    """Empty database at the migrations' head, no collection, empty Redis db; the
    collections are dropped again when the session ends."""
    dsn = settings.postgres_dsn.get_secret_value()
    recreate_database(dsn)
    migrate(dsn)
    drop_test_collections(settings)
    redis.Redis.from_url(settings.redis_url.get_secret_value()).flushdb()
    yield settings
    drop_test_collections(settings)


@pytest.fixture(scope="session")
def owner(fresh_stack: Settings) -> DatabaseIdentity:
    """The test database's identity, which its collections carry."""
    store = create_postgres_store(fresh_stack)
    try:
        return read_identity(store)
    finally:
        store.engine.dispose()


@pytest.fixture(scope="session")
def stack(fresh_stack: Settings) -> Iterator[Stack]:
    """The real stack with the collection ensured, as bootstrap leaves it."""
    built = create_stack(fresh_stack)
    built.milvus.ensure_collection(built.embedder.dimension, read_identity(built.postgres))
    built.items.ensure_collections()
    yield built
    built.close()


@pytest.fixture(scope="session")
def client(stack: Stack) -> Iterator[TestClient]:
    """The HTTP API in-process, its lifespan run against the real stores."""
    with TestClient(create_app(stack.settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def sfm_server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real SFM server (uvicorn subprocess, access log on) on the test stack, shared by
    every test that needs real HTTP on the default configuration (the client, MCP and browser
    tests): starting one costs an interpreter, the model and a stack. Tests that need another
    configuration start their own with :func:`testkit.server.running_server`."""
    log = tmp_path_factory.mktemp("sfm-server") / "server.log"
    with running_server(server_env(stack.settings), log) as server:
        yield server


@pytest.fixture
def no_store_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No store address in the environment, and a working directory without a ``.env`` (the
    repository's own, written by `make run`, would fill them in)."""
    for name in ("POSTGRES_DSN", "MILVUS_URI", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("no-env-file"))


@pytest.fixture
def make_key(stack: Stack) -> Callable[[], dict[str, str]]:
    """Create a new tenant with a key; returns the Authorization header for it."""

    def make(name: str | None = None) -> dict[str, str]:
        key, _info = KeyService(stack.postgres).create(name or f"t-{uuid.uuid4().hex[:12]}")
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def auth(make_key: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Headers for a fresh tenant of this test's own."""
    return make_key()
