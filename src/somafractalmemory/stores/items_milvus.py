"""Milvus collections for item vectors: one per embedding space.

The default space (the local model) lives in ``<MILVUS_COLLECTION>_items``; a tenant's
registered space ``name`` in ``<MILVUS_COLLECTION>_space_<tenant id>_<name>``. Entities
(schema v2) are ``id`` (the ``record_vectors`` id, primary key), ``item_id``, ``tenant_id``
(partition key), ``namespace_path`` (the record's, so a prefix is filtered inside Milvus:
:mod:`somafractalmemory.stores.item_vector_filters`), ``attrs`` (JSON: the record's state
flags, for filters inside Milvus) and ``vector``. A collection of schema v1 (no
``namespace_path`` nor ``attrs``, made by 0.7 and earlier) is copied into v2 by
:mod:`somafractalmemory.core.item_collections`; until then every check names it.

Collections are created only by :meth:`ItemVectorIndex.ensure_collection` (from bootstrap,
the CLI or the space-registration call) and the v2 migration, never by a write, and carry
their database's identity like the memories' (:mod:`somafractalmemory.stores.ownership`).

Milvus 2.3.5 constraints honoured here: writes are delete-by-id then insert (its upsert
ignores the partition key), deletes name primary keys only, no filter templating (ids are
rendered as integers, strings as escaped literals). Scores are "higher is closer": cosine
similarity, inner product, or the negative Euclidean distance (Milvus answers squared L2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from pymilvus import DataType, MilvusClient

from somafractalmemory.errors import SchemaError
from somafractalmemory.models import DatabaseIdentity, Space
from somafractalmemory.stores.item_vector_filters import (
    ATTRS_FIELD,
    MAX_NAMESPACE_PATH_BYTES,
    NAMESPACE_FIELD,
    item_filter,
)
from somafractalmemory.stores.milvus import (
    HNSW_BUILD,
    INDEX_TYPE,
    LOAD_TIMEOUT,
    VECTOR_FIELD,
    MilvusStore,
    search_ef,
)
from somafractalmemory.stores.ownership import ownership_problem, properties_of, stamp

MILVUS_METRICS = {"cosine": "COSINE", "ip": "IP", "l2": "L2"}
MAX_TOPK = 16_384
# The most item ids a search with a payload filter (which only PostgreSQL can apply) names in
# its Milvus expression (a literal list: no templating on 2.3.5); above it the search is by
# tenant and prefix alone, deepened until enough hits pass the filter. A prefix is never a
# list: it is filtered inside Milvus. At 10,000 items (benchmarks/RESULTS.md, "Items"): a
# 10,000-id list made a vector search 4.9x a memory search.
MAX_IN_LIST = 2_000
# Where the v2 migration builds a collection's copy before it takes the collection's name.
# Upper case: no space name (lower case) nor the default collection's name ends so.
MIGRATION_SUFFIX = "_V2COPY"


@dataclass(frozen=True)
class ItemVectorRecord:
    """One entity of an item collection: the vector, its item's namespace path and the
    item's state flags (``attrs``, written as given: derive them from the record's row,
    :meth:`ItemUpkeep.vector_meta`, so repairs and the migration rebuild the same)."""

    id: int
    item_id: int
    tenant_id: int
    vector: list[float]
    namespace_path: str
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemVectorHit:
    """A hit: the vector's id, its item, and the score (higher is closer)."""

    id: int
    item_id: int
    score: float


def score_of(metric: str, distance: float) -> float:
    """Milvus's distance as a "higher is closer" score."""
    if metric == "l2":
        return -math.sqrt(max(distance, 0.0))
    return distance


class ItemVectorIndex:
    """The item collections, on the Milvus connection of the memories' adapter."""

    def __init__(self, milvus: MilvusStore) -> None:
        self.milvus = milvus
        self.base = milvus.collection
        self.address = milvus.address
        self.timeout = milvus.timeout
        self.consistency = milvus.consistency

    @property
    def default_collection(self) -> str:
        """The collection of the default space."""
        return f"{self.base}_items"

    def space_collection(self, tenant_id: int, name: str) -> str:
        """The collection of a tenant's registered space."""
        return f"{self.base}_space_{int(tenant_id)}_{name}"

    def translated(self, operation: str, collection: str) -> AbstractContextManager[None]:
        """A traced Milvus call on ``collection``, its errors translated by the adapter."""
        return self.milvus.translated(operation, collection)

    # -- setup and checks ---------------------------------------------------------------------
    def ensure_collection(self, space: Space, owner: DatabaseIdentity) -> None:
        """Create the space's collection (stamped with ``owner``), index and load it, if
        needed; idempotent. An unstamped collection is adopted once its shape checks out; one
        with another dimension, metric or owner is refused, never altered."""
        name = space.collection
        with self.translated("ensure_item_collection", name):
            exists = self.milvus.client.has_collection(name, timeout=self.timeout)
        if not exists:
            if self.schema_version(name + MIGRATION_SUFFIX) is not None:
                # Its v2 migration dropped it and has the copy to rename: an empty one made
                # now would take the name and strand the copy.
                self.check_collection(space, None)  # raises, naming the migration
            self.create(name, space, owner)
        self.milvus.refuse_foreign(name, owner)  # before loading it
        self.load(name)
        self.check_collection(space, None)
        self.milvus.claim(name, owner)
        self.check_collection(space, owner)

    def create(self, name: str, space: Space, owner: DatabaseIdentity) -> None:
        """Create collection ``name`` (schema v2, stamped with ``owner``) and its index for
        ``space``; not loaded."""
        client = self.milvus.client
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("item_id", DataType.INT64)
        schema.add_field("tenant_id", DataType.INT64, is_partition_key=True)
        schema.add_field(NAMESPACE_FIELD, DataType.VARCHAR, max_length=MAX_NAMESPACE_PATH_BYTES)
        schema.add_field(ATTRS_FIELD, DataType.JSON)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=space.dimension)
        index_params = MilvusClient.prepare_index_params()
        index_params.add_index(
            field_name=VECTOR_FIELD,
            index_type=INDEX_TYPE,
            metric_type=MILVUS_METRICS[space.metric],
            params=HNSW_BUILD,
        )
        with self.translated("create_item_collection", name):
            # Not ``create_collection(index_params=...)``: pymilvus would then load the
            # collection within the per-call timeout, and a load takes seconds (more on a
            # busy server), so the space would be refused half made.
            client.create_collection(
                name,
                schema=schema,
                consistency_level="Session",
                properties=stamp(owner),
                timeout=self.timeout,
            )
            client.create_index(name, index_params, timeout=self.timeout)

    def load(self, name: str) -> None:
        """Load collection ``name`` unless it is loaded."""
        client = self.milvus.client
        with self.translated("load_item_collection", name):
            state = client.get_load_state(name, timeout=self.timeout)
            if "Loaded" not in str(state.get("state", "")):
                client.load_collection(name, timeout=max(self.timeout, LOAD_TIMEOUT))

    def schema_version(self, name: str) -> int | None:
        """2 for a collection with ``namespace_path`` and ``attrs``, 1 for an item collection
        without, None when ``name`` does not exist."""
        with self.translated("describe_item_collection", name):
            if not self.milvus.client.has_collection(name, timeout=self.timeout):
                return None
            description = self.milvus.client.describe_collection(name, timeout=self.timeout)
        fields = {f["name"] for f in description["fields"]}
        return 2 if {NAMESPACE_FIELD, ATTRS_FIELD} <= fields else 1

    def claim_existing(self, space: Space, owner: DatabaseIdentity) -> None:
        """Adopt the space's collection when it exists unstamped, refuse it when another
        database owns it; a missing one is left missing (the checks name it)."""
        with self.translated("has_item_collection", space.collection):
            exists = self.milvus.client.has_collection(space.collection, timeout=self.timeout)
        if exists:
            self.milvus.claim(space.collection, owner)

    def check_collection(
        self, space: Space, owner: DatabaseIdentity | None, allow_v1: bool = False
    ) -> None:
        """Raise :class:`SchemaError` unless the space's collection exists, has schema v2
        (``allow_v1``: or v1, for the migration), is loaded, has its dimension and metric,
        and belongs to ``owner`` (None: the shape only, for when PostgreSQL, which knows the
        owner, failed its own check)."""
        client = self.milvus.client
        name = space.collection
        with self.translated("check_item_collection", name):
            if not client.has_collection(name, timeout=self.timeout):
                copy = name + MIGRATION_SUFFIX
                interrupted = client.has_collection(copy, timeout=self.timeout)
                raise SchemaError(
                    "milvus",
                    f"collection {name!r} of space {space.name!r} does not exist"
                    + (
                        f"; its v2 migration was interrupted after the copy {copy!r} was "
                        "made (run `somafractalmemory migrate-item-collections`, or start "
                        "through bootstrap)"
                        if interrupted
                        else ""
                    ),
                    self.address,
                )
            description = client.describe_collection(name, timeout=self.timeout)
            indexes = client.list_indexes(name, field_name=VECTOR_FIELD)
            index = (
                client.describe_index(name, indexes[0], timeout=self.timeout) if indexes else None
            )
            state = client.get_load_state(name, timeout=self.timeout)
        fields = {f["name"]: f for f in description["fields"]}
        vector = fields.get(VECTOR_FIELD)
        if vector is None or "item_id" not in fields:
            raise SchemaError(
                "milvus", f"collection {name!r} is not an item collection", self.address
            )
        if not allow_v1 and (NAMESPACE_FIELD not in fields or ATTRS_FIELD not in fields):
            raise SchemaError(
                "milvus",
                f"collection {name!r} of space {space.name!r} has the v1 item schema (no "
                f"{NAMESPACE_FIELD}, {ATTRS_FIELD}) and waits for its migration (run "
                "`somafractalmemory migrate-item-collections`, or start through bootstrap)",
                self.address,
            )
        found_dim = int(vector.get("params", {}).get("dim", -1))
        if found_dim != space.dimension:
            raise SchemaError(
                "milvus",
                f"collection {name!r} has dimension {found_dim}, space {space.name!r} "
                f"needs {space.dimension}",
                self.address,
            )
        expected = MILVUS_METRICS[space.metric]
        if index is None or str(index.get("metric_type", "")).upper() != expected:
            raise SchemaError(
                "milvus", f"collection {name!r} has no {expected} vector index", self.address
            )
        if "Loaded" not in str(state.get("state", "")):
            raise SchemaError("milvus", f"collection {name!r} is not loaded", self.address)
        if owner is None:
            return
        problem = ownership_problem(name, properties_of(description), owner)
        if problem:
            raise SchemaError("milvus", problem, self.address)

    def drop_collection(self, collection: str) -> None:
        """Drop a space's collection (absent is fine)."""
        with self.translated("drop_item_collection", collection):
            self.milvus.client.drop_collection(collection, timeout=self.timeout)

    # -- data -------------------------------------------------------------------------------
    def write(self, collection: str, records: Sequence[ItemVectorRecord]) -> None:
        """Insert or replace entities by id (delete-by-id then insert)."""
        if not records:
            return
        self.delete(collection, [r.id for r in records])
        self.insert(collection, records)

    def insert(self, collection: str, records: Sequence[ItemVectorRecord]) -> None:
        """Insert entities as they are (no delete first: for a collection being filled)."""
        rows = [
            {
                "id": r.id,
                "item_id": r.item_id,
                "tenant_id": r.tenant_id,
                NAMESPACE_FIELD: r.namespace_path,
                ATTRS_FIELD: dict(r.attrs),
                VECTOR_FIELD: r.vector,
            }
            for r in records
        ]
        if not rows:
            return
        with self.translated("insert_item_vectors", collection):
            self.milvus.client.insert(collection, rows, timeout=self.timeout)

    def delete(self, collection: str, ids: Sequence[int]) -> None:
        """Delete entities by primary key (absent ids are fine)."""
        if not ids:
            return
        with self.translated("delete_item_vectors", collection):
            for start in range(0, len(ids), 1000):
                id_list = ", ".join(str(int(i)) for i in ids[start : start + 1000])
                self.milvus.client.delete(
                    collection, filter=f"id in [{id_list}]", timeout=self.timeout
                )

    def ids_of_items(self, collection: str, tenant_id: int, item_ids: Sequence[int]) -> list[int]:
        """Every entity id Milvus holds for these items (Strong consistency: for repairs)."""
        if not item_ids:
            return []
        found: list[int] = []
        for start in range(0, len(item_ids), 1000):
            chunk = ", ".join(str(int(i)) for i in item_ids[start : start + 1000])
            with self.translated("item_vector_ids", collection):
                rows = self.milvus.client.query(
                    collection,
                    filter=f"tenant_id == {int(tenant_id)} and item_id in [{chunk}]",
                    output_fields=["id"],
                    timeout=self.timeout,
                    consistency_level="Strong",
                )
            found.extend(int(r["id"]) for r in rows)
        return found

    def entities(self, collection: str, tenant_id: int) -> list[tuple[int, int]]:
        """(entity id, item id) of every entity the tenant has in the collection, duplicates
        kept (Strong consistency: for reconciliation)."""
        rows = self.milvus.scan(collection, tenant_id, ["id", "item_id"])
        return [(int(r["id"]), int(r["item_id"])) for r in rows]

    def search(
        self,
        space: Space,
        tenant_id: int,
        vector: list[float],
        limit: int,
        prefix: Sequence[str] = (),
        item_ids: Sequence[int] | None = None,
        where: str | None = None,
    ) -> list[ItemVectorHit]:
        """The tenant's ``limit`` nearest entities under the namespace ``prefix``, best
        first, the filtering done inside Milvus before the limit; optionally only among the
        vectors of ``item_ids`` and those passing the expression ``where`` (over ``attrs``:
        built by SFM's code, never taken from a client)."""
        expression = item_filter(tenant_id, prefix, item_ids, where)
        metric = MILVUS_METRICS[space.metric]
        with self.translated("search_item_vectors", space.collection):
            result = self.milvus.client.search(
                space.collection,
                data=[vector],
                filter=expression,
                limit=min(limit, MAX_TOPK),
                anns_field=VECTOR_FIELD,
                output_fields=["item_id"],
                search_params={
                    "metric_type": metric,
                    "params": {"ef": search_ef(min(limit, MAX_TOPK))},  # at most 32,768
                },
                timeout=self.timeout,
                consistency_level=self.consistency,
            )
        return [
            ItemVectorHit(
                id=int(hit["id"]),
                item_id=int(hit["entity"]["item_id"]),
                score=score_of(space.metric, float(hit["distance"])),
            )
            for hit in result[0]
        ]
