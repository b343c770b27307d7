"""Reads of tenants, API keys and reconcile runs."""

from __future__ import annotations

import sqlalchemy as sa

from somafractalmemory.models import (
    ApiKeyInfo,
    Tenant,
)
from somafractalmemory.stores.pg_base import PostgresBase
from somafractalmemory.stores.tables import (
    api_keys,
    reconcile_runs,
    tenants,
)

# than the round trip itself (benchmarks/RESULTS.md). psycopg prepares them after five uses.
_TENANT_FOR_KEY_SQL = (
    "SELECT tenants.id, tenants.name, api_keys.id FROM tenants JOIN api_keys "
    "ON api_keys.tenant_id = tenants.id "
    "WHERE api_keys.key_hash = %s AND api_keys.revoked_at IS NULL"
)


class TenantReads(PostgresBase):
    """Reads of the tenants, api_keys and reconcile_runs tables."""

    # -- tenants and keys -------------------------------------------------------------------
    def tenant_for_key_hash(self, key_hash: bytes) -> Tenant | None:
        """The tenant owning an unrevoked key with this hash, or None."""
        with self.driver_reading("tenant_for_key") as conn:
            row = conn.execute(_TENANT_FOR_KEY_SQL, (key_hash,)).fetchone()
        return Tenant(id=row[0], name=row[1], key_id=row[2]) if row else None

    def list_keys(self) -> list[ApiKeyInfo]:
        """Every key, newest first, without the key material."""
        query = (
            sa.select(
                api_keys.c.id,
                tenants.c.name,
                api_keys.c.prefix,
                api_keys.c.created_at,
                api_keys.c.revoked_at,
            )
            .join(tenants, tenants.c.id == api_keys.c.tenant_id)
            .order_by(api_keys.c.id.desc())
        )
        with self.reading("list_keys") as conn:
            return [
                ApiKeyInfo(
                    id=r.id,
                    tenant=r.name,
                    prefix=r.prefix,
                    created_at=r.created_at,
                    revoked_at=r.revoked_at,
                )
                for r in conn.execute(query)
            ]

    def list_tenants(self) -> list[Tenant]:
        """Every tenant."""
        with self.reading("list_tenants") as conn:
            rows = conn.execute(sa.select(tenants.c.id, tenants.c.name).order_by(tenants.c.id))
            return [Tenant(id=r.id, name=r.name) for r in rows]

    def tenant_by_name(self, name: str) -> Tenant | None:
        """The tenant called ``name``, or None."""
        with self.reading("tenant_by_name") as conn:
            row = conn.execute(
                sa.select(tenants.c.id, tenants.c.name).where(tenants.c.name == name)
            ).first()
        return Tenant(id=row.id, name=row.name) if row else None

    def last_reconcile_drift(self) -> int | None:
        """missing + orphans found by the newest reconcile run, or None if never run."""
        query = (
            sa.select(reconcile_runs.c.missing + reconcile_runs.c.orphans)
            .order_by(reconcile_runs.c.id.desc())
            .limit(1)
        )
        with self.reading("last_reconcile") as conn:
            value = conn.execute(query).scalar()
        return int(value) if value is not None else None
