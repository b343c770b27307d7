"""Vector recall of the Milvus adapter against exact cosine (numpy), on an indexed segment.

Several thousand generated, normalised vectors in one tenant among others, sealed and indexed
with the service's HNSW parameters; the adapter's search must find at least 98% of the exact
top 10. Fails if the search ``ef`` (or the index build parameters) regress.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from somafractalmemory.models import DatabaseIdentity, VectorRecord
from somafractalmemory.settings import Settings
from somafractalmemory.stores.milvus import VECTOR_FIELD, MilvusStore

DIM = 384
TENANT = 7
OTHERS = (8, 9)
ROWS = 4000
QUERIES = 200
TOP = 10


def vectors(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """Points around random centres (embeddings cluster by topic), normalised."""
    picked = centres[rng.integers(0, len(centres), n)]
    points = picked + rng.normal(0.0, 0.6 / np.sqrt(DIM), (n, DIM))
    normed: np.ndarray = (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)
    return normed


@pytest.fixture
def recall_store(fresh_stack: Settings, owner: DatabaseIdentity) -> Iterator[MilvusStore]:
    settings = fresh_stack.model_copy(
        update={"milvus_collection": f"{fresh_stack.milvus_collection}_recall"}
    )
    store = MilvusStore(settings)
    if store.client.has_collection(store.collection):
        store.client.drop_collection(store.collection)
    store.ensure_collection(DIM, owner)
    try:
        yield store
    finally:
        store.client.drop_collection(store.collection)
        store.close()


def test_vector_search_recall_at_10_against_exact(recall_store: MilvusStore) -> None:
    rng = np.random.default_rng(8)
    centres = rng.normal(0.0, 1.0, (40, DIM)) / np.sqrt(DIM)
    data = vectors(rng, ROWS, centres)
    records = [
        VectorRecord(
            id=i + 1,
            tenant_id=TENANT if i < ROWS * 3 // 4 else OTHERS[i % 2],
            memory_type="episodic",
            created_at_ms=0,
            attrs={},
            vector=data[i].tolist(),
        )
        for i in range(ROWS)
    ]
    for start in range(0, ROWS, 1000):
        recall_store.upsert(records[start : start + 1000])
    client, name = recall_store.client, recall_store.collection
    # Seal the segments and wait for their HNSW index: unsealed rows are searched by the
    # server's interim index, which the search parameters under test do not reach.
    client.flush(name)
    deadline = time.monotonic() + 60
    while True:
        index = client.describe_index(name, client.list_indexes(name, field_name=VECTOR_FIELD)[0])
        if int(index["indexed_rows"]) >= ROWS and int(index["pending_index_rows"]) == 0:
            break
        assert time.monotonic() < deadline, f"index not built in 60 s: {index}"
        time.sleep(1)
    client.release_collection(name)
    client.load_collection(name)

    mine = np.array([r.tenant_id == TENANT for r in records])
    own = data[mine]
    own_ids = np.flatnonzero(mine) + 1
    queries = vectors(rng, QUERIES, centres)
    found = 0
    for query in queries:
        exact = set(own_ids[np.argsort(-(own @ query), kind="stable")[:TOP]].tolist())
        hits = recall_store.search(TENANT, query.tolist(), TOP)
        assert all(int(records[h.id - 1].tenant_id) == TENANT for h in hits)
        found += len(exact & {h.id for h in hits})
    recall = found / (QUERIES * TOP)
    assert recall >= 0.98, f"Recall@10 against exact cosine: {recall:.3f}"
