"""LangGraph's ``BaseStore`` on SomaFractalMemory: ``SFMStore`` and ``AsyncSFMStore``.

    pip install "somafractalmemory[langgraph]"

    from somafractalmemory.langgraph import SFMStore

    with SFMStore(base_url="http://127.0.0.1:9595", api_key=key) as store:
        graph = builder.compile(store=store)
        ...

Both stores are context managers (``with`` / ``async with``), as LangGraph's ``PostgresStore``
is used: leaving the block stops the TTL sweeper if one runs and closes the store's client
(one passed in too), as :meth:`SFMStore.close` (:meth:`AsyncSFMStore.aclose`) does.

Every op goes through the typed client (:class:`~somafractalmemory.client.SFMClient`, or
:class:`~somafractalmemory.client.AsyncSFMClient` for ``AsyncSFMStore``); nothing here talks
to PostgreSQL or Milvus. Every op's namespace is validated (``validate_op_namespace``) before
any op of the batch is sent, so a bad label never writes half a batch.

Semantic search, three ways:

- no ``index``: no vectors; a search's ``query`` is ignored and results come newest first;
- ``index={"dims": n, "embed": fn, "fields": [...]}`` (LangGraph's ``IndexConfig``): the
  embedding function runs here, and the vectors go to a registered embedding space of the
  tenant (``space``, default ``"langgraph"``; metric from ``distance_type``, default cosine).
  :meth:`SFMStore.setup` registers it (idempotent) and must run once before writes;
- ``index={"fields": [...]}`` without ``embed``: the server's own model embeds the texts (the
  ``default`` space).

TTL: ``supports_ttl`` is true; ``ttl`` in minutes is stored with the item, and the server
sweeps expired items in the background (``SOMA_ITEMS_SWEEP_INTERVAL_SECONDS``).
``start_ttl_sweeper`` additionally sweeps the tenant every ``sweep_interval_minutes``
(``POST /items/sweep``), as LangGraph's own stores do; ``sweep_ttl`` sweeps once. The server
never returns expired items unless asked: following LangGraph's ``TTLConfig``,
``omit_expired`` (default false) decides whether reads also ask for expired items that no sweep
has deleted yet.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

from langgraph.store.base import (
    BaseStore,
    IndexConfig,
    Op,
    PutOp,
    Result,
    TTLConfig,
)
from langgraph.store.base.batch import AsyncBatchedBaseStore

from somafractalmemory.client import AsyncSFMClient, SFMClient, SFMClientError
from somafractalmemory.client._closing import AsyncClosing, Closing
from somafractalmemory.langgraph_plan import Embed, Plan, validated

__all__ = ["AsyncSFMStore", "SFMStore"]

logger = logging.getLogger(__name__)

DEFAULT_SPACE = "langgraph"
MAX_CONCURRENCY = 8
ClientT = TypeVar("ClientT", SFMClient, AsyncSFMClient)


class _Store(Generic[ClientT]):
    """What both stores share: the constructor and the reading of their configuration."""

    _client_type: type[ClientT]
    _sweeper: Any

    def __init__(
        self,
        client: ClientT | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        space: str = DEFAULT_SPACE,
    ) -> None:
        super().__init__()
        if client is None:
            if base_url is None:
                raise ValueError(f"give an {self._client_type.__name__} or a base_url")
            client = self._client_type(base_url, api_key)
        self.client: ClientT = client
        self._plan = Plan(index, space)
        self.index_config = self._plan.index_config
        self.embeddings = self._plan.embeddings
        self.ttl_config = ttl
        self._sweeper = None

    def _include_expired(self) -> bool:
        return not (self.ttl_config or {}).get("omit_expired", False)

    def _sweep_interval(self, sweep_interval_minutes: float | None) -> float:
        """Seconds between sweeps: the given minutes, else the TTL config's, else 5."""
        minutes = sweep_interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes")
        return float(minutes or 5) * 60


class SFMStore(_Store[SFMClient], Closing, BaseStore):
    """A LangGraph store on an SFM server, through the blocking client (see the module)."""

    supports_ttl: bool = True
    _client_type = SFMClient
    _sweeper: threading.Thread | None
    _sweep_stop: threading.Event

    def setup(self) -> None:
        """Register the embedding space this store's ``index`` needs (idempotent)."""
        if (space := self._plan.space_to_register()) is not None:
            self.client.create_space(*space)

    def close(self) -> None:
        """Stop the TTL sweeper (if one runs), then close the client."""
        try:
            self.stop_ttl_sweeper()
        finally:
            self.client.close()

    def sweep_ttl(self) -> int:
        """Delete the tenant's expired items now; returns how many."""
        return self.client.sweep_items()

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> threading.Event:
        """Sweep every ``sweep_interval_minutes`` (else the TTL config's, else 5) in a
        daemon thread until :meth:`stop_ttl_sweeper`; returns the thread's stop event."""
        if self._sweeper is not None and self._sweeper.is_alive():
            return self._sweep_stop
        interval = self._sweep_interval(sweep_interval_minutes)
        self._sweep_stop = threading.Event()
        stop = self._sweep_stop

        def run() -> None:
            while not stop.wait(interval):
                try:
                    self.sweep_ttl()
                except SFMClientError as exc:
                    logger.warning("TTL sweep failed: %s", exc)

        self._sweeper = threading.Thread(target=run, name="sfm-store-sweeper", daemon=True)
        self._sweeper.start()
        return stop

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; False if it did not stop within ``timeout`` seconds."""
        if self._sweeper is None:
            return True
        self._sweep_stop.set()
        self._sweeper.join(timeout)
        stopped = not self._sweeper.is_alive()
        if stopped:
            self._sweeper = None
        return stopped

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the reads (get, search, list namespaces) first, then the puts, each in their
        order, as LangGraph's ``PostgresStore`` does (and :meth:`AsyncSFMStore.abatch`): no
        read of a batch sees a put of the same batch. Every namespace is validated before
        any op is sent."""
        checked = validated(ops)
        results: list[Result] = [None] * len(checked)
        for writes in (False, True):
            for i, op in enumerate(checked):
                if isinstance(op, PutOp) is writes:
                    results[i] = self._run(op)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread."""
        checked = validated(ops)
        return await asyncio.get_running_loop().run_in_executor(None, self.batch, checked)

    def _run(self, op: Op) -> Result:
        steps = self._plan.steps(op, self._include_expired())
        try:
            step = next(steps)
            while True:
                answer = step.run() if isinstance(step, Embed) else step.run(self.client)
                step = steps.send(answer)
        except StopIteration as done:
            result: Result = done.value
            return result


class AsyncSFMStore(_Store[AsyncSFMClient], AsyncClosing, AsyncBatchedBaseStore):
    """A LangGraph store on an SFM server through the async client. Concurrent calls are
    batched by LangGraph's ``AsyncBatchedBaseStore``; a batch runs ops on different keys
    concurrently (up to 8 requests in flight) and ops on the same key in order, every read
    before the puts. Build it inside the event loop it will serve; its sync methods work from
    other threads only."""

    supports_ttl: bool = True
    _client_type = AsyncSFMClient
    _sweeper: asyncio.Task[None] | None

    async def setup(self) -> None:
        """Register the embedding space this store's ``index`` needs (idempotent)."""
        if (space := self._plan.space_to_register()) is not None:
            await self.client.create_space(*space)

    async def aclose(self) -> None:
        """Cancel the TTL sweeper (if one runs), then close the client."""
        try:
            await self.stop_ttl_sweeper()
        finally:
            await self.client.close()

    async def sweep_ttl(self) -> int:
        """Delete the tenant's expired items now; returns how many."""
        return await self.client.sweep_items()

    async def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> asyncio.Task[None]:
        """Sweep every ``sweep_interval_minutes`` (else the TTL config's, else 5) in a task
        until :meth:`stop_ttl_sweeper`; returns the task."""
        if self._sweeper is not None and not self._sweeper.done():
            return self._sweeper
        interval = self._sweep_interval(sweep_interval_minutes)

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.sweep_ttl()
                except SFMClientError as exc:
                    logger.warning("TTL sweep failed: %s", exc)

        self._sweeper = asyncio.create_task(run(), name="sfm-store-sweeper")
        return self._sweeper

    async def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Cancel the sweeper task; False if it did not end within ``timeout`` seconds."""
        task, self._sweeper = self._sweeper, None
        if task is None or task.done():
            return True
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=timeout)
        return bool(done)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the ops as LangGraph's ``PostgresStore`` does: every read (get, search, list
        namespaces) first, then the puts, so no read of a batch sees, or races, a put of the
        same batch whatever their order in it. Reads run concurrently; puts on different keys
        concurrently and same-key puts in order (the last one wins). Up to 8 requests are in
        flight; namespaces are all validated before any op is sent."""
        checked = validated(ops)
        results: list[Result] = [None] * len(checked)
        reads: list[list[int]] = []
        writes: dict[tuple[tuple[str, ...], str], list[int]] = {}
        for i, op in enumerate(checked):
            if isinstance(op, PutOp):
                writes.setdefault((op.namespace, op.key), []).append(i)
            else:
                reads.append([i])
        gate = asyncio.Semaphore(MAX_CONCURRENCY)

        async def run_chain(indexes: Sequence[int]) -> None:
            async with gate:
                for i in indexes:
                    results[i] = await self._run(checked[i])

        await asyncio.gather(*(run_chain(ix) for ix in reads))
        await asyncio.gather(*(run_chain(ix) for ix in writes.values()))
        return results

    async def _run(self, op: Op) -> Result:
        steps = self._plan.steps(op, self._include_expired())
        try:
            step = next(steps)
            while True:
                if isinstance(step, Embed):
                    step = steps.send(await step.run_async())
                else:
                    step = steps.send(await step.run_async(self.client))
        except StopIteration as done:
            result: Result = done.value
            return result
