"""LangGraph store batches are ordered as ``PostgresStore`` orders them: reads first.

Upstream's ``test_abatch_order`` puts an item and searches its namespace in one batch and
expects the search not to see it; when a batch's ops ran concurrently that passed on timing
only. Here a put comes *before* the reads of its key in each batch, a hundred times over on the
real server: every read must still answer as if the put had not run, and the put must land.
"""

from __future__ import annotations

import asyncio
import uuid

from langgraph.store.base import (
    GetOp,
    Item,
    ListNamespacesOp,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from somafractalmemory.client import AsyncSFMClient, SFMClient
from somafractalmemory.core.keys import KeyService
from somafractalmemory.langgraph import AsyncSFMStore, SFMStore
from somafractalmemory.stack import Stack
from testkit.server import ServerProcess

ROUNDS = 100


def _batch(n: int) -> list[PutOp | SearchOp | GetOp | ListNamespacesOp]:
    namespace = ("test", f"r{n}")
    return [
        PutOp(namespace, "k", {"data": "v", "n": n}),
        SearchOp(("test",), filter={"data": "v"}, limit=1000),
        GetOp(namespace, "k"),
        ListNamespacesOp(match_conditions=None, max_depth=None, limit=1000),
        PutOp(("test", "seed"), "k", {"data": "v", "n": n}),
        GetOp(("test", "seed"), "k"),
    ]


def _check(n: int, results: list[Result]) -> None:
    """Every read of batch ``n`` answers as if none of its puts had run."""
    assert results[0] is None
    assert results[4] is None
    found = results[1]
    assert isinstance(found, list)
    assert sorted(i.namespace for i in found) == sorted(
        [("test", "seed"), *(("test", f"r{m}") for m in range(n))]
    ), n
    assert results[2] is None, n  # put earlier in the batch, read before it
    assert isinstance(results[3], list)
    assert ("test", f"r{n}") not in results[3], n
    seed = results[5]
    assert isinstance(seed, Item)
    assert seed.value == ({"data": "v"} if n == 0 else {"data": "v", "n": n - 1}), n


def _check_landed(found: list[SearchItem], rounds: int) -> None:
    """Every put landed, after the reads of its batch."""
    assert len(found) == rounds + 1
    assert {i.namespace: i.value for i in found}[("test", f"r{rounds - 1}")] == {
        "data": "v",
        "n": rounds - 1,
    }


async def _rounds(url: str, key: str) -> None:
    store = AsyncSFMStore(AsyncSFMClient(url, key, timeout=60))
    try:
        await store.aput(("test", "seed"), "k", {"data": "v"})
        for n in range(ROUNDS):
            _check(n, await store.abatch(_batch(n)))
        _check_landed(await store.asearch(("test",), filter={"data": "v"}, limit=1000), ROUNDS)
    finally:
        await store.aclose()


def test_abatch_runs_every_read_before_the_puts_of_its_batch(
    sfm_server: ServerProcess, stack: Stack
) -> None:
    key, _info = KeyService(stack.postgres).create(f"lg-order-{uuid.uuid4().hex[:12]}")
    asyncio.run(_rounds(sfm_server.url, key))


SYNC_ROUNDS = 10  # the sync batch runs its ops one after another: no timing to vary


def test_batch_runs_every_read_before_the_puts_of_its_batch(
    sfm_server: ServerProcess, stack: Stack
) -> None:
    key, _info = KeyService(stack.postgres).create(f"lg-order-{uuid.uuid4().hex[:12]}")
    store = SFMStore(SFMClient(sfm_server.url, key, timeout=60))
    try:
        store.put(("test", "seed"), "k", {"data": "v"})
        for n in range(SYNC_ROUNDS):
            _check(n, store.batch(_batch(n)))
        _check_landed(store.search(("test",), filter={"data": "v"}, limit=1000), SYNC_ROUNDS)
    finally:
        store.close()
