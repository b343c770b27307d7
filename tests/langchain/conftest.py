"""Fixtures of the LangChain tests (run by ``make test-langchain``, see
``scripts/langchain_tests.py``): an API key of a fresh tenant on the session's real server.

Also the markers ``langchain_tests`` puts on its other suites at import (its package imports
every suite): ``benchmark`` (pytest-benchmark) and ``vcr`` (pytest-recording), plugins the
vector-store suite does not use and that are not installed. Registered so that
``--strict-markers`` accepts them; nothing here runs a test differently.
"""

from __future__ import annotations

import uuid

import pytest

from somafractalmemory.core.keys import KeyService
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "benchmark: pytest-benchmark's (langchain_tests' chat suite)"
    )
    config.addinivalue_line("markers", "vcr: pytest-recording's (langchain_tests' chat suite)")


@pytest.fixture
def tenant_key(stack: Stack, sfm_server: ServerProcess) -> str:
    """The API key of a new tenant (so its stores start empty) on the real server."""
    key, _info = KeyService(stack.postgres).create(f"lc-{uuid.uuid4().hex[:12]}")
    return key
