"""API keys: made here, stored only as a SHA-256 hash, shown to the operator once."""

from __future__ import annotations

import hashlib
import secrets

from somafractalmemory.core.models import ApiKeyInfo, Tenant
from somafractalmemory.errors import InvalidInputError, UnauthorizedError
from somafractalmemory.stores.postgres import PostgresStore

KEY_PREFIX = "sfm_"
TENANT_NAME_MAX = 128


def hash_key(key: str) -> bytes:
    """The stored form of a key. Keys carry 256 random bits, so a plain SHA-256 suffices."""
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyService:
    """Creates, lists, revokes and checks API keys."""

    def __init__(self, postgres: PostgresStore) -> None:
        self.postgres = postgres

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

    def authenticate(self, key: str | None) -> Tenant:
        """The tenant of an unrevoked ``key``, or :class:`UnauthorizedError`."""
        if not key:
            raise UnauthorizedError("missing API key: send `Authorization: Bearer <key>`")
        # Looked up by hash: the database never compares secret material.
        tenant = self.postgres.tenant_for_key_hash(hash_key(key))
        if tenant is None:
            raise UnauthorizedError("unknown or revoked API key")
        return tenant
