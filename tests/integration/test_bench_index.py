"""The benchmarks' Milvus index state and wait (benchmarks/harness.py), on the real Milvus.

The benchmarks print the index state beside each search figure and time their "indexed"
figures only after :func:`flush_and_index`: rows written through the service sit in growing
segments, which HNSW does not cover, and ``describe_index`` alone reports them as neither
indexed nor total. Fails if the state hides unindexed rows or the wait returns before HNSW
covers every row.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from somafractalmemory.models import DatabaseIdentity, VectorRecord
from somafractalmemory.settings import Settings
from somafractalmemory.stores.milvus import MilvusStore

# The benchmarks are scripts importing their siblings (``from common import ...``); appended,
# so nothing of theirs shadows a module of the tests.
sys.path.append(str(Path(__file__).resolve().parents[2] / "benchmarks"))

from common import BenchConfig
from harness import flush_and_index, index_state

DIM = 384
ROWS = 1500


@pytest.fixture
def bench_store(fresh_stack: Settings, owner: DatabaseIdentity) -> Iterator[MilvusStore]:
    settings = fresh_stack.model_copy(
        update={"milvus_collection": f"{fresh_stack.milvus_collection}_benchindex"}
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


def test_index_state_counts_growing_rows_and_the_wait_indexes_them(
    bench_store: MilvusStore, fresh_stack: Settings
) -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(0.0, 1.0, (ROWS, DIM)).astype(np.float32)
    bench_store.upsert(
        [
            VectorRecord(
                id=i + 1,
                tenant_id=1 + i % 3,
                memory_type="episodic",
                created_at_ms=0,
                attrs={},
                vector=data[i].tolist(),
            )
            for i in range(ROWS)
        ]
    )
    cfg = BenchConfig(
        postgres_dsn=fresh_stack.postgres_dsn.get_secret_value(),
        admin_dsn=fresh_stack.postgres_dsn.get_secret_value(),
        milvus_uri=fresh_stack.milvus_uri,
        redis_url=fresh_stack.redis_url.get_secret_value(),
        collection=bench_store.collection,
        scratch_collection=f"{bench_store.collection}_scratch",
        port=0,
    )

    growing = index_state(cfg)
    assert (growing.rows, growing.sealed, growing.indexed) == (ROWS, 0, 0)
    assert not growing.complete
    assert (
        str(growing) == f"HNSW 0 / {ROWS:,} rows indexed ({ROWS:,} in growing segments, 0 pending)"
    )

    indexed, waited = flush_and_index(cfg, timeout=120)
    assert indexed.complete
    assert (indexed.rows, indexed.sealed, indexed.indexed, indexed.pending) == (ROWS, ROWS, ROWS, 0)
    assert waited > 0
    assert index_state(cfg) == indexed
