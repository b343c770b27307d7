"""LangChain's standard vector-store suite (``langchain-tests``), unchanged, on SFMVectorStore.

Run by ``make test-langchain`` (``scripts/langchain_tests.py``), which puts the pinned,
hash-checked ``langchain_tests`` package on the path and runs this file with
``asyncio_mode=auto`` (the suite's async tests carry no marker); it is not named ``test_*`` so
that ``make test`` does not collect it. The only code here is the ``vectorstore`` fixture the
suite asks for: an empty store, that is an SFMVectorStore for a **fresh tenant** on the
session's real server (``sfm_server`` of tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from somafractalmemory.langchain import SFMVectorStore
from testkit.server import ServerProcess


@pytest.fixture
async def fresh_store(tenant_key: str, sfm_server: ServerProcess) -> AsyncIterator[SFMVectorStore]:
    """An empty SFMVectorStore: a new tenant of its own, both clients on the real server."""
    store = SFMVectorStore(
        base_url=sfm_server.url,
        api_key=tenant_key,
        embedding=VectorStoreIntegrationTests.get_embeddings(),
    )
    try:
        yield store
    finally:
        await store.aclose()


class TestSFMVectorStore(VectorStoreIntegrationTests):
    """The standard suite, sync and async (``has_sync``, ``has_async``, ``has_get_by_ids``
    keep their default, true)."""

    @pytest.fixture
    def vectorstore(self, fresh_store: SFMVectorStore) -> SFMVectorStore:
        return fresh_store
