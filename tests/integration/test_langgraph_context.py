"""``SFMStore`` and ``AsyncSFMStore`` as context managers, on the session's real server: the
store works inside the block; leaving it stops the TTL sweeper and closes the client (a call
after it fails as on a closed httpx client), an exception in the block included."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from somafractalmemory.langgraph import AsyncSFMStore, SFMStore
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess


def new_key(stack: Stack) -> str:
    key, _info = stack.keys.create(f"lg-ctx-{uuid.uuid4().hex[:12]}")
    return key


def test_the_sync_store_closes_its_client_and_sweeper_on_leaving(
    sfm_server: ServerProcess, stack: Stack
) -> None:
    with SFMStore(base_url=sfm_server.url, api_key=new_key(stack)) as store:
        store.put(("prefs", "ann"), "tea", {"text": "Ann drinks green tea"})
        item = store.get(("prefs", "ann"), "tea")
        assert item is not None
        assert item.value == {"text": "Ann drinks green tea"}
        store.start_ttl_sweeper(sweep_interval_minutes=60)
        sweeper = store._sweeper
        assert sweeper is not None
        assert sweeper.is_alive()
    assert not sweeper.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        store.get(("prefs", "ann"), "tea")


def test_the_sync_store_closes_its_client_when_the_block_raises(
    sfm_server: ServerProcess, stack: Stack
) -> None:
    store = SFMStore(base_url=sfm_server.url, api_key=new_key(stack))

    def fail_inside() -> None:
        with store:
            assert store.list_namespaces() == []
            raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        fail_inside()
    with pytest.raises(RuntimeError, match="closed"):
        store.list_namespaces()


def test_the_async_store_closes_its_client_and_sweeper_on_leaving(
    sfm_server: ServerProcess, stack: Stack
) -> None:
    key = new_key(stack)

    async def scenario() -> None:
        async with AsyncSFMStore(base_url=sfm_server.url, api_key=key) as store:
            await store.aput(("prefs", "bob"), "coffee", {"text": "Bob likes black coffee"})
            item = await store.aget(("prefs", "bob"), "coffee")
            assert item is not None
            assert item.value["text"] == "Bob likes black coffee"
            sweeper = await store.start_ttl_sweeper(sweep_interval_minutes=60)
            assert not sweeper.done()
        assert sweeper.cancelled()
        with pytest.raises(RuntimeError, match="closed"):
            await store.aget(("prefs", "bob"), "coffee")

    asyncio.run(scenario())
