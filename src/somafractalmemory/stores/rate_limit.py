"""Per-key rate limits shared through Redis (see :class:`RateLimiter`); Redis failures never
fail a request: the counts wait in the process until Redis answers."""

from __future__ import annotations

import logging
import threading

import redis

from somafractalmemory.observability.metrics import CACHE_ERRORS, mark_store
from somafractalmemory.observability.tracing import store_span
from somafractalmemory.settings import Settings

logger = logging.getLogger(__name__)
# How often a process sends its rate-limit counts to Redis and reads the shared totals back.
RATE_SYNC_SECONDS = 0.05


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
