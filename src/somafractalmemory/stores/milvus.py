"""Milvus adapter: the only vector index.

One collection holds every tenant's vectors: the PostgreSQL memory id is the primary key and
the tenant id is the partition key, so every search names its tenant inside Milvus and never
sees another tenant's entities. Scores are cosine similarities (higher is closer) of
normalised vectors. Only features that Milvus 2.3.5 and 2.4 to 2.6 share are used (no JSON-field
indexes, no server-side BM25, no filter templating).

Every driver error is translated here into :class:`MilvusUnavailableError` or
:class:`SchemaError`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
from pymilvus import DataType, MilvusClient, MilvusException
from pymilvus.client.utils import SciPyHelper
from pymilvus.exceptions import ErrorCode

from somafractalmemory.errors import MilvusUnavailableError, SchemaError
from somafractalmemory.models import DatabaseIdentity, SearchScope, VectorHit, VectorRecord
from somafractalmemory.observability.metrics import mark_store
from somafractalmemory.observability.timing import stage
from somafractalmemory.observability.tracing import store_span
from somafractalmemory.settings import Settings
from somafractalmemory.stores.milvus_filters import build_filter
from somafractalmemory.stores.ownership import (
    OWNER,
    foreign_owner,
    log_adoption,
    ownership_problem,
    properties_of,
    stamp,
)

METRIC = "COSINE"
VECTOR_FIELD = "vector"
INDEX_TYPE = "HNSW"
HNSW_BUILD = {"M": 16, "efConstruction": 200}
# The HNSW search list floor. Measured on LoCoMo (5,882 turns, one tenant, sealed and indexed
# segment, 1,981 questions, 30 candidates asked as the service does for top_k 10): overlap of
# the top 10 with exact cosine 0.997 at ef 64, 0.9995 at ef 128, 1.000 at ef 256, for a raw
# search p50 of 3.4, 3.9 and 8.0 ms. 128 buys the recall target for about half a millisecond.
HNSW_SEARCH_EF = 128
# Seconds a collection load may take (the per-call store timeout is far shorter than a load).
LOAD_TIMEOUT = 60


# How servers say that a collection does not exist. Milvus 2.3 to 2.6: "collection not
# found[database=default][collection=x]", wrapped by pymilvus as "can't find collection ...";
# milvus-lite 3.x: "collection 'x' does not exist". Each sends code 100 as well
# (ErrorCode.COLLECTION_NOT_FOUND), the first thing looked at.
_MISSING_COLLECTION = re.compile(
    r"collection not found|can't find collection|collection\s+\S+\s+does not exist", re.IGNORECASE
)


def is_missing_collection(exc: MilvusException) -> bool:
    """Whether a driver error says the collection does not exist (rather than that Milvus is
    unavailable), in any server's wording."""
    if exc.code == ErrorCode.COLLECTION_NOT_FOUND:
        return True
    return bool(_MISSING_COLLECTION.search(str(exc.message) or repr(exc)))


def create_milvus_client(settings: Settings) -> MilvusClient:
    """Connect to the Milvus server named by ``MILVUS_URI`` (raises if it does not answer)."""
    try:
        return MilvusClient(
            uri=settings.milvus_uri,
            token=settings.milvus_token.get_secret_value(),
            timeout=milvus_timeout(settings),
            # pymilvus shares one connection per URI and closing any client closes it for
            # all; an alias of our own keeps each adapter's connection its own.
            alias=f"sfm-{uuid.uuid4().hex}",
        )
    except MilvusException as exc:
        mark_store("milvus", False)
        raise MilvusUnavailableError(str(exc.message), settings.milvus_address) from exc


def milvus_timeout(settings: Settings) -> int:
    """The per-call timeout, as a whole number of seconds: pymilvus 2.5 applies its retry
    deadline only when the timeout is an ``int`` and silently retries for minutes on a float."""
    return max(1, math.ceil(settings.store_timeout))


def quiet_pymilvus() -> None:
    """Silence pymilvus's own error logs: it logs every failed call (with the connection's
    address) before raising, and this adapter translates and reports those errors itself."""
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("pymilvus")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


def search_ef(limit: int) -> int:
    """HNSW's ``ef`` for a search of ``limit`` hits: twice ``limit`` (Milvus refuses less than
    ``limit``; the margin keeps deep candidate lists as accurate as their head) and at least
    :data:`HNSW_SEARCH_EF`.

    It only reaches sealed segments whose HNSW index is built. Rows still in a growing
    segment (or sealed but not yet indexed) are searched by the server's interim index
    (``queryNode.segcore.interimIndex`` in milvus.yaml: IVF_FLAT, nlist 128, nprobe 16 by
    default), which a search request cannot tune; see docs/deployment.md, "Recall".
    """
    return max(HNSW_SEARCH_EF, 2 * limit)


def prepare_pymilvus() -> None:
    """Run pymilvus's one-time check for scipy now, in one thread.

    pymilvus 2.5 runs it lazily on the first insert or search (``SciPyHelper._init``:
    ``scipy.sparse`` executed afresh, not through ``import``), unguarded: two requests
    making a fresh server's first Milvus calls at once can both import scipy's modules
    and one fails with ``partially initialized module 'scipy.sparse._bsr'``, a 503 (seen
    in tests/faults/test_crash_history.py right after a restart)."""
    SciPyHelper.is_scipy_sparse(None)


class MilvusStore:
    """The SFM collection in Milvus; see the module docstring for semantics."""

    def __init__(self, settings: Settings) -> None:
        # pymilvus logs every failed call at ERROR before raising; this adapter translates
        # and reports those errors itself, so the library's copies are only noise.
        quiet_pymilvus()
        prepare_pymilvus()
        self._settings = settings
        self._client: MilvusClient | None = None
        self._client_lock = threading.Lock()
        self.collection = settings.milvus_collection
        self.address = settings.milvus_address
        self.timeout = milvus_timeout(settings)
        self.consistency = settings.milvus_consistency

    @property
    def client(self) -> MilvusClient:
        """The pymilvus client, connected on first use (so a service that does not require
        Milvus can start without it, and answer 503 until it is there)."""
        with self._client_lock:
            if self._client is None:
                self._client = create_milvus_client(self._settings)
            return self._client

    def close(self) -> None:
        """Close the connection, if one was made."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @contextmanager
    def translated(self, operation: str, collection: str | None = None) -> Iterator[None]:
        """Run a block as one traced Milvus call on ``collection`` (the memories' when None),
        translating driver errors: the one place any Milvus error of SFM is translated."""
        with store_span("milvus", operation), stage("milvus"):
            try:
                yield
            except MilvusException as exc:
                if is_missing_collection(exc):
                    mark_store("milvus", True)
                    raise self._missing_collection(collection) from exc
                mark_store("milvus", False)
                raise MilvusUnavailableError(str(exc.message) or repr(exc), self.address) from exc
            except grpc.RpcError as exc:
                # pymilvus re-raises some gRPC failures (a deadline exceeded) unwrapped.
                mark_store("milvus", False)
                raise MilvusUnavailableError(f"gRPC {exc.code().name}", self.address) from exc
            mark_store("milvus", True)

    def _missing_collection(self, collection: str | None) -> SchemaError:
        if collection is None or collection == self.collection:
            what = f"collection {self.collection!r} does not exist "
            return SchemaError(
                "milvus",
                what + "(run `somafractalmemory validate-infra` after bootstrap)",
                self.address,
            )
        return SchemaError(
            "milvus",
            f"collection {collection!r} does not exist (create the space, or run "
            "`somafractalmemory ensure-collection`)",
            self.address,
        )

    # -- setup and probes -------------------------------------------------------------------
    def ping(self) -> None:
        """Raise :class:`MilvusUnavailableError` unless the server answers."""
        with self.translated("ping"):
            self.client.get_server_version(timeout=self.timeout)

    def check_collection(self, dimension: int, owner: DatabaseIdentity | None) -> None:
        """Raise :class:`SchemaError` unless the collection exists, is loaded, has the
        dimension, metric and index this service needs, and belongs to ``owner``
        (:mod:`~somafractalmemory.stores.ownership`). ``owner`` None checks the shape only:
        for when PostgreSQL, which knows the owner, failed its own check."""
        properties = self._check_shape(dimension)
        if owner is None:
            return
        problem = ownership_problem(self.collection, properties, owner)
        if problem:
            raise SchemaError("milvus", problem, self.address)

    def _check_shape(self, dimension: int) -> dict[str, str]:
        """Everything :meth:`check_collection` checks but the owner; returns the collection's
        properties."""
        with self.translated("check_collection"):
            if not self.client.has_collection(self.collection, timeout=self.timeout):
                raise SchemaError(
                    "milvus", f"collection {self.collection!r} does not exist", self.address
                )
            description = self.client.describe_collection(self.collection, timeout=self.timeout)
            indexes = self.client.list_indexes(self.collection, field_name=VECTOR_FIELD)
            index = (
                self.client.describe_index(self.collection, indexes[0], timeout=self.timeout)
                if indexes
                else None
            )
            state = self.client.get_load_state(self.collection, timeout=self.timeout)
        fields = {f["name"]: f for f in description["fields"]}
        vector = fields.get(VECTOR_FIELD)
        if vector is None or "tenant_id" not in fields:
            raise SchemaError(
                "milvus",
                f"collection {self.collection!r} was not made by SomaFractalMemory "
                f"(fields: {sorted(fields)})",
                self.address,
            )
        found_dim = int(vector.get("params", {}).get("dim", -1))
        if found_dim != dimension:
            raise SchemaError(
                "milvus",
                f"collection {self.collection!r} has dimension {found_dim}, "
                f"the embedding model needs {dimension}",
                self.address,
            )
        if index is None:
            raise SchemaError(
                "milvus", f"collection {self.collection!r} has no vector index", self.address
            )
        if str(index.get("metric_type", "")).upper() != METRIC:
            raise SchemaError(
                "milvus",
                f"collection {self.collection!r} uses metric {index.get('metric_type')}, "
                f"SomaFractalMemory needs {METRIC}",
                self.address,
            )
        if "Loaded" not in str(state.get("state", "")):
            raise SchemaError(
                "milvus", f"collection {self.collection!r} is not loaded", self.address
            )
        return properties_of(description)

    def ensure_collection(self, dimension: int, owner: DatabaseIdentity) -> None:
        """Create the collection (stamped with ``owner``), its index and load it, if needed;
        idempotent. An unstamped collection is adopted once its shape checks out.

        An existing collection with another dimension, metric or owner is refused, never
        altered.
        """
        with self.translated("ensure_collection"):
            if not self.client.has_collection(self.collection, timeout=self.timeout):
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("id", DataType.INT64, is_primary=True)
                schema.add_field("tenant_id", DataType.INT64, is_partition_key=True)
                schema.add_field("memory_type", DataType.VARCHAR, max_length=16)
                schema.add_field("created_at", DataType.INT64)
                schema.add_field("attrs", DataType.JSON)
                schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=dimension)
                # Indexed and loaded below, not by ``create_collection(index_params=...)``:
                # pymilvus would load within the per-call timeout, shorter than a load can take.
                self.client.create_collection(
                    self.collection,
                    schema=schema,
                    consistency_level="Session",
                    properties=stamp(owner),
                    timeout=self.timeout,
                )
        self.refuse_foreign(self.collection, owner)  # before indexing or loading it
        with self.translated("ensure_collection"):
            if not self.client.list_indexes(self.collection, field_name=VECTOR_FIELD):
                index_params = MilvusClient.prepare_index_params()
                index_params.add_index(
                    field_name=VECTOR_FIELD,
                    index_type=INDEX_TYPE,
                    metric_type=METRIC,
                    params=HNSW_BUILD,
                )
                self.client.create_index(self.collection, index_params, timeout=self.timeout)
        try:
            self._check_shape(dimension)
        except SchemaError as exc:
            if "is not loaded" not in exc.detail:
                raise
            with self.translated("load_collection"):
                self.client.load_collection(
                    self.collection, timeout=max(self.timeout, LOAD_TIMEOUT)
                )
        self.claim(self.collection, owner)
        self.check_collection(dimension, owner)

    def refuse_foreign(self, collection: str, owner: DatabaseIdentity) -> dict[str, str]:
        """Raise :class:`SchemaError` when another database owns ``collection`` (which
        exists); returns its properties."""
        with self.translated("describe_collection", collection):
            description = self.client.describe_collection(collection, timeout=self.timeout)
        properties = properties_of(description)
        problem = foreign_owner(collection, properties, owner)
        if problem:
            raise SchemaError("milvus", problem, self.address)
        return properties

    def claim(self, collection: str, owner: DatabaseIdentity) -> None:
        """Stamp ``collection`` (which exists) with ``owner`` when it carries no owner yet;
        refuse it when another database owns it. Two processes adopting one collection at
        once: the last stamp wins, and the other's check right after refuses it."""
        if OWNER in self.refuse_foreign(collection, owner):
            return
        with self.translated("alter_collection_properties", collection):
            self.client.alter_collection_properties(collection, stamp(owner), timeout=self.timeout)
        log_adoption(collection, owner)

    # -- data -------------------------------------------------------------------------------
    def upsert(self, records: Sequence[VectorRecord]) -> None:
        """Insert or replace entities by id; durable in Milvus's log when it returns.

        Done as delete-by-id then insert, not with Milvus's ``upsert``: on Milvus 2.3.5 an
        upsert ignores the partition key and lands the entity in the wrong partition, where
        tenant-filtered searches never see it. Deleting first also keeps a retried write
        from leaving two entities with one id (Milvus does not enforce unique keys).
        """
        if not records:
            return
        rows = [
            {
                "id": r.id,
                "tenant_id": r.tenant_id,
                "memory_type": r.memory_type,
                "created_at": r.created_at_ms,
                "attrs": r.attrs,
                VECTOR_FIELD: r.vector,
            }
            for r in records
        ]
        self.delete([r.id for r in records])
        with self.translated("insert"):
            self.client.insert(self.collection, rows, timeout=self.timeout)

    def delete(self, ids: Sequence[int]) -> None:
        """Delete the entities with these ids (absent ids are fine).

        Ids are PostgreSQL ids, unique across tenants, and callers resolve them within the
        caller's tenant first. The expression names only the primary key: Milvus 2.3.5
        silently deletes nothing for an expression on other fields.
        """
        if not ids:
            return
        with self.translated("delete"):
            for start in range(0, len(ids), 1000):
                id_list = ", ".join(str(int(i)) for i in ids[start : start + 1000])
                self.client.delete(
                    self.collection, filter=f"id in [{id_list}]", timeout=self.timeout
                )

    def search(
        self,
        tenant_id: int,
        vector: list[float],
        limit: int,
        scope: SearchScope | None = None,
    ) -> list[VectorHit]:
        """The tenant's ``limit`` nearest entities to ``vector`` within ``scope``, best first."""
        return self.search_many(tenant_id, [vector], limit, scope)[0]

    def search_many(
        self,
        tenant_id: int,
        vectors: list[list[float]],
        limit: int,
        scope: SearchScope | None = None,
    ) -> list[list[VectorHit]]:
        """:meth:`search` for several vectors in one request, one list of hits each."""
        expression = build_filter(tenant_id, scope)
        with self.translated("search"):
            result = self.client.search(
                self.collection,
                data=vectors,
                filter=expression,
                limit=limit,
                anns_field=VECTOR_FIELD,
                search_params={"metric_type": METRIC, "params": {"ef": search_ef(limit)}},
                timeout=self.timeout,
                consistency_level=self.consistency,
            )
        return [
            [VectorHit(id=int(hit["id"]), score=float(hit["distance"])) for hit in hits]
            for hits in result
        ]

    def count(self, tenant_id: int, collection: str | None = None) -> int:
        """How many entities the tenant has in ``collection`` (the memories' when None), read
        at Strong consistency: a Session read does not always see this client's own deletes
        at once (Milvus 2.3.5), and ``/stats`` must not report a deleted vector."""
        name = collection or self.collection
        with self.translated("count", name):
            result = self.client.query(
                name,
                filter=f"tenant_id == {int(tenant_id)}",
                output_fields=["count(*)"],
                timeout=self.timeout,
                consistency_level="Strong",
            )
        return int(result[0]["count(*)"])

    def all_ids(self, tenant_id: int) -> list[int]:
        """Every entity id the tenant has in Milvus (duplicates kept, so they show up), read
        at Strong consistency."""
        return [int(r["id"]) for r in self.scan(self.collection, tenant_id, ["id"])]

    def scan(self, collection: str, tenant_id: int, fields: list[str]) -> list[dict[str, Any]]:
        """``fields`` of every entity the tenant has in ``collection`` (any of SFM's
        collections), duplicates kept, read at Strong consistency (for reconciliation)."""
        found: list[dict[str, Any]] = []
        with self.translated("scan", collection):
            iterator = self.client.query_iterator(
                collection,
                batch_size=1000,
                filter=f"tenant_id == {int(tenant_id)}",
                output_fields=fields,
                timeout=self.timeout,
                consistency_level="Strong",
            )
            try:
                while batch := iterator.next():
                    found.extend(batch)
            finally:
                iterator.close()
        return found

    def vectors(
        self, tenant_id: int, ids: Sequence[int], chunk: int = 256
    ) -> dict[int, list[float]]:
        """The stored vectors of the tenant's entities among ``ids``, as Milvus holds them
        (float32 values, not normalised), read at Strong consistency ``chunk`` ids per query
        (for export, where another process may have written). Ids Milvus does not have are
        missing from the answer."""
        found: dict[int, list[float]] = {}
        for start in range(0, len(ids), chunk):
            id_list = ", ".join(str(int(i)) for i in ids[start : start + chunk])
            with self.translated("vectors"):
                rows = self.client.query(
                    self.collection,
                    filter=f"tenant_id == {int(tenant_id)} and id in [{id_list}]",
                    output_fields=["id", VECTOR_FIELD],
                    timeout=self.timeout,
                    consistency_level="Strong",
                )
            found.update((int(r["id"]), [float(x) for x in r[VECTOR_FIELD]]) for r in rows)
        return found
