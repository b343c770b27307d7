"""Milvus calls of the item collections' v2 migration (:mod:`core.item_collections`): read a
collection whole, count it, rename it. Errors are translated by the index's adapter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pymilvus import MilvusClient

from somafractalmemory.stores.items_milvus import ItemVectorIndex
from somafractalmemory.stores.milvus import VECTOR_FIELD

V1_FIELDS = ["id", "item_id", "tenant_id", VECTOR_FIELD]


def entity_batches(index: ItemVectorIndex, collection: str, batch: int) -> Iterator[list[Any]]:
    """Every entity of ``collection`` (all tenants) with its vector, ``batch`` at a time, in
    primary-key order, read at Strong consistency. Entities sharing a primary key come once
    (Milvus's query answers one per key)."""
    with index.translated("scan_item_collection", collection):
        iterator = index.milvus.client.query_iterator(
            collection,
            batch_size=batch,
            filter="",
            output_fields=V1_FIELDS,
            timeout=index.timeout,
            consistency_level="Strong",
        )
    try:
        while True:
            with index.translated("scan_item_collection", collection):
                found = iterator.next()
            if not found:
                return
            yield list(found)
    finally:
        iterator.close()


def count_all(index: ItemVectorIndex, collection: str) -> int:
    """How many entities ``collection`` holds over every tenant (Strong consistency)."""
    with index.translated("count_item_collection", collection):
        result = index.milvus.client.query(
            collection,
            filter="",
            output_fields=["count(*)"],
            timeout=index.timeout,
            consistency_level="Strong",
        )
    return int(result[0]["count(*)"])


def rename(index: ItemVectorIndex, old: str, new: str) -> None:
    """Give collection ``old`` the name ``new`` (which must be free); its properties, index
    and load state go with it (checked on Milvus 2.3.5)."""
    with index.translated("rename_item_collection", old):
        index.milvus.client.rename_collection(old, new, timeout=index.timeout)
    forget_schema(index, new)


def forget_schema(index: ItemVectorIndex, name: str) -> None:
    """Make this client read ``name``'s schema again (:func:`refresh_schema`)."""
    with index.translated("describe_item_collection", name):
        refresh_schema(index.milvus.client, name, index.timeout)


def refresh_schema(client: MilvusClient, name: str, timeout: float | None = None) -> None:
    """Make ``client`` read ``name``'s schema again. pymilvus keeps a collection's schema by
    name and checks inserted rows against it on the client (2.5: ``insert`` of a v2 row into
    a name it knew as v1 fails before reaching the server, and neither a drop nor a rename
    clears it). No public call refreshes it, and the two lines keep it differently:

    - 2.5: a cache on the connection handler, whose ``update_schema`` describes the
      collection again and stores the answer;
    - 3.x: a process-wide cache keyed by server address, database and name; the handler's
      ``_invalidate_schema`` drops the entry and the next call describes the collection
      (3.x also drops it itself on a drop, and retries an insert once on a mismatch).
    """
    handler = client._get_connection()
    if hasattr(handler, "update_schema"):
        handler.update_schema(name, timeout=timeout)
    else:
        handler._invalidate_schema(name)  # the default database: SFM names no other
