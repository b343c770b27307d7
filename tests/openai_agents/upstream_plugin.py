"""Our pytest plugin for the OpenAI Agents SDK's own session tests, run against SFM.

``scripts/openai_agents_tests.py`` extracts the pinned sdist's ``tests/`` (their package, their
``conftest.py``, unchanged) with ``testkit/`` beside, and runs ``tests/memory/test_session.py``
and ``tests/memory/test_session_limit.py`` with ``-p upstream_plugin``. What is swapped, and
nothing else:

- a real SFM server (uvicorn subprocess, our ``testkit/server.py``) on the test stack named by
  POSTGRES_DSN, MILVUS_URI, MILVUS_COLLECTION and REDIS_URL, the database recreated for the
  session;
- in those two modules the name ``SQLiteSession`` builds an :class:`SFMSession` instead: one
  fresh tenant per ``db_path`` (so two sessions opened on one database file share their data,
  and every test, which makes its own temporary file, starts empty), the same
  ``session_settings``, and ``close()`` a no-op (its clients are per event loop). The tests
  of SQLite itself (its connections, file locks, corrupt rows) are deselected in
  ``tests/openai_agents/deselect.txt``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from agents.memory import SessionSettings
from pymilvus import MilvusClient

from somafractalmemory.bootstrap import alembic_config
from somafractalmemory.core.keys import KeyService
from somafractalmemory.openai_agents import SFMSession
from somafractalmemory.settings import Settings
from somafractalmemory.stack import create_postgres_store, create_stack
from somafractalmemory.stores.ownership import read_identity
from testkit.server import ServerError, ServerProcess  # testkit/, copied beside by the runner
from testkit.stores import recreate_database

SERVER_START_TIMEOUT = 240.0
SWAPPED = ("test_session.py", "test_session_limit.py")


class _Harness:
    url = ""
    keys: KeyService | None = None
    tenants: dict[str, str] = {}  # noqa: RUF012 - db_path -> API key, for the session


class FreshTenantSession(SFMSession):
    """``SQLiteSession(session_id, db_path, session_settings=...)`` of the upstream tests."""

    def __init__(
        self,
        session_id: str,
        db_path: str | Path = ":memory:",
        session_settings: SessionSettings | dict[str, Any] | None = None,
        **_ignored: Any,
    ) -> None:
        where = str(db_path)
        if where == ":memory:" or where not in _Harness.tenants:
            assert _Harness.keys is not None
            key, _info = _Harness.keys.create(f"oa-{uuid.uuid4().hex[:16]}")
            _Harness.tenants[where] = key
        super().__init__(
            session_id,
            base_url=_Harness.url,
            api_key=_Harness.tenants[where],
            session_settings=session_settings,
        )

    def close(self) -> None:
        """Nothing to close that a loop still runs: the clients are per event loop."""


class SwappedModule(pytest.Module):
    def _getobj(self) -> Any:
        module = super()._getobj()
        module.SQLiteSession = FreshTenantSession
        return module


def pytest_pycollect_makemodule(module_path: Any, parent: Any) -> Any:
    if module_path.name in SWAPPED:
        return SwappedModule.from_parent(parent, path=module_path)
    return None


def _drop_collections(settings: Settings) -> None:
    milvus = MilvusClient(uri=settings.milvus_uri)
    for name in milvus.list_collections():
        if name.startswith(settings.milvus_collection):
            milvus.drop_collection(name)
    milvus.close()


def _prepare_stack(settings: Settings, dsn: str) -> None:
    from alembic import command

    recreate_database(dsn)
    command.upgrade(alembic_config(settings.sqlalchemy_url), "head")
    _drop_collections(settings)
    stack = create_stack(settings)
    stack.milvus.ensure_collection(stack.embedder.dimension, read_identity(stack.postgres))
    stack.items.ensure_collections()
    stack.close()


@pytest.fixture(scope="session", autouse=True)
def sfm_server() -> Iterator[str]:
    """A fresh SFM stack and a real server on it for the session."""
    if os.environ.get("SFM_COLLECT_ONLY"):
        yield ""
        return
    settings = Settings().model_copy(update={"store_timeout": 30.0})  # type: ignore[call-arg]
    dsn = settings.postgres_dsn.get_secret_value()
    if "test" not in urlsplit(dsn).path or "test" not in settings.milvus_collection:
        pytest.exit("POSTGRES_DSN and MILVUS_COLLECTION must name test stores", returncode=2)
    try:
        _prepare_stack(settings, dsn)
    except Exception as exc:  # noqa: BLE001 - reported and the run stopped, not retried per test
        pytest.exit(f"SFM test stack set-up failed: {exc!r}", returncode=2)
    postgres = create_postgres_store(settings)
    _Harness.keys = KeyService(postgres)
    env = {**os.environ, "SOMA_RATE_LIMIT_PER_MINUTE": "0", "SOMA_STORE_TIMEOUT": "30"}
    log = Path(tempfile.mkdtemp(prefix="sfm-openai-agents-")) / "server.log"
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
        postgres.engine.dispose()
        _drop_collections(settings)
