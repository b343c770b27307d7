"""LangChain's ``VectorStore`` on SomaFractalMemory: ``SFMVectorStore``.

    pip install "somafractalmemory[langchain]"

    from somafractalmemory.langchain import SFMVectorStore

    store = SFMVectorStore(base_url="http://127.0.0.1:9595", api_key=key, namespace=("docs",))
    store.add_texts(["SFM keeps PostgreSQL as the source of truth"], ids=["sfm-1"])
    store.similarity_search("where is the data kept?", k=1)

A client-side adapter: every call goes through the typed clients
(:class:`~somafractalmemory.client.SFMClient` for the blocking methods,
:class:`~somafractalmemory.client.AsyncSFMClient` for the ``a``-prefixed ones); nothing here
talks to PostgreSQL or Milvus.

How documents map (see docs/langchain.md): a document is an **item** of the store's
``namespace`` (a list of labels, default ``["langchain"]``) whose key is the document id and
whose value is ``{"text": page_content, "metadata": metadata}``. Items, not memories, because a
document id is any string and a memory's key is a coordinate. The server embeds ``text`` with
its own model (the ``default`` space), so the ``embedding`` a caller gives (LangChain's
``from_texts`` requires one) is kept only as :attr:`SFMVectorStore.embeddings` and never
called. Scores are the cosine similarity of the server's model (higher is closer);
``similarity_search_with_relevance_scores`` maps them to ``[0, 1]`` as ``(1 + s) / 2``.
A ``filter`` is on metadata, with the item filter syntax (equality, nested objects field by
field, ``{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": value}``), applied by the server before the
limit. Errors are the client's (:class:`~somafractalmemory.client.SFMClientError` subclasses):
bad input is an :class:`~somafractalmemory.client.InvalidInput` naming the field.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Self

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from somafractalmemory.client import AsyncSFMClient, SFMClient
from somafractalmemory.item_schemas import MAX_ITEM_LIMIT, ItemPublic, ItemSearchResult

__all__ = ["DEFAULT_NAMESPACE", "SFMVectorStore"]

DEFAULT_NAMESPACE = ("langchain",)
MAX_CONCURRENCY = 8  # requests in flight for one add, get or delete of many documents


def _document(item: ItemPublic) -> Document:
    """The document an item holds; an item written by other means (no string ``text``) gives
    its whole value as sorted JSON, as the server embeds it."""
    text = item.value.get("text")
    metadata = item.value.get("metadata")
    return Document(
        id=item.key,
        page_content=text if isinstance(text, str) else json.dumps(item.value, sort_keys=True),
        metadata=dict(metadata) if isinstance(metadata, dict) else {},
    )


def _scored(found: Sequence[ItemSearchResult]) -> list[tuple[Document, float]]:
    """Ranked hits as (document, similarity). Items the server could not rank (no vector in
    the default space: written with ``index=False`` by other means) fill a page after the
    ranked ones with a null score; they are not similar to anything, so they are left out."""
    return [(_document(hit), hit.score) for hit in found if hit.score is not None]


def _relevance(score: float) -> float:
    return (1.0 + score) / 2.0


class SFMVectorStore(VectorStore):
    """A LangChain vector store on an SFM server: documents are items of one namespace.

    Give ``base_url`` (and ``api_key``) to build both clients, or the clients themselves
    (``client`` for the blocking methods, ``async_client`` for the ``a``-prefixed ones; a
    method whose client was not given raises ``ValueError``). ``embedding`` is accepted for
    LangChain's signatures and never used: the server embeds (see the module). Close with
    :meth:`close` / :meth:`aclose`, or use the store as a (async) context manager.

    ``namespace`` is a prefix for searches, as everywhere in SFM: a store on ``["docs"]`` also
    finds the documents of a store on ``["docs", "v2"]``; ids (keys) are per namespace.
    """

    def __init__(
        self,
        client: SFMClient | None = None,
        *,
        async_client: AsyncSFMClient | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        namespace: Sequence[str] = DEFAULT_NAMESPACE,
        embedding: Embeddings | None = None,
    ) -> None:
        if base_url is not None:
            client = client or SFMClient(base_url, api_key)
            async_client = async_client or AsyncSFMClient(base_url, api_key)
        if client is None and async_client is None:
            raise ValueError("give a base_url, an SFMClient or an AsyncSFMClient")
        if not namespace:
            raise ValueError("namespace: give at least one label")
        self._client = client
        self._async_client = async_client
        self.namespace: tuple[str, ...] = tuple(namespace)
        self._embedding = embedding

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings | None:
        """The ``embedding`` given to the constructor, unused: the server embeds."""
        return self._embedding

    @property
    def client(self) -> SFMClient:
        """The blocking client (``ValueError`` when the store was built without one)."""
        if self._client is None:
            raise ValueError("this SFMVectorStore has no SFMClient: give client= or base_url=")
        return self._client

    @property
    def async_client(self) -> AsyncSFMClient:
        """The async client (``ValueError`` when the store was built without one)."""
        if self._async_client is None:
            raise ValueError(
                "this SFMVectorStore has no AsyncSFMClient: give async_client= or base_url="
            )
        return self._async_client

    def close(self) -> None:
        """Close the blocking client (the async one: :meth:`aclose`)."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close both clients."""
        self.close()
        if self._async_client is not None:
            await self._async_client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return _relevance

    def _puts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """(key, value) per text; a missing id (None or "") gets a new uuid4."""
        texts = list(texts)
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"metadatas: {len(metadatas)} given for {len(texts)} texts")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"ids: {len(ids)} given for {len(texts)} texts")
        return [
            (
                (ids[i] if ids is not None else None) or uuid.uuid4().hex,
                {"text": text, "metadata": dict(metadatas[i]) if metadatas else {}},
            )
            for i, text in enumerate(texts)
        ]

    def _search_kwargs(self, query: str, k: int, filter: dict[str, Any] | None) -> dict[str, Any]:
        if not 1 <= k <= MAX_ITEM_LIMIT:
            raise ValueError(f"k: between 1 and {MAX_ITEM_LIMIT}, got {k}")
        return {
            "query": query,
            "limit": k,
            "filter": {"metadata": filter} if filter else None,
        }

    # -- blocking ---------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store the texts (one item each, replacing an item of the same id); returns their
        ids in order. Not atomic across texts: on an error the ones already written stay,
        and adding again with the same ids is safe."""
        puts = self._puts(texts, metadatas, ids)
        client = self.client
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENCY) as pool:
            list(pool.map(lambda put: client.put_item(self.namespace, *put), puts))
        return [key for key, _ in puts]

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents with these ids (absent ones are no error); ``None``: every
        document of the store's own namespace (not those of namespaces below it)."""
        client = self.client
        if ids is None:
            return self._delete_all(client)
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENCY) as pool:
            list(pool.map(lambda key: client.delete_item(self.namespace, key), ids))
        return True

    def _delete_all(self, client: SFMClient) -> bool:
        """Page through the namespace newest first; items of namespaces below it are
        skipped (counted in the offset), the store's own deleted."""
        offset = 0
        while page := client.search_items(
            self.namespace, limit=MAX_ITEM_LIMIT, offset=offset
        ).items:
            mine = [item.key for item in page if tuple(item.namespace) == self.namespace]
            for key in mine:
                client.delete_item(self.namespace, key)
            offset += len(page) - len(mine)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order given; absent ones are left out."""
        client = self.client
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENCY) as pool:
            found = list(pool.map(lambda key: client.get_item(self.namespace, key), ids))
        return [_document(item) for item in found if item is not None]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` documents closest to ``query`` (cosine similarity of the server's model,
        best first), among those whose metadata pass ``filter``."""
        found = self.client.search_items(self.namespace, **self._search_kwargs(query, k, filter))
        return _scored(found.items)

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents closest to ``query``, best first (see the scored variant)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """A store built with ``kwargs`` (``base_url``, ``api_key``, ``namespace``, ...)
        holding ``texts``; ``embedding`` is kept, unused."""
        store = cls(embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # -- async ------------------------------------------------------------------------------
    async def _gather(self, calls: Iterable[Callable[[], Any]]) -> list[Any]:
        """Run the coroutine factories at most :data:`MAX_CONCURRENCY` at a time, in order."""
        limit = asyncio.Semaphore(MAX_CONCURRENCY)

        async def one(call: Callable[[], Any]) -> Any:
            async with limit:
                return await call()

        return list(await asyncio.gather(*(one(call) for call in calls)))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """:meth:`add_texts`, through the async client."""
        puts = self._puts(texts, metadatas, ids)
        client = self.async_client
        await self._gather(partial(client.put_item, self.namespace, *put) for put in puts)
        return [key for key, _ in puts]

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """:meth:`delete`, through the async client."""
        client = self.async_client
        if ids is None:
            offset = 0
            while page := (
                await client.search_items(self.namespace, limit=MAX_ITEM_LIMIT, offset=offset)
            ).items:
                mine = [item.key for item in page if tuple(item.namespace) == self.namespace]
                for key in mine:
                    await client.delete_item(self.namespace, key)
                offset += len(page) - len(mine)
            return True
        await self._gather(partial(client.delete_item, self.namespace, key) for key in ids)
        return True

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """:meth:`get_by_ids`, through the async client."""
        client = self.async_client
        found = await self._gather(partial(client.get_item, self.namespace, key) for key in ids)
        return [_document(item) for item in found if item is not None]

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score`, through the async client."""
        found = await self.async_client.search_items(
            self.namespace, **self._search_kwargs(query, k, filter)
        )
        return _scored(found.items)

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """:meth:`similarity_search`, through the async client."""
        scored = await self.asimilarity_search_with_score(query, k, filter)
        return [doc for doc, _ in scored]

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> Self:
        """:meth:`from_texts`, adding through the async client."""
        store = cls(embedding=embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store
