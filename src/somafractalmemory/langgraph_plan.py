"""How a LangGraph store's ops become calls of the SFM client, for both
:class:`~somafractalmemory.langgraph.SFMStore` and its async twin: each op is translated once,
as a generator of steps (a client call, an embedding) that either store runs its own way."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.base import (
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
    ensure_embeddings,
    get_text_at_path,
    validate_op_namespace,
)

from somafractalmemory.client import AsyncSFMClient, SFMClient
from somafractalmemory.item_schemas import ItemPublic

_METRICS = {"cosine": "cosine", "inner_product": "ip", "l2": "l2"}


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
class ClientCall:
    """One step of an op: a client method (named alike on both clients) and its arguments."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run(self, client: SFMClient) -> Any:
        return getattr(client, self.method)(*self.args, **self.kwargs)

    async def run_async(self, client: AsyncSFMClient) -> Any:
        return await getattr(client, self.method)(*self.args, **self.kwargs)


@dataclass(frozen=True)
class Embed:
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
Steps = Generator[ClientCall | Embed, Any, Result]


class Plan:
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

    def steps(self, op: Op, include_expired: bool) -> Steps:
        """``op`` as the steps a store runs (see ``Steps``)."""
        if isinstance(op, GetOp):
            found = yield ClientCall(
                "get_item",
                (op.namespace, op.key),
                {"refresh_ttl": op.refresh_ttl, "include_expired": include_expired},
            )
            return Item(**_item_fields(found)) if found is not None else None
        if isinstance(op, PutOp):
            if op.value is None:
                yield ClientCall("delete_item", (op.namespace, op.key))
                return None
            vectors = None
            if self.embeddings is not None and op.index is not False:
                texts = [t for _, t in self.texts(op)]
                vectors = (yield Embed(self.embeddings, texts)) if texts else []
            kwargs = self.put_kwargs(op, vectors)
            yield ClientCall("put_item", (op.namespace, op.key, op.value), kwargs)
            return None
        if isinstance(op, SearchOp):
            kwargs = self.search_kwargs(op, include_expired)
            if op.query and self.embeddings is not None:
                vector = yield Embed(self.embeddings, [op.query], query=True)
                kwargs.update(vector=vector, space=self.space)
            found = yield ClientCall("search_items", (op.namespace_prefix,), kwargs)
            return [SearchItem(**_item_fields(f), score=f.score) for f in found.items]
        if isinstance(op, ListNamespacesOp):
            kwargs = {**_namespace_args(op), "include_expired": include_expired}
            found = yield ClientCall("list_namespaces", (), kwargs)
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


def validated(ops: Iterable[Op]) -> list[Op]:
    checked = list(ops)
    for op in checked:
        validate_op_namespace(op)
    return checked
