"""Our fixtures, swapped in for LangGraph's when their store tests run against SFM.

`scripts/langgraph_tests.py` copies this file over the upstream `tests/conftest.py` of each
downloaded package and runs their `tests/test_store.py` (and `tests/test_async_store.py`)
unchanged. What is swapped, and nothing else:

- their `conftest.py` (a PostgreSQL on port 5441, tables cleared per test) becomes this file:
  a real SFM server (uvicorn subprocess, started by our `testkit/server.py`; the runner
  copies `testkit/` next to their `tests/`) on the test stack named by
  POSTGRES_DSN, MILVUS_URI, MILVUS_COLLECTION and REDIS_URL, with the database recreated for
  the session;
- in the test modules, the names that build their store (`InMemoryStore`; the `store` and
  `vector_store` fixtures; `_create_vector_store`) now build an `SFMStore`/`AsyncSFMStore` on a
  **fresh tenant** each, with the same index and TTL configuration the upstream code asks for;
  their `vector`/`halfvec` column types have no SFM meaning and their `default`/`pipe`/`pool`
  connection modes collapse into one run;
- nothing of the tests: the runner counts the tests that reach SFM (build one of these stores
  and send it an op, through ``batch``/``abatch``), written at the session's end to the file
  SFM_REACHED_FILE names;
- `store._cursor()` (which their TTL tests use to back-date rows with SQL on their `store`
  table) opens a cursor on our database in which a view `store` shows the tenant's `items`
  rows under their column names (`prefix`, `key`, `expires_at`, `updated_at`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row
from pymilvus import MilvusClient
from tests.embed_test_utils import CharacterEmbeddings

from somafractalmemory.bootstrap import alembic_config
from somafractalmemory.client import AsyncSFMClient, SFMClient
from somafractalmemory.core.keys import KeyService
from somafractalmemory.langgraph import AsyncSFMStore, SFMStore
from somafractalmemory.settings import Settings
from somafractalmemory.stack import create_postgres_store, create_stack
from somafractalmemory.stores.ownership import read_identity
from testkit.server import ServerError, ServerProcess  # testkit/, copied beside by the runner
from testkit.stores import recreate_database

# Names the upstream modules import from their conftest.
DEFAULT_POSTGRES_URI = "unused: the store is SomaFractalMemory"
DEFAULT_URI = DEFAULT_POSTGRES_URI
VECTOR_TYPES = ["vector", "halfvec"]
__all__ = ["DEFAULT_URI", "VECTOR_TYPES", "CharacterEmbeddings"]

SERVER_START_TIMEOUT = 240.0
STORE_VIEW = """
CREATE VIEW store AS
SELECT namespace_path AS prefix, key, payload AS value, created_at, updated_at, expires_at,
       ttl_minutes
FROM records
WHERE namespace_path <> ''
  AND tenant_id = nullif(current_setting('sfm.tenant', true), '')::bigint
"""


class _Harness:
    """What the swapped-in stores need: the server URL and a way to make tenants."""

    url = ""
    dsn = ""
    keys: KeyService | None = None
    postgres: Any = None
    stores: list[Any] = []  # noqa: RUF012 - one list for the session
    current = ""  # the running test's id
    reached: set[str] = set()  # noqa: RUF012 - the ids of the tests that sent SFM an op

    @classmethod
    def new_tenant(cls) -> tuple[str, int]:
        assert cls.keys is not None
        name = f"lg-{uuid.uuid4().hex[:16]}"
        key, _info = cls.keys.create(name)
        tenant = cls.postgres.tenant_by_name(name)
        return key, int(tenant.id)


def _cursor_for(tenant_id: int) -> Any:
    @contextmanager
    def cursor() -> Iterator[Any]:
        with psycopg.connect(_Harness.dsn, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("SELECT set_config('sfm.tenant', %s, false)", (str(tenant_id),))
            with conn.cursor() as cur:
                yield cur

    return cursor


def _acursor_for(tenant_id: int) -> Any:
    @asynccontextmanager
    async def cursor() -> AsyncIterator[Any]:
        conn = await psycopg.AsyncConnection.connect(
            _Harness.dsn, autocommit=True, row_factory=dict_row
        )
        async with conn:
            await conn.execute("SELECT set_config('sfm.tenant', %s, false)", (str(tenant_id),))
            async with conn.cursor() as cur:
                yield cur

    return cursor


class FreshTenantStore(SFMStore):
    """`InMemoryStore(**kwargs)` and their sync fixtures: an SFMStore on a new tenant."""

    def __init__(self, **kwargs: Any) -> None:
        key, tenant_id = _Harness.new_tenant()
        super().__init__(
            SFMClient(_Harness.url, key, timeout=120),
            index=kwargs.get("index"),
            ttl=kwargs.get("ttl"),
        )
        self.tenant_id = tenant_id
        self._cursor = _cursor_for(tenant_id)
        self.setup()
        _Harness.stores.append(self)

    def batch(self, ops: Any) -> Any:
        _Harness.reached.add(_Harness.current)
        return super().batch(ops)

    def teardown(self) -> None:
        if self.embeddings is not None:
            self.client.delete_space("langgraph")
        self.close()


class FreshTenantAsyncStore(AsyncSFMStore):
    """Their async fixtures: an AsyncSFMStore on a new tenant."""

    __slots__ = ("_cursor", "tenant_id")

    def __init__(self, **kwargs: Any) -> None:
        key, tenant_id = _Harness.new_tenant()
        super().__init__(
            AsyncSFMClient(_Harness.url, key, timeout=120),
            index=kwargs.get("index"),
            ttl=kwargs.get("ttl"),
        )
        self.tenant_id = tenant_id
        self._cursor = _acursor_for(tenant_id)

    async def abatch(self, ops: Any) -> Any:
        _Harness.reached.add(_Harness.current)
        return await super().abatch(ops)

    async def ateardown(self) -> None:
        if self.embeddings is not None:
            await self.client.delete_space("langgraph")
        await self.aclose()


def _index(
    fake_embeddings: Any, distance_type: str, text_fields: list[str] | None
) -> dict[str, Any]:
    return {
        "dims": fake_embeddings.dims,
        "embed": fake_embeddings,
        "distance_type": distance_type,
        "fields": text_fields,
    }


def swap_sync_module(module: Any) -> None:
    """Swap the store builders of `tests/test_store.py` (both packages)."""
    if hasattr(module, "InMemoryStore"):
        module.InMemoryStore = FreshTenantStore
    if not hasattr(module, "TTL_MINUTES"):
        return
    ttl_minutes = module.TTL_MINUTES

    @pytest.fixture
    def store() -> Iterator[SFMStore]:
        built = FreshTenantStore(
            ttl={
                "default_ttl": ttl_minutes,
                "refresh_on_read": True,
                "sweep_interval_minutes": ttl_minutes / 2,
            }
        )
        built.start_ttl_sweeper()  # as their fixture does
        yield built
        built.stop_ttl_sweeper()

    @contextmanager
    def _create_vector_store(
        vector_type: str,
        distance_type: str,
        fake_embeddings: Any,
        text_fields: list[str] | None = None,
        enable_ttl: bool = True,
    ) -> Iterator[SFMStore]:
        yield FreshTenantStore(
            index=_index(fake_embeddings, distance_type, text_fields),
            ttl={"default_ttl": 2, "refresh_on_read": True} if enable_ttl else None,
        )

    @pytest.fixture(params=module._vector_params, ids=lambda p: f"{p[0]}_{p[1]}")
    def vector_store(request: Any, fake_embeddings: Any) -> Iterator[SFMStore]:
        vector_type, distance_type, enable_ttl = request.param
        with _create_vector_store(
            vector_type, distance_type, fake_embeddings, enable_ttl=enable_ttl
        ) as built:
            yield built

    module.store = store
    module._create_vector_store = _create_vector_store
    module.vector_store = vector_store


def swap_async_module(module: Any) -> None:
    """Swap the store builders of `tests/test_async_store.py`."""
    ttl_minutes = module.TTL_MINUTES

    @pytest.fixture
    async def store() -> AsyncIterator[AsyncSFMStore]:
        built = FreshTenantAsyncStore(
            ttl={
                "default_ttl": ttl_minutes,
                "refresh_on_read": True,
                "sweep_interval_minutes": ttl_minutes / 2,
            }
        )
        await built.start_ttl_sweeper()  # as their fixture does
        yield built
        await built.stop_ttl_sweeper()
        await built.ateardown()

    @asynccontextmanager
    async def _create_vector_store(
        vector_type: str,
        distance_type: str,
        fake_embeddings: Any,
        text_fields: list[str] | None = None,
    ) -> AsyncIterator[AsyncSFMStore]:
        built = FreshTenantAsyncStore(index=_index(fake_embeddings, distance_type, text_fields))
        await built.setup()
        try:
            yield built
        finally:
            await built.ateardown()

    params = [
        (vector_type, distance_type)
        for vector_type in VECTOR_TYPES
        for distance_type in ("l2", "inner_product", "cosine")
    ]

    @pytest.fixture(params=params, ids=lambda p: f"{p[0]}_{p[1]}")
    async def vector_store(request: Any, fake_embeddings: Any) -> AsyncIterator[AsyncSFMStore]:
        vector_type, distance_type = request.param
        async with _create_vector_store(vector_type, distance_type, fake_embeddings) as built:
            yield built

    module.store = store
    module._create_vector_store = _create_vector_store
    module.vector_store = vector_store


class SwappedModule(pytest.Module):
    """A test module whose store builders are ours before pytest reads its fixtures."""

    def _getobj(self) -> Any:
        module = super()._getobj()
        if self.path.name == "test_async_store.py":
            swap_async_module(module)
        else:
            swap_sync_module(module)
        return module


def pytest_pycollect_makemodule(module_path: Any, parent: Any) -> Any:
    """Collect the upstream store modules as :class:`SwappedModule`."""
    if module_path.name in ("test_store.py", "test_async_store.py"):
        return SwappedModule.from_parent(parent, path=module_path)
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Iterator[None]:
    """Note which test runs, for the ops its stores receive."""
    _Harness.current = item.nodeid
    yield
    _Harness.current = ""


def pytest_sessionfinish(session: Any) -> None:
    """Write the ids of the tests that reached SFM where the runner reads them."""
    target = os.environ.get("SFM_REACHED_FILE")
    if target:
        Path(target).write_text(json.dumps(sorted(t for t in _Harness.reached if t)))


def _drop_collections(settings: Settings) -> None:
    """Drop this job's collections: before the session, and after it, so that they do not
    stay loaded in the shared Milvus for whatever runs next."""
    milvus = MilvusClient(uri=settings.milvus_uri)
    for name in milvus.list_collections():
        if name.startswith(settings.milvus_collection):
            milvus.drop_collection(name)
    milvus.close()


def _prepare_stack(settings: Settings, dsn: str) -> None:
    """A fresh database at head with the `store` view, and fresh collections."""
    from alembic import command

    recreate_database(dsn)
    command.upgrade(alembic_config(settings.sqlalchemy_url), "head")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(STORE_VIEW)
    _drop_collections(settings)
    stack = create_stack(settings)
    stack.milvus.ensure_collection(stack.embedder.dimension, read_identity(stack.postgres))
    stack.items.ensure_collections()
    stack.close()


@pytest.fixture(scope="session", autouse=True)
def sfm_server() -> Iterator[str]:
    """A fresh SFM stack and a real server on it for the session."""
    # The server gets SOMA_STORE_TIMEOUT=30 (below); the set-up here waits as long, since
    # other suites may keep the shared Milvus busy loading their collections.
    settings = Settings().model_copy(update={"store_timeout": 30.0})  # type: ignore[call-arg]
    dsn = settings.postgres_dsn.get_secret_value()
    if "test" not in urlsplit(dsn).path or "test" not in settings.milvus_collection:
        pytest.exit("POSTGRES_DSN and MILVUS_COLLECTION must name test stores", returncode=2)
    try:
        _prepare_stack(settings, dsn)
    except Exception as exc:  # noqa: BLE001 - reported and the run stopped, not retried per test
        pytest.exit(f"SFM test stack set-up failed: {exc!r}", returncode=2)

    _Harness.dsn = dsn
    _Harness.postgres = create_postgres_store(settings)
    _Harness.keys = KeyService(_Harness.postgres)
    env = {
        **os.environ,
        "SOMA_RATE_LIMIT_PER_MINUTE": "0",
        # The upstream TTL tests back-date rows and expect them unswept while they look.
        "SOMA_ITEMS_SWEEP_INTERVAL_SECONDS": "3600",
        "SOMA_STORE_TIMEOUT": "30",
    }
    log = Path(tempfile.mkdtemp(prefix="sfm-langgraph-")) / "server.log"
    server = ServerProcess(env, log, access_log=False, log_level="warning")
    _Harness.url = server.url
    try:
        try:
            server.start(timeout=SERVER_START_TIMEOUT)
        except ServerError as exc:
            pytest.exit(str(exc), returncode=2)
        yield _Harness.url
    finally:
        server.stop(timeout=30)
        tail = server.log_tail(60)
        if tail.strip():
            sys.stderr.write(f"\n--- SFM server log (tail) ---\n{tail}\n")
        shutil.rmtree(log.parent, ignore_errors=True)
        _Harness.postgres.engine.dispose()
        _drop_collections(settings)


@pytest.fixture(autouse=True)
def _drop_sync_stores() -> Iterator[None]:
    """Close the sync stores a test made (and drop their spaces' collections)."""
    yield
    while _Harness.stores:
        _Harness.stores.pop().teardown()


@pytest.fixture
def fake_embeddings() -> CharacterEmbeddings:
    return CharacterEmbeddings(dims=500)
