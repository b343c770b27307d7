"""Redis adapter: a cache and nothing more.

:class:`MemoryCache` is cache-aside for single memories and items. Its one broad ``except``
is the project's only one: a Redis failure sets ``api_redis_up`` to 0, counts the error, logs
a warning, and the request goes on against PostgreSQL. After a failure the cache does not
trust what it holds: the next time Redis answers, it first drops every entry (and fill lease)
under its prefix, because an invalidation may have been lost while Redis was away.

Fills are leased, so that a read cannot put back what a write has just invalidated. A read
that misses takes a lease on the key *before* it reads PostgreSQL (``SET lease token NX``),
and fills the entry only if its lease is still there (a Lua script: compare, set, drop the
lease). An invalidation deletes the entry and the lease in one ``DEL``, after the write's
commit. So a read that saw the row before the commit has lost its lease by the time it would
fill, and a read that takes its lease after the invalidation reads PostgreSQL after the
commit. Tokens are random, so an expired lease is never mistaken for a later one. Cost: a
hit is the same single ``GET``; a miss takes one round trip more (the lease).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import secrets
import threading
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import redis

from somafractalmemory.errors import RedisUnavailableError
from somafractalmemory.models import Item, Memory, MemoryType
from somafractalmemory.observability.metrics import (
    CACHE_ERRORS,
    CACHE_HITS,
    CACHE_MISSES,
    mark_store,
)
from somafractalmemory.observability.tracing import store_span
from somafractalmemory.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Query vectors are written to the cache after the search has answered, by one thread; at
# most this many writes wait for it, the rest are skipped (a cache write may always be).
MAX_PENDING_WRITES = 64
# Query-vector lookups run on threads of their own, beside the embedding they may replace; at
# most this many wait or run at once, the rest are not made (a miss, as when Redis is away).
QUERY_LOOKUP_THREADS = 4
MAX_PENDING_LOOKUPS = 64
# A miss's lease on filling its key, in milliseconds: longer than any read of PostgreSQL
# (bounded by SOMA_STORE_TIMEOUT); a read slower than this does not fill, which is safe.
FILL_LEASE_MS = 10_000
# KEYS: the entry, its lease. ARGV: the lease token, the value, the TTL in seconds.
FILL_SCRIPT = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""


def create_redis_client(settings: Settings) -> redis.Redis[bytes]:
    """A Redis client with short timeouts: a slow cache must not slow a request."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=0,
    )


def _encode(memory: Memory) -> str:
    return json.dumps(
        {
            "id": memory.id,
            "coord": memory.coord,
            "payload": memory.payload,
            "memory_type": memory.memory_type.value,
            "importance": memory.importance,
            "text": memory.text,
            "created_at": memory.created_at.isoformat(),
            "updated_at": memory.updated_at.isoformat(),
            "valid_from": _iso(memory.valid_from),
            "valid_to": _iso(memory.valid_to),
            "superseded_by": memory.superseded_by,
            "superseded_at": _iso(memory.superseded_at),
            "user_id": memory.user_id,
            "agent_id": memory.agent_id,
            "session_id": memory.session_id,
        }
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _encode_item(item: Item) -> str:
    return json.dumps(
        {
            "id": item.id,
            "namespace": list(item.namespace),
            "key": item.key,
            "value": item.value,
            "space": item.space,
            "created_at": item.created_at.isoformat(),
            "updated_at": item.updated_at.isoformat(),
            "user_id": item.user_id,
            "agent_id": item.agent_id,
            "session_id": item.session_id,
        }
    )


def _decode_item(raw: bytes) -> Item:
    data = json.loads(raw)
    return Item(
        id=data["id"],
        namespace=tuple(data["namespace"]),
        key=data["key"],
        value=data["value"],
        space=data["space"],
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        ttl_minutes=None,
        expires_at=None,
        # Entries cached before scopes existed have none.
        user_id=data.get("user_id"),
        agent_id=data.get("agent_id"),
        session_id=data.get("session_id"),
    )


def _decode(raw: bytes) -> Memory:
    data = json.loads(raw)
    return Memory(
        id=data["id"],
        coord=data["coord"],
        payload=data["payload"],
        memory_type=MemoryType(data["memory_type"]),
        importance=data["importance"],
        text=data["text"],
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        # Entries cached before history existed have none of these.
        valid_from=_time(data.get("valid_from")),
        valid_to=_time(data.get("valid_to")),
        superseded_by=data.get("superseded_by"),
        superseded_at=_time(data.get("superseded_at")),
        user_id=data.get("user_id"),
        agent_id=data.get("agent_id"),
        session_id=data.get("session_id"),
    )


def lease_key(name: str) -> str:
    """The fill lease of the entry ``name`` (under the same prefix, so flushed with it;
    entry names never hold a NUL: coordinates are numbers, item keys exclude it)."""
    return f"{name}\x00lease"


class MemoryCache:
    """Best-effort cache of single memories and items, keyed by tenant and coordinate or
    namespace and key, filled under leases (see the module docstring)."""

    def __init__(self, client: redis.Redis[bytes], settings: Settings) -> None:
        self.client = client
        self.prefix = settings.redis_key_prefix
        self.ttl = settings.cache_ttl_seconds
        self.address = settings.redis_address
        self._suspect = False
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sfm-cache-write")
        self._write_slots = threading.BoundedSemaphore(MAX_PENDING_WRITES)
        self._readers = ThreadPoolExecutor(
            max_workers=QUERY_LOOKUP_THREADS, thread_name_prefix="sfm-cache-lookup"
        )
        self._lookup_slots = threading.BoundedSemaphore(MAX_PENDING_LOOKUPS)
        self._fill = client.register_script(FILL_SCRIPT)

    def close(self) -> None:
        """Finish the pending background reads and writes, then close the client."""
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self.client.close()

    def ping(self) -> None:
        """Raise :class:`RedisUnavailableError` unless Redis answers PING (a probe, not cache)."""
        with store_span("redis", "ping"):
            try:
                self.client.ping()
            except redis.RedisError as exc:
                mark_store("redis", False)
                self._suspect = True
                raise RedisUnavailableError(str(exc), self.address) from exc
        mark_store("redis", True)

    def memory_key(self, tenant_id: int, coord: str) -> str:
        return f"{self.prefix}:mem:{tenant_id}:{coord}"

    def _best_effort(self, operation: str, call: Callable[[], T], default: T) -> T:
        with store_span("redis", operation):
            try:
                if self._suspect:
                    self._drop_all()
                result = call()
            except Exception as exc:  # noqa: BLE001 - the cache never fails a request
                with self._lock:
                    self._suspect = True
                mark_store("redis", False)
                CACHE_ERRORS.inc()
                logger.warning("redis %s failed at %s: %s", operation, self.address, exc)
                return default
        mark_store("redis", True)
        return result

    def _drop_all(self) -> None:
        """Forget every cached memory and item, and every fill lease: invalidations may have
        been lost during an outage."""
        with self._lock:
            if not self._suspect:
                return
            for kind in ("mem", "item"):
                batch: list[Any] = []
                for key in self.client.scan_iter(match=f"{self.prefix}:{kind}:*", count=500):
                    batch.append(key)
                    if len(batch) >= 500:
                        self.client.delete(*batch)
                        batch = []
                if batch:
                    self.client.delete(*batch)
            self._suspect = False

    def get(self, tenant_id: int, coord: str) -> Memory | None:
        """The cached memory, or None on a miss or a Redis failure."""
        return self._cached("get", self.memory_key(tenant_id, coord), _decode)

    def _cached(self, operation: str, name: str, decode: Callable[[bytes], T]) -> T | None:
        """A cached record, counted as a hit or a miss; None on a miss or a Redis failure."""
        raw = self._best_effort(operation, lambda: self.client.get(name), None)
        if raw is None:
            CACHE_MISSES.inc()
            return None
        CACHE_HITS.inc()
        return decode(raw)

    def _lease(self, operation: str, name: str) -> str | None:
        """A lease on filling ``name``, taken after a miss and before reading PostgreSQL;
        None when another read holds one or Redis failed (then the read does not fill)."""
        token = secrets.token_hex(8)
        taken = self._best_effort(
            operation,
            lambda: self.client.set(lease_key(name), token, nx=True, px=FILL_LEASE_MS),
            None,
        )
        return token if taken else None

    def _fill_leased(self, operation: str, name: str, lease: str | None, data: str) -> None:
        """Write ``data`` at ``name`` if the lease is still there (no invalidation since)."""
        if lease is None:
            return
        self._best_effort(
            operation,
            lambda: self._fill(keys=[name, lease_key(name)], args=[lease, data, self.ttl]),
            None,
        )

    def lease(self, tenant_id: int, coord: str) -> str | None:
        """A lease on filling the memory at ``coord`` (see :meth:`_lease`)."""
        return self._lease("lease", self.memory_key(tenant_id, coord))

    def put(self, tenant_id: int, memory: Memory, lease: str | None) -> None:
        """Cache ``memory`` for the TTL, if ``lease`` (from :meth:`lease`, taken before the
        memory was read) still holds: no write invalidated it since."""
        name = self.memory_key(tenant_id, memory.coord)
        self._fill_leased("set", name, lease, _encode(memory))

    def item_key(self, tenant_id: int, namespace: Sequence[str], key: str) -> str:
        # Labels never contain "." and a key never a NUL: the pair is unambiguous.
        return f"{self.prefix}:item:{tenant_id}:{'.'.join(namespace)}\x00{key}"

    def get_item(self, tenant_id: int, namespace: Sequence[str], key: str) -> Item | None:
        """The cached item, or None on a miss or a Redis failure."""
        return self._cached("get_item", self.item_key(tenant_id, namespace, key), _decode_item)

    def lease_item(self, tenant_id: int, namespace: Sequence[str], key: str) -> str | None:
        """A lease on filling the item (see :meth:`_lease`)."""
        return self._lease("lease_item", self.item_key(tenant_id, namespace, key))

    def put_item(self, tenant_id: int, item: Item, lease: str | None) -> None:
        """Cache an item without a TTL, if ``lease`` still holds (one with a TTL is never
        cached: its reads extend it, and it may expire at any moment)."""
        if item.ttl_minutes is not None:
            return
        name = self.item_key(tenant_id, item.namespace, item.key)
        self._fill_leased("set_item", name, lease, _encode_item(item))

    def invalidate_items(self, tenant_id: int, keys: Sequence[tuple[Sequence[str], str]]) -> None:
        """Drop cached copies of items, and the leases of reads in flight, after a write or
        delete has committed."""
        if not keys:
            return
        names = [self.item_key(tenant_id, namespace, key) for namespace, key in keys]
        self._drop("delete_items", names)

    def _drop(self, operation: str, names: list[str]) -> None:
        """Delete entries and their leases in one command."""
        doomed = [*names, *map(lease_key, names)]
        self._best_effort(operation, lambda: self.client.delete(*doomed), None)

    def _query_key(self, model: str, text: str) -> str:
        digest = hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()
        return f"{self.prefix}:qvec:{digest}"

    def get_query_vector(self, model: str, text: str) -> list[float] | None:
        """A cached query embedding (float32), or None on a miss or a Redis failure."""
        raw = self._best_effort(
            "get_query_vector", lambda: self.client.get(self._query_key(model, text)), None
        )
        if raw is None or len(raw) % 4:
            return None
        return array("f", raw).tolist()

    def lookup_query_vector(self, model: str, text: str) -> Future[list[float] | None] | None:
        """:meth:`get_query_vector` on a lookup thread, so that the caller can embed the
        query meanwhile; None (no lookup) when :data:`MAX_PENDING_LOOKUPS` already wait, as
        they do while Redis hangs until its timeout. The future never raises."""
        if not self._lookup_slots.acquire(blocking=False):
            return None

        def lookup() -> list[float] | None:
            try:
                return self.get_query_vector(model, text)
            finally:
                self._lookup_slots.release()

        # The request's context goes along: its trace, and a Redis failure is its warning.
        try:
            return self._readers.submit(contextvars.copy_context().run, lookup)
        except RuntimeError:  # the cache is closing: a request still under way embeds
            self._lookup_slots.release()
            return None

    def put_query_vector(self, model: str, text: str, vector: list[float]) -> None:
        """Cache a query embedding for an hour (embeddings of a text never change)."""
        key = self._query_key(model, text)
        data = array("f", vector).tobytes()
        self._best_effort("set_query_vector", lambda: self.client.set(key, data, ex=3600), None)

    def put_query_vector_later(self, model: str, text: str, vector: list[float]) -> None:
        """:meth:`put_query_vector` on the cache's writer thread, so that a search does not
        wait for the write; skipped when :data:`MAX_PENDING_WRITES` writes already wait."""
        if not self._write_slots.acquire(blocking=False):
            return

        def write() -> None:
            try:
                self.put_query_vector(model, text, vector)
            finally:
                self._write_slots.release()

        self._writer.submit(write)

    def invalidate(self, tenant_id: int, coords: list[str]) -> None:
        """Drop cached copies, and the leases of reads in flight, after a replace or delete
        has committed."""
        if not coords:
            return
        self._drop("delete", [self.memory_key(tenant_id, c) for c in coords])
