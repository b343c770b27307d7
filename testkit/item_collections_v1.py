"""Item collections as releases up to 0.7 made them (schema v1: ``id``, ``item_id``,
``tenant_id``, ``vector``), for the tests of their v2 migration."""

from __future__ import annotations

from collections.abc import Sequence

from pymilvus import DataType, MilvusClient

from somafractalmemory.models import DatabaseIdentity, Space
from somafractalmemory.stores.item_collections import refresh_schema
from somafractalmemory.stores.items_milvus import MILVUS_METRICS
from somafractalmemory.stores.milvus import HNSW_BUILD, INDEX_TYPE, VECTOR_FIELD
from somafractalmemory.stores.ownership import stamp

V1Row = tuple[int, int, int, list[float]]  # id, item id, tenant id, vector


def create_v1_collection(
    client: MilvusClient, space: Space, owner: DatabaseIdentity | None
) -> None:
    """Create the space's collection with the v1 schema and its index, loaded (stamped with
    ``owner``; None: unstamped, as before 0.6.0)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("item_id", DataType.INT64)
    schema.add_field("tenant_id", DataType.INT64, is_partition_key=True)
    schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=space.dimension)
    index_params = MilvusClient.prepare_index_params()
    index_params.add_index(
        field_name=VECTOR_FIELD,
        index_type=INDEX_TYPE,
        metric_type=MILVUS_METRICS[space.metric],
        params=HNSW_BUILD,
    )
    client.create_collection(
        space.collection,
        schema=schema,
        consistency_level="Session",
        properties=stamp(owner) if owner else {},
    )
    client.create_index(space.collection, index_params)
    client.load_collection(space.collection, timeout=60)
    # pymilvus checks inserted rows against the schema it last saw under this name.
    refresh_schema(client, space.collection)


def insert_v1(client: MilvusClient, collection: str, rows: Sequence[V1Row]) -> None:
    """Insert v1 entities."""
    client.insert(
        collection,
        [
            {"id": i, "item_id": item, "tenant_id": tenant, VECTOR_FIELD: vector}
            for i, item, tenant, vector in rows
        ],
    )


def downgrade_to_v1(client: MilvusClient, space: Space, owner: DatabaseIdentity | None) -> int:
    """Replace the space's v2 collection by a v1 one holding the same entities (vectors read
    back), as the previous release would have left it; returns how many entities."""
    rows: list[V1Row] = []
    iterator = client.query_iterator(
        space.collection,
        batch_size=1000,
        filter="",
        output_fields=["id", "item_id", "tenant_id", VECTOR_FIELD],
        consistency_level="Strong",
    )
    try:
        while batch := iterator.next():
            rows.extend(
                (int(r["id"]), int(r["item_id"]), int(r["tenant_id"]), list(r[VECTOR_FIELD]))
                for r in batch
            )
    finally:
        iterator.close()
    client.drop_collection(space.collection)
    create_v1_collection(client, space, owner)
    for start in range(0, len(rows), 1000):
        insert_v1(client, space.collection, rows[start : start + 1000])
    return len(rows)
