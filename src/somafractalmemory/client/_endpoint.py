"""Every client method, declared once for both clients.

Each endpoint is one function of :mod:`._calls` (or of ``_items``, ``_ops`` ...): its
parameters, defaults and docstring are the method's, and it returns the
:class:`~._calls.Call` to send (request and answer parsing). :class:`endpoint` turns it into
a method: on a :class:`SyncSender` (``SFMClient``) a blocking one, on an
:class:`AsyncSender` (``AsyncSFMClient``) a coroutine function; :class:`pages` likewise
turns a first-page call into an iterator over every page, and :class:`lines` a streamed
call into an iterator over its JSON Lines. :class:`Endpoints` lists the methods; the
clients add only how a call is sent (``_send``), and their constructors and context
managers.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, ParamSpec, Self, TypeVar, overload

import httpx

from somafractalmemory.client import _calls, _context, _conversations, _history, _items, _ops
from somafractalmemory.client._calls import Call
from somafractalmemory.client.errors import transport_error
from somafractalmemory.schemas import MemoryList, MemoryPublic

P = ParamSpec("P")
T = TypeVar("T")
SyncR = TypeVar("SyncR")
AsyncR = TypeVar("AsyncR")


class SyncSender:
    """A client whose calls block: ``_send`` returns the answer."""

    def _send(self, call: Call[T]) -> T:  # pragma: no cover - provided by SFMClient
        raise NotImplementedError


class AsyncSender:
    """A client whose calls are coroutines: ``_send`` is awaited."""

    async def _send(self, call: Call[T]) -> T:  # pragma: no cover - provided by the client
        raise NotImplementedError


class _Method(Generic[P, SyncR, AsyncR]):
    """A client method declared by ``build``, with ``build``'s signature and docstring: on a
    :class:`SyncSender` it returns ``SyncR``, on an :class:`AsyncSender` ``AsyncR``."""

    def __init__(self, build: Callable[P, Any]) -> None:
        self._name = build.__name__
        self.__doc__ = build.__doc__
        self.__wrapped__ = build  # a bound method's signature is build's
        own = inspect.signature(build)
        client = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self.__signature__ = own.replace(parameters=[client, *own.parameters.values()])

    def __call__(self, client: Any, *args: Any, **kwargs: Any) -> Any:
        """``SFMClient.store(client, ...)``: the method called through the class."""
        return self.__get__(client, type(client))(*args, **kwargs)

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: AsyncSender, owner: type[Any]) -> Callable[P, AsyncR]: ...
    @overload
    def __get__(self, client: SyncSender, owner: type[Any]) -> Callable[P, SyncR]: ...
    def __get__(self, client: object, owner: type[Any]) -> Any:
        if client is None:
            return self
        method: Any
        if isinstance(client, AsyncSender):
            method = self._bind_async(client)
        elif isinstance(client, SyncSender):
            method = self._bind(client)
        else:
            raise TypeError(f"{type(client).__name__} is not an SFM client")
        functools.update_wrapper(method, self.__wrapped__)
        method.__name__ = self._name
        method.__qualname__ = f"{owner.__qualname__}.{self._name}"
        answer = self._answer(isinstance(client, AsyncSender))
        method.__annotations__ = {**method.__annotations__, "return": answer}
        method.__signature__ = self.__signature__.replace(
            parameters=list(self.__signature__.parameters.values())[1:], return_annotation=answer
        )
        return method

    def _answer(self, is_async: bool) -> str:
        """The method's return annotation (as a string, like the rest)."""
        raise NotImplementedError  # pragma: no cover - per kind of method

    def _bind(self, client: SyncSender) -> Callable[P, SyncR]:
        raise NotImplementedError  # pragma: no cover - per kind of method

    def _bind_async(self, client: AsyncSender) -> Callable[P, AsyncR]:
        raise NotImplementedError  # pragma: no cover - per kind of method


class endpoint(_Method[P, T, Coroutine[Any, Any, T]]):
    """One endpoint as a method of both clients: ``build`` makes its call (see the module)."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        super().__init__(build)
        self._build = build

    def _answer(self, is_async: bool) -> str:
        # the answer read from the Call[...] that ``build`` returns, whichever the client
        built = str(self.__signature__.return_annotation)
        return built.removeprefix("Call[").removesuffix("]")

    def _bind(self, client: SyncSender) -> Callable[P, T]:
        build = self._build

        def send(*args: P.args, **kwargs: P.kwargs) -> T:
            return client._send(build(*args, **kwargs))

        return send

    def _bind_async(self, client: AsyncSender) -> Callable[P, Coroutine[Any, Any, T]]:
        build = self._build

        async def send(*args: P.args, **kwargs: P.kwargs) -> T:
            return await client._send(build(*args, **kwargs))

        return send


class pages(_Method[P, Iterator[MemoryPublic], AsyncIterator[MemoryPublic]]):
    """Every memory of a listing, one page at a time: ``build`` makes the first page's call,
    :func:`~._calls.next_page` each next one."""

    def __init__(self, build: Callable[P, Call[MemoryList]]) -> None:
        super().__init__(build)
        self._build = build

    def _answer(self, is_async: bool) -> str:
        return "AsyncIterator[MemoryPublic]" if is_async else "Iterator[MemoryPublic]"

    def _bind(self, client: SyncSender) -> Callable[P, Iterator[MemoryPublic]]:
        first = self._build

        def iterate(*args: P.args, **kwargs: P.kwargs) -> Iterator[MemoryPublic]:
            call: Call[MemoryList] | None = first(*args, **kwargs)
            while call is not None:
                page = client._send(call)
                yield from page.memories
                call = _calls.next_page(call, page)

        return iterate

    def _bind_async(self, client: AsyncSender) -> Callable[P, AsyncIterator[MemoryPublic]]:
        first = self._build

        async def iterate(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[MemoryPublic]:
            call: Call[MemoryList] | None = first(*args, **kwargs)
            while call is not None:
                page = await client._send(call)
                for memory in page.memories:
                    yield memory
                call = _calls.next_page(call, page)

        return iterate


class lines(_Method[P, Iterator[dict[str, Any]], AsyncIterator[dict[str, Any]]]):
    """A streamed JSON Lines answer, one dict a line as it arrives: ``build`` makes the call
    (``stream=True``); a connection lost in the middle is :class:`ConnectionFailed`, not
    retried (the lines already given cannot be taken back)."""

    def __init__(self, build: Callable[P, Call[httpx.Response]]) -> None:
        super().__init__(build)
        self._build = build

    def _answer(self, is_async: bool) -> str:
        kind = "AsyncIterator" if is_async else "Iterator"
        return f"{kind}[dict[str, Any]]"

    def _bind(self, client: SyncSender) -> Callable[P, Iterator[dict[str, Any]]]:
        build = self._build

        def iterate(*args: P.args, **kwargs: P.kwargs) -> Iterator[dict[str, Any]]:
            call = build(*args, **kwargs)
            response = client._send(call)
            try:
                for line in response.iter_lines():
                    if line.strip():
                        yield _ops.export_line(line, response)
            except httpx.TransportError as exc:
                raise transport_error(exc, f"{call.method} {response.url}") from exc
            finally:
                response.close()

        return iterate

    def _bind_async(self, client: AsyncSender) -> Callable[P, AsyncIterator[dict[str, Any]]]:
        build = self._build

        async def iterate(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[dict[str, Any]]:
            call = build(*args, **kwargs)
            response = await client._send(call)
            try:
                async for line in response.aiter_lines():
                    if line.strip():
                        yield _ops.export_line(line, response)
            except httpx.TransportError as exc:
                raise transport_error(exc, f"{call.method} {response.url}") from exc
            finally:
                await response.aclose()

        return iterate


class Endpoints:
    """The methods of :class:`SFMClient` and :class:`AsyncSFMClient`, one per endpoint."""

    # -- memories ---------------------------------------------------------------------------
    store = endpoint(_calls.store)
    store_batch = endpoint(_calls.store_batch)
    get = endpoint(_calls.get)
    delete = endpoint(_calls.delete)
    delete_memories = endpoint(_conversations.delete_memories)
    list = endpoint(_calls.list_page)
    iter_memories = pages(_calls.iter_memories)
    search = endpoint(_calls.search)
    history = endpoint(_history.history)
    changes = endpoint(_history.changes)
    context = endpoint(_context.context)
    # -- graph ------------------------------------------------------------------------------
    link = endpoint(_calls.link)
    neighbors = endpoint(_calls.neighbors)
    path = endpoint(_calls.path)
    # -- operations -------------------------------------------------------------------------
    stats = endpoint(_calls.stats)
    health = endpoint(_calls.health)
    ready = endpoint(_calls.ready)
    live = endpoint(_ops.live)
    metrics = endpoint(_ops.metrics)
    export = lines(_ops.export)
    # -- webhooks ---------------------------------------------------------------------------
    create_webhook = endpoint(_ops.create_webhook)
    list_webhooks = endpoint(_ops.list_webhooks)
    delete_webhook = endpoint(_ops.delete_webhook)
    # -- items, namespaces, spaces ----------------------------------------------------------
    put_item = endpoint(_items.put_item)
    get_item = endpoint(_items.get_item)
    delete_item = endpoint(_items.delete_item)
    item_history = endpoint(_items.item_history)
    search_items = endpoint(_items.search_items)
    list_namespaces = endpoint(_items.list_namespaces)
    sweep_items = endpoint(_items.sweep_items)
    create_space = endpoint(_items.create_space)
    list_spaces = endpoint(_items.list_spaces)
    delete_space = endpoint(_items.delete_space)
    # -- conversations and end users ---------------------------------------------------------
    add_messages = endpoint(_conversations.add_messages)
    list_messages = endpoint(_conversations.list_messages)
    list_conversations = endpoint(_conversations.list_conversations)
    delete_conversation = endpoint(_conversations.delete_conversation)
    search_messages = endpoint(_conversations.search_messages)
    delete_user = endpoint(_conversations.delete_user)
    list_scope_values = endpoint(_conversations.list_scope_values)
