"""PostgreSQL adapter: the source of truth for memories, links, tenants and keys.

:class:`PostgresStore` is the one object the services hold: it joins the reads of each table
group (one module each) on the shared connection layer of :mod:`.pg_base`, where every
driver error is translated, once. Writes run inside a :class:`UnitOfWork` (:mod:`.pg_writes`)
that only the core services commit.
"""

from __future__ import annotations

from somafractalmemory.stores.pg_base import PostgresBase, create_postgres_engine
from somafractalmemory.stores.pg_graph import GraphReads
from somafractalmemory.stores.pg_history import HistoryReads
from somafractalmemory.stores.pg_keyword import KeywordReads
from somafractalmemory.stores.pg_memories import MemoryReads
from somafractalmemory.stores.pg_scopes import ScopeReads
from somafractalmemory.stores.pg_tenants import TenantReads
from somafractalmemory.stores.pg_webhooks import WebhookStore
from somafractalmemory.stores.pg_writes import UnitOfWork

__all__ = ["PostgresBase", "PostgresStore", "UnitOfWork", "create_postgres_engine"]


class PostgresStore(
    MemoryReads, KeywordReads, TenantReads, GraphReads, HistoryReads, WebhookStore, ScopeReads
):
    """Typed access to the SFM tables; see the module docstring for error semantics."""

    def unit_of_work(self, key_id: int | None = None) -> UnitOfWork:
        """Begin a write transaction; the caller must ``commit()`` or it is rolled back.
        ``key_id`` names the API key making the change (kept in the history)."""
        return UnitOfWork(self, key_id)
