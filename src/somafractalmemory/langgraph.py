"""LangGraph's ``BaseStore`` on SomaFractalMemory: ``SFMStore`` and ``AsyncSFMStore``.

    pip install "somafractalmemory[langgraph]"

    from somafractalmemory.langgraph import SFMStore

    with SFMStore(base_url="http://127.0.0.1:9595", api_key=key) as store:
        graph = builder.compile(store=store)
        ...

Both stores are context managers (``with`` / ``async with``), as LangGraph's ``PostgresStore``
is used: leaving the block stops the TTL sweeper if one runs and closes the store's client
(one passed in too, as :meth:`SFMStore.close` does).

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
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from langgraph.store.base import (
    BaseStore,
    Embeddings,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    validate_op_namespace,
)
from langgraph.store.base.batch import AsyncBatchedBaseStore

from somafractalmemory.client import AsyncSFMClient, SFMClient, SFMClientError
from somafractalmemory.item_schemas import ItemPublic

__all__ = ["AsyncSFMStore", "SFMStore"]

logger = logging.getLogger(__name__)

DEFAULT_SPACE = "langgraph"
_METRICS = {"cosine": "cosine", "inner_product": "ip", "l2": "l2"}
MAX_CONCURRENCY = 8
ClientT = TypeVar("ClientT", SFMClient, AsyncSFMClient)


def _item_fields(found: ItemPublic) -> dict[str, Any]:
    """What LangGraph's ``Item`` (and ``SearchItem``) takes of an item the server returned."""
    return {
        "namespace": tuple(found.namespace),
        "key": found.key,
        "value": found.value,
        "created_at": found.created_at,
        "updated_at": found.updated_at,
    }


@dataclass(frozen=True)
class _ClientCall:
    """One step of an op: a client method (named alike on both clients) and its arguments."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run(self, client: SFMClient) -> Any:
        return getattr(client, self.method)(*self.args, **self.kwargs)

    async def run_async(self, client: AsyncSFMClient) -> Any:
        return await getattr(client, self.method)(*self.args, **self.kwargs)


@dataclass(frozen=True)
class _Embed:
    """One step of an op: texts for the store's own embedding function (``query``: one
    search query, answered by one vector; else documents, one vector each)."""

    embeddings: Embeddings
    texts: list[str]
    query: bool = False

    def run(self) -> Any:
        if self.query:
            return self.embeddings.embed_query(self.texts[0])
        return self.embeddings.embed_documents(self.texts)

    async def run_async(self) -> Any:
        if self.query:
            return await self.embeddings.aembed_query(self.texts[0])
        return await self.embeddings.aembed_documents(self.texts)


# An op translated once for both stores: a generator that yields each step it needs done
# (a client call, an embedding) and is sent the step's answer; it returns the op's result.
# SFMStore runs the steps with blocking calls, AsyncSFMStore awaits them.
_Steps = Generator[_ClientCall | _Embed, Any, Result]


class _Plan:
    """How a store with a given ``index`` config turns ops into client calls."""

    def __init__(self, index: IndexConfig | None, space: str) -> None:
        self.index_config: IndexConfig | None = index.copy() if index else None
        self.embeddings = (
            ensure_embeddings(index["embed"]) if index is not None and index.get("embed") else None
        )
        self.fields: list[str] = list((index or {}).get("fields") or ["$"])
        if index is None:
            self.space: str | None = None
        elif self.embeddings is None:
            self.space = "default"
        else:
            self.space = space
        distance = str((index or {}).get("distance_type") or "cosine")
        if distance not in _METRICS:
            raise ValueError(f"distance_type {distance!r}: use cosine, inner_product or l2")
        self.metric = _METRICS[distance]

    def texts(self, op: PutOp) -> list[tuple[str, str]]:
        """(path, text) pairs to embed for a put with the store's own embedding function."""
        assert op.value is not None
        paths = self.fields if op.index is None else list(op.index or [])
        return [(p, t) for p in paths for t in get_text_at_path(op.value, p) if t]

    def put_kwargs(self, op: PutOp, vectors: list[list[float]] | None) -> dict[str, Any]:
        """The client's ``put_item`` arguments for ``op``."""
        kwargs: dict[str, Any] = {"ttl_minutes": op.ttl}
        if self.space is None or op.index is False:
            kwargs["index"] = False
        elif self.embeddings is None:
            kwargs["index"] = self.fields if op.index is None else list(op.index)
            kwargs["space"] = self.space
        else:
            pairs = self.texts(op)
            usable = [
                {"path": p, "vector": v}
                for (p, _), v in zip(pairs, vectors or [], strict=False)
                if any(v)
            ]
            if usable:
                kwargs.update(space=self.space, vectors=usable)
            else:
                kwargs["index"] = False
        return kwargs

    def search_kwargs(self, op: SearchOp, include_expired: bool) -> dict[str, Any]:
        """The client's ``search_items`` arguments for ``op`` (without the query vector)."""
        kwargs: dict[str, Any] = {
            "filter": op.filter,
            "limit": op.limit,
            "offset": op.offset,
            "refresh_ttl": op.refresh_ttl,
            "include_expired": include_expired,
        }
        if op.query and self.space == "default":
            kwargs.update(query=op.query, space="default")
        return kwargs

    def space_to_register(self) -> tuple[str, int, str] | None:
        """``create_space`` arguments for the space this store's own vectors go to, if any."""
        if self.embeddings is None or self.space is None:
            return None
        dims = int(self.index_config["dims"]) if self.index_config else 0
        return self.space, dims, self.metric

    def steps(self, op: Op, include_expired: bool) -> _Steps:
        """``op`` as the steps a store runs (see ``_Steps``)."""
        if isinstance(op, GetOp):
            found = yield _ClientCall(
                "get_item",
                (op.namespace, op.key),
                {"refresh_ttl": op.refresh_ttl, "include_expired": include_expired},
            )
            return Item(**_item_fields(found)) if found is not None else None
        if isinstance(op, PutOp):
            if op.value is None:
                yield _ClientCall("delete_item", (op.namespace, op.key))
                return None
            vectors = None
            if self.embeddings is not None and op.index is not False:
                texts = [t for _, t in self.texts(op)]
                vectors = (yield _Embed(self.embeddings, texts)) if texts else []
            kwargs = self.put_kwargs(op, vectors)
            yield _ClientCall("put_item", (op.namespace, op.key, op.value), kwargs)
            return None
        if isinstance(op, SearchOp):
            kwargs = self.search_kwargs(op, include_expired)
            if op.query and self.embeddings is not None:
                vector = yield _Embed(self.embeddings, [op.query], query=True)
                kwargs.update(vector=vector, space=self.space)
            found = yield _ClientCall("search_items", (op.namespace_prefix,), kwargs)
            return [SearchItem(**_item_fields(f), score=f.score) for f in found.items]
        if isinstance(op, ListNamespacesOp):
            kwargs = {**_namespace_args(op), "include_expired": include_expired}
            found = yield _ClientCall("list_namespaces", (), kwargs)
            return [tuple(ns) for ns in found.namespaces]
        raise ValueError(f"unknown op {type(op).__name__}")


def _namespace_args(op: ListNamespacesOp) -> dict[str, Any]:
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()
    for condition in op.match_conditions or ():
        if condition.match_type == "prefix":
            prefix = tuple(condition.path)
        elif condition.match_type == "suffix":
            suffix = tuple(condition.path)
        else:
            raise ValueError(f"unsupported match type {condition.match_type!r}")
    return {
        "prefix": prefix,
        "suffix": suffix,
        "max_depth": op.max_depth,
        "limit": op.limit,
        "offset": op.offset,
    }


def _validated(ops: Iterable[Op]) -> list[Op]:
    checked = list(ops)
    for op in checked:
        validate_op_namespace(op)
    return checked


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
        self._plan = _Plan(index, space)
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


class SFMStore(_Store[SFMClient], BaseStore):
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
        """Close the client."""
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the TTL sweeper (if one runs), then close the client."""
        try:
            self.stop_ttl_sweeper()
        finally:
            self.close()

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
        checked = _validated(ops)
        results: list[Result] = [None] * len(checked)
        for writes in (False, True):
            for i, op in enumerate(checked):
                if isinstance(op, PutOp) is writes:
                    results[i] = self._run(op)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread."""
        checked = _validated(ops)
        return await asyncio.get_running_loop().run_in_executor(None, self.batch, checked)

    def _run(self, op: Op) -> Result:
        steps = self._plan.steps(op, self._include_expired())
        try:
            step = next(steps)
            while True:
                answer = step.run() if isinstance(step, _Embed) else step.run(self.client)
                step = steps.send(answer)
        except StopIteration as done:
            result: Result = done.value
            return result


class AsyncSFMStore(_Store[AsyncSFMClient], AsyncBatchedBaseStore):
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
        """Close the client."""
        await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Cancel the TTL sweeper (if one runs), then close the client."""
        try:
            await self.stop_ttl_sweeper()
        finally:
            await self.aclose()

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
        checked = _validated(ops)
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
                if isinstance(step, _Embed):
                    step = steps.send(await step.run_async())
                else:
                    step = steps.send(await step.run_async(self.client))
        except StopIteration as done:
            result: Result = done.value
            return result
