"""API keys: made here, stored only as a SHA-256 hash, shown to the operator once."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

from somafractalmemory.errors import InvalidInputError, UnauthorizedError
from somafractalmemory.models import ApiKeyInfo, Tenant
from somafractalmemory.stores.key_events import KeyChangeListener
from somafractalmemory.stores.postgres import PostgresStore

KEY_PREFIX = "sfm_"
TENANT_NAME_MAX = 128


def hash_key(key: str) -> bytes:
    """The stored form of a key. Keys carry 256 random bits, so a plain SHA-256 suffices."""
    return hashlib.sha256(key.encode("utf-8")).digest()


class TenantCache:
    """Key lookups that found a tenant, kept in the process while PostgreSQL tells it about
    every key change (:class:`KeyChangeListener`); disabled, so every lookup reads PostgreSQL,
    until the listener listens and whenever it has lost its connection.

    A change empties the cache and starts a new generation. A lookup stores its answer only
    if no change arrived since it began (the generation it read before reading PostgreSQL is
    still the current one), so an answer read before a revocation is never kept after it.
    Entries also expire after ``ttl`` seconds, a bound for a connection that is gone without
    the listener noticing yet.
    """

    def __init__(self, ttl: float = 30.0, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[Tenant, float]] = {}
        self._generation = 0
        self._enabled = False

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def enabled(self) -> bool:
        return self._enabled

    def get(self, key_hash: bytes) -> Tenant | None:
        if not self._enabled:
            return None
        entry = self._entries.get(key_hash)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, key_hash: bytes, tenant: Tenant, generation: int) -> None:
        with self._lock:
            if not self._enabled or generation != self._generation:
                return
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
            self._entries[key_hash] = (tenant, time.monotonic() + self._ttl)

    def reset(self, enabled: bool) -> None:
        """Forget every entry and start a new generation; cache from now on or not."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._enabled = enabled


class KeyService:
    """Creates, lists, revokes and checks API keys."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres
        self.cache = TenantCache()
        self._listener: KeyChangeListener | None = None

    def listen(self, dsn: str, connect_timeout: float, ttl: float) -> None:
        """Cache key lookups for ``ttl`` seconds at most from now on, for as long as
        PostgreSQL reports key changes to this process (the server does this; the CLI never
        caches). A ``ttl`` of 0 leaves the cache off."""
        if self._listener is not None or ttl <= 0:
            return
        self.cache = TenantCache(ttl)
        self._listener = KeyChangeListener(
            dsn,
            self.postgres.address,
            connect_timeout,
            on_ready=lambda: self.cache.reset(enabled=True),
            on_change=lambda: self.cache.reset(enabled=True),
            on_lost=lambda: self.cache.reset(enabled=False),
        )
        self._listener.start()

    def close(self) -> None:
        """Stop listening; lookups read PostgreSQL again."""
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self.cache.reset(enabled=False)

    def create(self, tenant_name: str) -> tuple[str, ApiKeyInfo]:
        """A new key for ``tenant_name`` (the tenant is created if new); the key is returned
        once and never stored."""
        name = tenant_name.strip()
        if not name or len(name) > TENANT_NAME_MAX:
            raise InvalidInputError(f"must be 1 to {TENANT_NAME_MAX} characters", "tenant")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.postgres.unit_of_work() as uow:
            tenant = uow.ensure_tenant(name)
            info = uow.insert_key(tenant.id, hash_key(key), key[: len(KEY_PREFIX) + 6])
            uow.commit()
        return key, info

    def revoke(self, key_id: int) -> bool:
        """Revoke a key at once; False if there is no such unrevoked key."""
        with self.postgres.unit_of_work() as uow:
            done = uow.revoke_key(key_id)
            uow.commit()
        return done

    def list(self) -> list[ApiKeyInfo]:
        """Every key's id, tenant and prefix."""
        return self.postgres.list_keys()

    def key_id(self, key: str) -> str:
        """A stable, non-secret name for a key (for rate limiting): a prefix of its hash."""
        return hash_key(key).hex()[:16]

    def cached(self, key: str) -> Tenant | None:
        """The key's tenant if this process has it cached (no I/O), else None."""
        return self.cache.get(hash_key(key))

    def authenticate(self, key: str | None) -> Tenant:
        """The tenant of an unrevoked ``key``, or :class:`UnauthorizedError`."""
        if not key:
            raise UnauthorizedError("missing API key: send `Authorization: Bearer <key>`")
        # Looked up by hash: the database never compares secret material.
        key_hash = hash_key(key)
        cached = self.cache.get(key_hash)
        if cached is not None:
            return cached
        generation = self.cache.generation
        tenant = self.postgres.tenant_for_key_hash(key_hash)
        if tenant is None:
            raise UnauthorizedError("unknown or revoked API key")
        self.cache.put(key_hash, tenant, generation)
        return tenant
