"""Write path: the service's ``POST /memories/batch`` and the raw ceilings of its parts.

Batch after batch, the same memories go to the service and then through each raw path on the
benchmark's own clients, so the service and its ceilings meet the same machine conditions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from common import DIMENSION, BenchConfig, Throughput, batches, server_timing
from corpus import BenchMemory, as_payload
from psycopg.types.json import Jsonb
from pymilvus import MilvusClient

from somafractalmemory.core.embedding import Embedder
from somafractalmemory.settings import Settings
from somafractalmemory.stack import create_postgres_store
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.ownership import read_identity

SERVICE = "service"
CEILINGS = {
    "embed": "embedding alone (`Embedder.embed`)",
    "pg_copy": "PostgreSQL COPY into a temp table",
    "pg_many": "PostgreSQL executemany INSERT into a temp table",
    "milvus_insert": "Milvus insert into a scratch collection",
    "milvus_upsert": "Milvus delete by id + insert (the service's upsert pattern)",
}
_COLUMNS = "tenant_id, key, memory_type, payload, text, importance"


def batch_bodies(memories: list[BenchMemory]) -> list[bytes]:
    """The JSON bodies of ``POST /memories/batch`` for ``memories``, a batch each."""
    return [
        json.dumps({"memories": [as_payload(m) for m in chunk]}).encode()
        for chunk in batches(memories)
    ]


def post_batch(client: httpx.Client, body: bytes) -> dict[str, float]:
    """Store one batch through the API; the server's stage times (``Server-Timing``)."""
    response = client.post(
        "/memories/batch", content=body, headers={"Content-Type": "application/json"}
    )
    if response.status_code != 201:
        raise RuntimeError(f"batch store: {response.status_code} {response.text[:500]}")
    statuses = {r["status"] for r in response.json()["results"]}
    if statuses != {"created"}:
        raise RuntimeError(f"batch store: expected only new memories, got {statuses}")
    return server_timing(response.headers.get("server-timing", ""))


def ensure_scratch(cfg: BenchConfig) -> None:
    """The scratch collection, made by the service's own ``ensure_collection`` (same schema,
    index and load) and stamped as the bench database's, like the service's own."""
    settings = Settings.model_validate(
        {
            "POSTGRES_DSN": cfg.postgres_dsn,
            "MILVUS_URI": cfg.milvus_uri,
            "REDIS_URL": cfg.redis_url,
            "MILVUS_COLLECTION": cfg.scratch_collection,
        }
    )
    postgres = create_postgres_store(settings)
    store = MilvusStore(settings)
    try:
        store.ensure_collection(DIMENSION, read_identity(postgres))
    finally:
        store.close()
        postgres.engine.dispose()


class Ceilings:
    """Each part of a write alone: the embedder on the batch's texts; rows of the memories
    table's shape (``LIKE records INCLUDING ALL``: same columns, generated tsvector, GIN and
    unique indexes) into temporary tables with COPY and with ``executemany``, a transaction a
    batch; the batch's entities into a scratch collection made by the service's own
    ``ensure_collection``, plainly and as the service's upsert does it."""

    def __init__(self, cfg: BenchConfig, embedder: Embedder, tenant_id: int) -> None:
        self.cfg = cfg
        self.embedder = embedder
        self.tenant_id = tenant_id
        self.next_id = 1
        self.conn = psycopg.connect(cfg.postgres_dsn)
        for table in ("bench_copy", "bench_many"):
            self.conn.execute(f"CREATE TEMP TABLE {table} (LIKE records INCLUDING ALL)")
        self.conn.commit()
        ensure_scratch(cfg)
        self.milvus = MilvusClient(uri=cfg.milvus_uri)

    def close(self) -> None:
        self.conn.close()
        self.milvus.drop_collection(self.cfg.scratch_collection)
        self.milvus.close()

    def run(self, chunk: list[BenchMemory]) -> dict[str, float]:
        """One batch through every raw path; the seconds each took."""
        timings: dict[str, float] = {}

        def timed(name: str, step: Callable[[], object]) -> None:
            started = time.perf_counter()
            step()
            timings[name] = time.perf_counter() - started

        vectors: list[list[float]] = []
        timed("embed", lambda: vectors.extend(self.embedder.embed([m.text for m in chunk])))
        rows = [
            (
                self.tenant_id,
                m.coord,
                m.memory_type,
                Jsonb(as_payload(m)["payload"]),
                m.text,
                m.importance,
            )
            for m in chunk
        ]
        timed("pg_copy", lambda: self._copy(rows))
        timed("pg_many", lambda: self._many(rows))
        timed("milvus_insert", lambda: self._insert(self._entities(chunk, vectors)))
        timed("milvus_upsert", lambda: self._upsert(self._entities(chunk, vectors)))
        return timings

    def truncate(self) -> None:
        """Empty the temporary tables (after the warm-up)."""
        self.conn.execute("TRUNCATE bench_copy, bench_many")
        self.conn.commit()

    def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor().copy(f"COPY bench_copy ({_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.conn.commit()

    def _many(self, rows: list[tuple[Any, ...]]) -> None:
        self.conn.cursor().executemany(
            f"INSERT INTO bench_many ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)", rows
        )
        self.conn.commit()

    def _entities(
        self, chunk: list[BenchMemory], vectors: list[list[float]]
    ) -> list[dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        entities = [
            {
                "id": self.next_id + i,
                "tenant_id": self.tenant_id,
                "memory_type": m.memory_type,
                "created_at": now_ms,
                "attrs": {"topic": m.topic, "source": "benchmark"},
                "vector": v,
            }
            for i, (m, v) in enumerate(zip(chunk, vectors, strict=True))
        ]
        self.next_id += len(entities)
        return entities

    def _insert(self, entities: list[dict[str, Any]]) -> None:
        self.milvus.insert(self.cfg.scratch_collection, entities)

    def _upsert(self, entities: list[dict[str, Any]]) -> None:
        ids = ", ".join(str(e["id"]) for e in entities)
        self.milvus.delete(self.cfg.scratch_collection, filter=f"id in [{ids}]")
        self.milvus.insert(self.cfg.scratch_collection, entities)


@dataclass(frozen=True)
class WriteFigures:
    """Throughput of the service and of each ceiling, the service's per-batch request times
    and its own stage times summed over the batches."""

    throughput: dict[str, Throughput]
    batch_seconds: list[float]
    stages: dict[str, float]


def write_path(
    client: httpx.Client, ceilings: Ceilings, memories: list[BenchMemory]
) -> WriteFigures:
    """Each batch through the service, then through the raw paths."""
    totals = {name: 0.0 for name in (SERVICE, *CEILINGS)}
    batch_seconds: list[float] = []
    stages: dict[str, float] = {}
    for body, chunk in zip(batch_bodies(memories), batches(memories), strict=True):
        started = time.perf_counter()
        for name, seconds in post_batch(client, body).items():
            stages[name] = stages.get(name, 0.0) + seconds
        batch_seconds.append(time.perf_counter() - started)
        for name, seconds in ceilings.run(chunk).items():
            totals[name] += seconds
    totals[SERVICE] = sum(batch_seconds)
    return WriteFigures(
        {name: Throughput(len(memories), seconds) for name, seconds in totals.items()},
        batch_seconds,
        stages,
    )
