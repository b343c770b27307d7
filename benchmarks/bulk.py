"""Bulk loading straight into the raw stores, for the scale benchmark.

Loading a million memories through ``POST /memories/batch`` would take hours on two cores, so
the scale benchmark writes the rows the service would write itself: one ``memories`` row per
memory in PostgreSQL (multi-row ``INSERT ... SELECT FROM unnest`` of 5,000 rows, the tsvector
computed by PostgreSQL's generated column as on every write) and one entity per memory in the
service's Milvus collection with the same id, tenant, type and creation time. No outbox rows
(nothing is pending), no Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import numpy as np
import psycopg
from pymilvus import MilvusClient

from somafractalmemory.stores.milvus_filters import searchable_attrs

CHUNK = 5_000
MILVUS_CHUNK = 2_000

_INSERT = """
INSERT INTO records (tenant_id, key, memory_type, payload, text, importance, created_at,
                      updated_at)
SELECT %(tenant)s, c, t, p::jsonb, x, i, ts, ts
FROM unnest(%(coords)s::text[], %(types)s::text[], %(payloads)s::text[], %(texts)s::text[],
            %(importance)s::float8[], %(created)s::timestamptz[]) AS u(c, t, p, x, i, ts)
RETURNING id, created_at
"""


def load(
    dsn: str,
    milvus_uri: str,
    collection: str | None,
    tenant_id: int,
    start: int,
    stop: int,
    text_of: Callable[[int], str],
    vectors: Callable[[int], np.ndarray] | None,
) -> None:
    """Memories ``start`` to ``stop - 1`` of the tenant: coordinate ``i,i%97,5``, text
    ``text_of(i)``, type alternating semantic/episodic, payload ``{"text", "n": i % 10}``,
    created one second apart, vector rows from ``vectors(n)``; no Milvus part when
    ``collection`` is None."""
    milvus = MilvusClient(uri=milvus_uri) if collection is not None else None
    base = time.time() - 10_000_000
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for lo in range(start, stop, CHUNK):
                idx = range(lo, min(stop, lo + CHUNK))
                texts = [text_of(i) for i in idx]
                types = ["semantic" if i % 2 else "episodic" for i in idx]
                rows = conn.execute(
                    _INSERT,
                    {
                        "tenant": tenant_id,
                        "coords": [f"{i},{i % 97},5" for i in idx],
                        "types": types,
                        "payloads": [
                            json.dumps({"text": t, "n": i % 10})
                            for i, t in zip(idx, texts, strict=True)
                        ],
                        "texts": texts,
                        "importance": [0.5] * len(idx),
                        "created": [
                            time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(base + i))
                            for i in idx
                        ],
                    },
                ).fetchall()
                if milvus is None or collection is None:
                    continue
                assert vectors is not None
                vecs = vectors(len(idx))
                entities = [
                    {
                        "id": int(memory_id),
                        "tenant_id": tenant_id,
                        "memory_type": kind,
                        "created_at": int(created.timestamp() * 1000),
                        "attrs": searchable_attrs({"text": text, "n": i % 10}),
                        "vector": vecs[j].tolist(),
                    }
                    for j, (i, text, kind, (memory_id, created)) in enumerate(
                        zip(idx, texts, types, rows, strict=True)
                    )
                ]
                for m in range(0, len(entities), MILVUS_CHUNK):
                    milvus.insert(collection, entities[m : m + MILVUS_CHUNK], timeout=300)
        if milvus is not None and collection is not None:
            milvus.flush(collection, timeout=3600)
    finally:
        if milvus is not None:
            milvus.close()


def analyze(dsn: str, tables: Sequence[str] = ("records",)) -> None:
    """``VACUUM ANALYZE`` (fresh statistics and visibility map after a bulk load)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"VACUUM ANALYZE {table}")
