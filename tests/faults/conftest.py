"""Fixtures of the fault tests: private store processes they may stop, private databases.

The shared PostgreSQL, Redis and Milvus are never stopped: a test that stops a store stops a
private one it started itself. The private Milvus takes 10-20 s to answer, so it is launched
(not waited for) when the first fault test starts, waited for by the first test that uses it,
and kept for the later modules that use it too.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from tests.faults.support import PrivateMilvus, PrivateRedis

_MILVUS: dict[str, PrivateMilvus] = {}


def _launch_private_milvus() -> PrivateMilvus:
    if "server" not in _MILVUS:
        datadir = Path(tempfile.mkdtemp(prefix="sfm-faults-milvus-"))
        server = PrivateMilvus(datadir)
        server.launch()
        _MILVUS["server"] = server
    return _MILVUS["server"]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the private Milvus even if no test got to wait for it."""
    server = _MILVUS.pop("server", None)
    if server is not None:
        server.stop()
        shutil.rmtree(server.datadir, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _early_private_milvus(request: pytest.FixtureRequest) -> None:
    """Launch the private Milvus now when a later test of the run needs it."""
    if any("private_milvus" in getattr(item, "fixturenames", ()) for item in request.session.items):
        _launch_private_milvus()


@pytest.fixture(scope="session")
def private_milvus() -> PrivateMilvus:
    """A running Milvus standalone of the fault tests' own (ports and data dir its own),
    shared by the modules that use it: a start costs 20-40 s. Each module leaves it running
    with its own collections dropped; it is stopped and removed (it holds about 1 GB) as soon
    as the last test that uses it is done (:func:`pytest_runtest_teardown`)."""
    server = _launch_private_milvus()
    if server.proc is None:
        server.launch()
    server.wait_ready()
    return server


def _uses_private_milvus(item: pytest.Item) -> bool:
    return "private_milvus" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop and remove the private Milvus after the last test of the run that uses it (after
    pytest's own teardown, so the module fixtures on it have already cleaned up)."""
    if not _uses_private_milvus(item):
        return
    if nextitem is not None:
        items = item.session.items
        if any(_uses_private_milvus(later) for later in items[items.index(item) + 1 :]):
            return
    server = _MILVUS.pop("server", None)
    if server is not None:
        server.stop()
        shutil.rmtree(server.datadir, ignore_errors=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A running ``redis-server`` of the test's own on a free port."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dimension(stack: Stack) -> int:
    """The embedding model's dimension."""
    return stack.embedder.dimension


@pytest.fixture(scope="session")
def test_settings(stack: Stack) -> Settings:
    """The test stack's settings, once the session's database and collections exist."""
    return stack.settings
