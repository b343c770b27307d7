"""Redis adapter: a cache and nothing more.

:class:`MemoryCache` is cache-aside for single memories. Its one broad ``except`` is the
project's only one: a Redis failure sets ``api_redis_up`` to 0, counts the error, logs a
warning, and the request goes on against PostgreSQL. After a failure the cache does not trust
what it holds: the next time Redis answers, it first drops every entry under its prefix,
because an invalidation may have been lost while Redis was away.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
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
# How often a process sends its rate-limit counts to Redis and reads the shared totals back.
RATE_SYNC_SECONDS = 0.05


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
    )


class MemoryCache:
    """Best-effort cache of single memories keyed by tenant and coordinate."""

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
        """Forget every cached memory: invalidations may have been lost during an outage."""
        with self._lock:
            if not self._suspect:
                return
            batch: list[Any] = []
            for key in self.client.scan_iter(match=f"{self.prefix}:mem:*", count=500):
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

    def put(self, tenant_id: int, memory: Memory) -> None:
        """Cache ``memory`` for the TTL."""
        key = self.memory_key(tenant_id, memory.coord)
        self._best_effort("set", lambda: self.client.set(key, _encode(memory), ex=self.ttl), None)

    def item_key(self, tenant_id: int, namespace: Sequence[str], key: str) -> str:
        # Labels never contain "." and a key never a NUL: the pair is unambiguous.
        return f"{self.prefix}:item:{tenant_id}:{'.'.join(namespace)}\x00{key}"

    def get_item(self, tenant_id: int, namespace: Sequence[str], key: str) -> Item | None:
        """The cached item, or None on a miss or a Redis failure."""
        return self._cached("get_item", self.item_key(tenant_id, namespace, key), _decode_item)

    def put_item(self, tenant_id: int, item: Item) -> None:
        """Cache an item without a TTL (one with a TTL is never cached: its reads extend it,
        and it may expire at any moment)."""
        if item.ttl_minutes is not None:
            return
        name = self.item_key(tenant_id, item.namespace, item.key)
        data = _encode_item(item)
        self._best_effort("set_item", lambda: self.client.set(name, data, ex=self.ttl), None)

    def invalidate_items(self, tenant_id: int, keys: Sequence[tuple[Sequence[str], str]]) -> None:
        """Drop cached copies of items after a write or delete."""
        if not keys:
            return
        names = [self.item_key(tenant_id, namespace, key) for namespace, key in keys]
        self._best_effort("delete_items", lambda: self.client.delete(*names), None)

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
        """Drop cached copies after a replace or delete."""
        if not coords:
            return
        keys = [self.memory_key(tenant_id, c) for c in coords]
        self._best_effort("delete", lambda: self.client.delete(*keys), None)


class RateLimiter:
    """Per-key request budget over fixed one-minute windows, shared through Redis by every
    server process, without a Redis round trip in any request.

    A request is counted in the process at once and decided on the process's view of its
    key's count: the total Redis last returned, plus the requests on their way to Redis, plus
    those not sent yet. A background thread sends the new requests of every key at most every
    :data:`RATE_SYNC_SECONDS` (one pipeline of ``INCRBY``) and keeps the totals Redis returns,
    which include the other processes' requests. So a key can go over its budget by what the
    *other* processes let through before their next sync; one process alone never lets it.

    When Redis fails, the requests stay counted in the process and are sent once Redis answers
    again: the limit keeps holding (per process) instead of failing requests or letting
    everything through.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        settings: Settings,
        sync_seconds: float = RATE_SYNC_SECONDS,
    ) -> None:
        self.client = client
        self.limit = settings.rate_limit_per_minute
        self.prefix = settings.redis_key_prefix
        self.address = settings.redis_address
        self.sync_seconds = sync_seconds
        # (key id, window) -> requests: the totals Redis returned, those in the pipeline being
        # sent, and those not sent yet.
        self._synced: dict[tuple[str, int], int] = {}
        self._sending: dict[tuple[str, int], int] = {}
        self._unsent: dict[tuple[str, int], int] = {}
        self._window = 0
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hit(self, key_id: str, now: float) -> tuple[bool, int]:
        """Count one request for ``key_id``; returns (allowed, seconds until the window ends)."""
        if self.limit <= 0:
            return True, 0
        window = int(now // 60)
        retry_after = max(1, 60 - int(now % 60))
        slot = (key_id, window)
        with self._lock:
            if window > self._window:
                self._forget_before(window)
            unsent = self._unsent.get(slot, 0) + 1
            self._unsent[slot] = unsent
            count = self._synced.get(slot, 0) + self._sending.get(slot, 0) + unsent
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sfm-rate-sync", daemon=True)
                self._thread.start()
        self._wake.set()
        return count <= self.limit, retry_after

    def sync(self) -> bool:
        """Send the counts not sent yet and keep Redis's totals; False when Redis failed (the
        counts then wait for the next sync). The background thread calls this."""
        with self._sync_lock:
            with self._lock:
                self._sending, self._unsent = self._unsent, {}
                sending = self._sending
            if not sending:
                return True
            try:
                with store_span("redis", "rate_limit"):
                    pipe = self.client.pipeline(transaction=False)
                    for key_id, window in sending:
                        redis_key = f"{self.prefix}:rl:{key_id}:{window}"
                        pipe.incrby(redis_key, sending[key_id, window])
                        pipe.expire(redis_key, 120)
                    totals = pipe.execute()[::2]
            except Exception as exc:  # noqa: BLE001 - Redis never fails a request
                mark_store("redis", False)
                CACHE_ERRORS.inc()
                logger.warning("redis rate_limit failed at %s: %s", self.address, exc)
                with self._lock:
                    for slot, count in sending.items():
                        if slot[1] >= self._window:
                            self._unsent[slot] = self._unsent.get(slot, 0) + count
                    self._sending = {}
                return False
            mark_store("redis", True)
            with self._lock:
                for slot, total in zip(sending, totals, strict=True):
                    if slot[1] >= self._window:
                        self._synced[slot] = int(total)
                self._sending = {}
            return True

    def close(self) -> None:
        """Stop the sync thread after a last sync."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sync()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            self.sync()
            self._stop.wait(self.sync_seconds)

    def _forget_before(self, window: int) -> None:
        """Drop the counts of past windows (called with the lock held). New dicts, not
        deletions: :meth:`sync` may be iterating the one it is sending."""
        self._window = window
        self._synced = {slot: n for slot, n in self._synced.items() if slot[1] >= window}
        self._sending = {slot: n for slot, n in self._sending.items() if slot[1] >= window}
        self._unsent = {slot: n for slot, n in self._unsent.items() if slot[1] >= window}
