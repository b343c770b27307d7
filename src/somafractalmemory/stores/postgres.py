"""PostgreSQL adapter: the source of truth for memories, links, tenants and keys.

Reads run on their own connection; writes run inside a :class:`UnitOfWork` that only the core
services commit. Every driver error is translated here, once: a connection problem becomes
:class:`PostgresUnavailableError`, a missing table or column :class:`SchemaError`, a value
PostgreSQL refuses :class:`InvalidInputError`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg.errors
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from somafractalmemory.errors import (
    ConflictError,
    InvalidInputError,
    PostgresUnavailableError,
    SchemaError,
)
from somafractalmemory.models import (
    ApiKeyInfo,
    Link,
    Memory,
    MemoryType,
    NewMemory,
    OutboxEntry,
    SearchScope,
    Tenant,
)
from somafractalmemory.observability.metrics import mark_store
from somafractalmemory.observability.timing import stage
from somafractalmemory.observability.tracing import store_span
from somafractalmemory.settings import Settings
from somafractalmemory.stores import keyword
from somafractalmemory.stores.pg_connection import (
    DeadlineConnection,
    connection_class,
    idle_usable,
)
from somafractalmemory.stores.tables import (
    api_keys,
    links,
    memories,
    metadata,
    reconcile_runs,
    tenants,
    vector_outbox,
)

_SCHEMA_ERRORS = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedObject,
)
_TS_CONFIG: sa.ColumnClause[Any] = sa.literal_column("'english'::regconfig")
_MEMORY_COLUMNS = (
    memories.c.id,
    memories.c.coord,
    memories.c.payload,
    memories.c.memory_type,
    memories.c.importance,
    memories.c.text,
    memories.c.created_at,
    memories.c.updated_at,
)
# The two reads of every search run as plain SQL on the pooled psycopg connection, without
# SQLAlchemy's execution layer: on two cores that layer costs about 0.5 ms a statement, more
# than the round trip itself (benchmarks/RESULTS.md). psycopg prepares them after five uses.
_TENANT_FOR_KEY_SQL = (
    "SELECT tenants.id, tenants.name FROM tenants JOIN api_keys "
    "ON api_keys.tenant_id = tenants.id "
    "WHERE api_keys.key_hash = %s AND api_keys.revoked_at IS NULL"
)
_MEMORY_SQL_COLUMNS = ", ".join(column.name for column in _MEMORY_COLUMNS)
_MEMORIES_BY_IDS_SQL = (
    f"SELECT {_MEMORY_SQL_COLUMNS} FROM memories WHERE tenant_id = %s AND id = ANY(%s)"
)


def create_postgres_engine(settings: Settings) -> Engine:
    """An engine with bounded connect, pool and statement timeouts, so nothing hangs.

    Statements may run ``2 * SOMA_STORE_TIMEOUT`` on the server; the client gives up on any
    wait for the server after ``3 * SOMA_STORE_TIMEOUT`` (see :mod:`.pg_connection`).

    A pooled connection is checked without a round trip when it is checked out (instead of
    ``pool_pre_ping``'s ``SELECT 1``, a round trip per checkout, several per search): one the
    server has ended since its last use is discarded and replaced (see :func:`.idle_usable`).
    """
    timeout_ms = int(settings.store_timeout * 2000)
    engine = sa.create_engine(
        settings.sqlalchemy_url,
        pool_size=10,
        max_overflow=20,
        pool_timeout=settings.store_timeout,
        connect_args={
            "connect_timeout": max(1, int(settings.store_timeout)),
            "options": f"-c statement_timeout={timeout_ms}",
            "application_name": "somafractalmemory",
        },
    )
    connection = connection_class(wait_deadline=settings.store_timeout * 3)

    @sa.event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> DeadlineConnection:
        return connection.connect(*cargs, **cparams)

    @sa.event.listens_for(engine, "checkout")
    def check_out(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not idle_usable(dbapi_connection):
            # The pool discards this connection and checks out another (or a new one).
            raise sa.exc.DisconnectionError("the server ended this pooled connection")

    return engine


def _memory_from_tuple(row: tuple[Any, ...]) -> Memory:
    """A :class:`Memory` from a row of :data:`_MEMORY_SQL_COLUMNS`, in that order."""
    memory_id, coord, payload, memory_type, importance, text, created_at, updated_at = row
    return Memory(
        id=memory_id,
        coord=coord,
        payload=payload,
        memory_type=MemoryType(memory_type),
        importance=importance,
        text=text,
        created_at=created_at,
        updated_at=updated_at,
    )


def _memory(row: Any) -> Memory:
    return Memory(
        id=row.id,
        coord=row.coord,
        payload=row.payload,
        memory_type=MemoryType(row.memory_type),
        importance=row.importance,
        text=row.text,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class PostgresStore:
    """Typed access to the SFM tables; see the module docstring for error semantics."""

    def __init__(self, engine: Engine, address: str) -> None:
        self.engine = engine
        self.address = address
        self._stats: tuple[float, keyword.LexemeStats] | None = None

    @contextmanager
    def translated(self, operation: str) -> Iterator[None]:
        """Run a block as one traced PostgreSQL call, translating driver errors."""
        with store_span("postgres", operation), stage("postgres"):
            try:
                yield
            except sa.exc.DBAPIError as exc:
                raise self._translated_driver_error(exc.orig or exc) from exc
            except sa.exc.SQLAlchemyError as exc:  # pool exhausted, connection closed
                mark_store("postgres", False)
                raise PostgresUnavailableError(str(exc).splitlines()[0], self.address) from exc
            except psycopg.Error as exc:  # raised by a driver_reading, not wrapped
                raise self._translated_driver_error(exc) from exc
            mark_store("postgres", True)

    def _translated_driver_error(self, orig: BaseException) -> Exception:
        """The SFM error for a psycopg error (marking PostgreSQL down when it is one)."""
        message = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
        if isinstance(orig, _SCHEMA_ERRORS):
            mark_store("postgres", True)
            return SchemaError(
                "postgres",
                f"schema error: {message} (run `somafractalmemory migrate`)",
                self.address,
            )
        if isinstance(orig, psycopg.errors.DataError):
            return InvalidInputError(f"PostgreSQL refused a value: {message}")
        if isinstance(orig, psycopg.errors.IntegrityError):
            return ConflictError(message)
        mark_store("postgres", False)
        return PostgresUnavailableError(message, self.address)

    @contextmanager
    def reading(self, operation: str) -> Iterator[Connection]:
        """A connection for reads, in autocommit: each statement is its own snapshot, and no
        BEGIN or ROLLBACK round trip surrounds it (a search makes several reads)."""
        with self.translated(operation), self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def driver_reading(self, operation: str) -> Iterator[psycopg.Connection[Any]]:
        """The pooled psycopg connection itself, in autocommit, for the hot reads (plain SQL,
        no SQLAlchemy execution layer). Its errors are translated like any other; a
        connection they broke is discarded by the pool at its next checkout."""
        with self.reading(operation) as conn:
            driver = conn.connection.driver_connection
            assert isinstance(driver, psycopg.Connection)
            yield driver

    def unit_of_work(self) -> UnitOfWork:
        """Begin a write transaction; the caller must ``commit()`` or it is rolled back."""
        return UnitOfWork(self)

    # -- probes -----------------------------------------------------------------------------
    def ping(self) -> None:
        """Raise :class:`PostgresUnavailableError` unless PostgreSQL answers ``SELECT 1``."""
        with self.reading("ping") as conn:
            conn.execute(sa.text("SELECT 1"))

    def check(self) -> None:
        """A health probe that touches the tables: raise :class:`SchemaError` naming any that
        is missing (a dropped table), :class:`PostgresUnavailableError` when down."""
        missing = self.missing_tables()
        if missing:
            raise SchemaError("postgres", f"table(s) missing: {', '.join(missing)}", self.address)

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at, or None when never migrated."""
        with self.reading("schema_revision") as conn:
            exists = conn.execute(sa.text("SELECT to_regclass('alembic_version')")).scalar()
            if exists is None:
                return None
            value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return str(value) if value is not None else None

    def missing_tables(self) -> list[str]:
        """The SFM tables that do not exist (a dropped table shows up here)."""
        names = sorted(metadata.tables)
        with self.reading("missing_tables") as conn:
            found = conn.execute(
                sa.text(
                    "SELECT name FROM unnest(CAST(:names AS text[])) AS name "
                    "WHERE to_regclass(name) IS NULL"
                ),
                {"names": names},
            ).scalars()
            return [str(n) for n in found]

    # -- tenants and keys -------------------------------------------------------------------
    def tenant_for_key_hash(self, key_hash: bytes) -> Tenant | None:
        """The tenant owning an unrevoked key with this hash, or None."""
        with self.driver_reading("tenant_for_key") as conn:
            row = conn.execute(_TENANT_FOR_KEY_SQL, (key_hash,)).fetchone()
        return Tenant(id=row[0], name=row[1]) if row else None

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

    # -- memories ---------------------------------------------------------------------------
    def get_memory(self, tenant_id: int, coord: str) -> Memory | None:
        """The tenant's memory at ``coord`` (canonical), or None."""
        query = sa.select(*_MEMORY_COLUMNS).where(
            memories.c.tenant_id == tenant_id, memories.c.coord == coord
        )
        with self.reading("get_memory") as conn:
            row = conn.execute(query).first()
        return _memory(row) if row else None

    def get_memories_by_ids(self, tenant_id: int, ids: Sequence[int]) -> dict[int, Memory]:
        """The tenant's memories among ``ids``; ids of other tenants or deleted rows are absent."""
        if not ids:
            return {}
        with self.driver_reading("get_memories_by_ids") as conn:
            rows = conn.execute(_MEMORIES_BY_IDS_SQL, (tenant_id, list(ids))).fetchall()
        return {row[0]: _memory_from_tuple(row) for row in rows}

    def list_memories(
        self, tenant_id: int, memory_type: MemoryType | None, after_id: int, limit: int
    ) -> list[Memory]:
        """Up to ``limit`` memories with id greater than ``after_id``, oldest first."""
        query = (
            sa.select(*_MEMORY_COLUMNS)
            .where(memories.c.tenant_id == tenant_id, memories.c.id > after_id)
            .order_by(memories.c.id)
            .limit(limit)
        )
        if memory_type is not None:
            query = query.where(memories.c.memory_type == memory_type.value)
        with self.reading("list_memories") as conn:
            return [_memory(row) for row in conn.execute(query)]

    def keyword_search(
        self, tenant_id: int, text: str, limit: int, scope: SearchScope
    ) -> list[tuple[int, float]]:
        """The tenant's best full-text matches for ``text`` as (id, rank), best first.

        Any word may match (the query's lexemes are OR-ed) and ``ts_rank_cd`` against that OR
        orders the matches, but only a bounded set of candidate rows is ranked, picked by the
        query's rarest lexemes (see :mod:`somafractalmemory.stores.keyword`), so the cost does
        not grow with the tenant. The scope is applied in the same statement, before any
        limit; payload filters use JSONB containment.
        """
        with self.reading("keyword_search") as conn:
            lexemes = [
                str(x)
                for x in conn.execute(
                    sa.select(
                        sa.func.unnest(
                            sa.func.tsvector_to_array(sa.func.to_tsvector(_TS_CONFIG, text))
                        )
                    )
                ).scalars()
            ]
            if not lexemes:
                return []
            every = keyword.any_of(lexemes)
            found: dict[int, float] = {}
            picks = list(keyword.tiers(lexemes, self._lexeme_stats(conn)))
            for pick in picks:
                cap = keyword.CANDIDATE_CAP if pick.fits else limit * keyword.FILL_FACTOR
                found.update(self._ranked(conn, tenant_id, pick.query, every, limit, scope, cap))
                if len(found) >= limit:
                    break
            if len(found) < limit and every not in (pick.query for pick in picks):
                # Rows holding only some common word: a few, so the list is never short.
                cap = limit * keyword.FILL_FACTOR
                found.update(self._ranked(conn, tenant_id, every, every, limit, scope, cap))
        return sorted(found.items(), key=lambda hit: (-hit[1], hit[0]))[:limit]

    @staticmethod
    def _ranked(
        conn: Connection,
        tenant_id: int,
        pick: str,
        rank_by: str,
        limit: int,
        scope: SearchScope,
        cap: int,
    ) -> list[tuple[int, float]]:
        """Rank by ``rank_by`` at most ``cap`` of the tenant's rows in ``scope`` matching the
        tsquery ``pick``."""
        candidates = sa.select(memories.c.id, memories.c.text_tsv).where(
            memories.c.tenant_id == tenant_id,
            memories.c.text_tsv.op("@@")(sa.cast(pick, postgresql.TSQUERY)),
        )
        if scope.memory_type is not None:
            candidates = candidates.where(memories.c.memory_type == scope.memory_type.value)
        if scope.created_after is not None:
            candidates = candidates.where(memories.c.created_at >= scope.created_after)
        if scope.created_before is not None:
            candidates = candidates.where(memories.c.created_at < scope.created_before)
        if scope.filters:
            candidates = candidates.where(
                memories.c.payload.op("@>")(sa.cast(scope.filters, postgresql.JSONB))
            )
        picked = candidates.limit(cap).subquery("candidates")
        rank = sa.func.ts_rank_cd(picked.c.text_tsv, sa.cast(rank_by, postgresql.TSQUERY)).label(
            "rank"
        )
        statement = sa.select(picked.c.id, rank).order_by(rank.desc(), picked.c.id).limit(limit)
        return [(int(r.id), float(r.rank)) for r in conn.execute(statement)]

    def forget_lexeme_stats(self) -> None:
        """Drop the cached lexeme statistics (after an ``ANALYZE``), so the next keyword
        search reads them again."""
        self._stats = None

    def _lexeme_stats(self, conn: Connection) -> keyword.LexemeStats:
        """PostgreSQL's lexeme statistics of ``memories.text_tsv``, cached for a while."""
        now = time.monotonic()
        if self._stats is not None and now - self._stats[0] < keyword.STATS_TTL:
            return self._stats[1]
        row = conn.execute(
            sa.text(
                "SELECT c.reltuples, s.most_common_elems::text::text[] AS elems, "
                "s.most_common_elem_freqs AS freqs FROM pg_class c "
                "LEFT JOIN pg_stats s ON s.schemaname = current_schema() "
                "AND s.tablename = 'memories' AND s.attname = 'text_tsv' "
                "WHERE c.oid = 'memories'::regclass"
            )
        ).one()
        stats = keyword.LexemeStats.from_pg_stats(float(row.reltuples), row.elems, row.freqs)
        self._stats = (now, stats)
        return stats

    def memory_ids(self, tenant_id: int, coords: Sequence[str]) -> dict[str, int]:
        """Map each of the tenant's coordinates among ``coords`` to its memory id."""
        query = sa.select(memories.c.coord, memories.c.id).where(
            memories.c.tenant_id == tenant_id, memories.c.coord.in_(list(coords))
        )
        with self.reading("memory_ids") as conn:
            return {row.coord: row.id for row in conn.execute(query)}

    def coords_for_ids(self, tenant_id: int, ids: Sequence[int]) -> dict[int, str]:
        """Map each of the tenant's memory ids among ``ids`` to its coordinate."""
        if not ids:
            return {}
        query = sa.select(memories.c.id, memories.c.coord).where(
            memories.c.tenant_id == tenant_id, memories.c.id.in_(list(ids))
        )
        with self.reading("coords_for_ids") as conn:
            return {row.id: row.coord for row in conn.execute(query)}

    def count_by_type(self, tenant_id: int) -> tuple[dict[str, int], int]:
        """The tenant's memory counts by type, and its link count."""
        by_type_query = (
            sa.select(memories.c.memory_type, sa.func.count())
            .where(memories.c.tenant_id == tenant_id)
            .group_by(memories.c.memory_type)
        )
        links_query = sa.select(sa.func.count()).where(links.c.tenant_id == tenant_id)
        with self.reading("count_by_type") as conn:
            by_type = {t.value: 0 for t in MemoryType}
            by_type.update({row[0]: int(row[1]) for row in conn.execute(by_type_query)})
            link_count = int(conn.execute(links_query).scalar_one())
        return by_type, link_count

    def all_memory_ids(self, tenant_id: int) -> list[int]:
        """Every memory id of the tenant (for reconciliation and tests)."""
        query = sa.select(memories.c.id).where(memories.c.tenant_id == tenant_id)
        with self.reading("all_memory_ids") as conn:
            return [int(i) for i in conn.execute(query).scalars()]

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

    def memories_with_ids(self, ids: Sequence[int]) -> list[tuple[int, Memory, list[float] | None]]:
        """(tenant id, memory, client vector) for each existing id among ``ids``."""
        if not ids:
            return []
        query = sa.select(memories.c.tenant_id, memories.c.client_vector, *_MEMORY_COLUMNS).where(
            memories.c.id.in_(list(ids))
        )
        with self.reading("memories_with_ids") as conn:
            return [(r.tenant_id, _memory(r), r.client_vector) for r in conn.execute(query)]

    def unclaimed_orphans(self, ids: Sequence[int]) -> list[int]:
        """Those of ``ids`` that no row has and no outbox entry names: vectors no write in
        flight can still claim, safe to delete."""
        if not ids:
            return []
        query = sa.text(
            "SELECT i FROM unnest(CAST(:ids AS bigint[])) AS i "
            "WHERE NOT EXISTS (SELECT 1 FROM memories m WHERE m.id = i) "
            "AND NOT EXISTS (SELECT 1 FROM vector_outbox o WHERE o.memory_id = i)"
        )
        with self.reading("unclaimed_orphans") as conn:
            return [int(i) for i in conn.execute(query, {"ids": list(ids)}).scalars()]

    def outbox_size(self) -> int:
        """How many outbox entries wait (writes whose Milvus side is not confirmed)."""
        with self.reading("outbox_size") as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(vector_outbox)).scalar_one()
            )

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

    # -- links ------------------------------------------------------------------------------
    def edges_from(
        self, tenant_id: int, node_ids: Sequence[int], link_type: str | None, direction: str
    ) -> list[tuple[int, int, str, float]]:
        """Links touching ``node_ids`` as (node, neighbour, type, strength).

        ``direction`` is ``out`` (follow links forwards), ``in`` (backwards) or ``both``.
        """
        if not node_ids:
            return []
        ids = list(node_ids)
        parts = []
        if direction in ("out", "both"):
            parts.append(
                sa.select(
                    links.c.from_id.label("node"),
                    links.c.to_id.label("other"),
                    links.c.link_type,
                    links.c.strength,
                ).where(links.c.tenant_id == tenant_id, links.c.from_id.in_(ids))
            )
        if direction in ("in", "both"):
            parts.append(
                sa.select(
                    links.c.to_id.label("node"),
                    links.c.from_id.label("other"),
                    links.c.link_type,
                    links.c.strength,
                ).where(links.c.tenant_id == tenant_id, links.c.to_id.in_(ids))
            )
        if link_type is not None:
            parts = [p.where(links.c.link_type == link_type) for p in parts]
        query = parts[0] if len(parts) == 1 else sa.union_all(*parts)
        with self.reading("edges_from") as conn:
            return [(r[0], r[1], r[2], float(r[3])) for r in conn.execute(query)]

    # -- export and import ------------------------------------------------------------------
    def memories_page(
        self, tenant_id: int, after_id: int, limit: int
    ) -> list[tuple[Memory, list[float] | None]]:
        """Up to ``limit`` of the tenant's memories with id greater than ``after_id``, by id,
        each with its client vector (None when the model embedded it). One query per page,
        so a long export never holds a connection between pages."""
        query = (
            sa.select(memories.c.client_vector, *_MEMORY_COLUMNS)
            .where(memories.c.tenant_id == tenant_id, memories.c.id > after_id)
            .order_by(memories.c.id)
            .limit(limit)
        )
        with self.reading("memories_page") as conn:
            return [(_memory(r), r.client_vector) for r in conn.execute(query)]

    def links_page(self, tenant_id: int, after_id: int, limit: int) -> list[tuple[int, Link]]:
        """Up to ``limit`` of the tenant's links with id greater than ``after_id``, by id, as
        (link id, link between the ends' coordinates)."""
        source = memories.alias("source")
        target = memories.alias("target")
        query = (
            sa.select(
                links.c.id,
                source.c.coord.label("from_coord"),
                target.c.coord.label("to_coord"),
                links.c.link_type,
                links.c.strength,
                links.c.metadata,
            )
            .join(source, source.c.id == links.c.from_id)
            .join(target, target.c.id == links.c.to_id)
            .where(links.c.tenant_id == tenant_id, links.c.id > after_id)
            .order_by(links.c.id)
            .limit(limit)
        )
        with self.reading("links_page") as conn:
            return [
                (
                    int(r.id),
                    Link(r.from_coord, r.to_coord, r.link_type, float(r.strength), r.metadata),
                )
                for r in conn.execute(query)
            ]

    def memories_at(
        self, tenant_id: int, coords: Sequence[str]
    ) -> dict[str, tuple[Memory, list[float] | None]]:
        """The tenant's memories at ``coords`` (canonical) with their client vectors; absent
        coordinates are missing from the answer. Nothing is locked."""
        if not coords:
            return {}
        query = sa.select(memories.c.client_vector, *_MEMORY_COLUMNS).where(
            memories.c.tenant_id == tenant_id, memories.c.coord.in_(list(coords))
        )
        with self.reading("memories_at") as conn:
            return {r.coord: (_memory(r), r.client_vector) for r in conn.execute(query)}

    def links_among(
        self, tenant_id: int, edges: Sequence[tuple[int, int, str]]
    ) -> dict[tuple[int, int, str], tuple[float, dict[str, Any]]]:
        """Strength and metadata of the tenant's links among ``edges`` (from id, to id,
        type); edges without a link are missing from the answer."""
        if not edges:
            return {}
        query = sa.select(
            links.c.from_id, links.c.to_id, links.c.link_type, links.c.strength, links.c.metadata
        ).where(
            links.c.tenant_id == tenant_id,
            sa.tuple_(links.c.from_id, links.c.to_id, links.c.link_type).in_(list(edges)),
        )
        with self.reading("links_among") as conn:
            return {
                (int(r.from_id), int(r.to_id), r.link_type): (float(r.strength), r.metadata)
                for r in conn.execute(query)
            }


class UnitOfWork:
    """One PostgreSQL transaction. Rolled back on close unless :meth:`commit` was called;
    only the core services call ``commit``."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: Connection | None = None
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        with self._store.translated("begin"):
            self._conn = self._store.engine.connect()
            self._conn.begin()
        return self

    def __exit__(self, *exc_info: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if not self._committed:
                conn.rollback()
        except sa.exc.SQLAlchemyError:
            conn.invalidate()  # the connection is broken; the server rolls back on its own
        finally:
            conn.close()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside its `with` block")
        return self._conn

    def commit(self) -> None:
        """Make the transaction durable."""
        with self._store.translated("commit"):
            self.conn.commit()
        self._committed = True

    # -- tenants and keys -------------------------------------------------------------------
    def ensure_tenant(self, name: str) -> Tenant:
        """The tenant called ``name``, created if it does not exist."""
        with self._store.translated("ensure_tenant"):
            self.conn.execute(
                pg_insert(tenants).values(name=name).on_conflict_do_nothing(index_elements=["name"])
            )
            row = self.conn.execute(
                sa.select(tenants.c.id, tenants.c.name).where(tenants.c.name == name)
            ).one()
        return Tenant(id=row.id, name=row.name)

    def insert_key(self, tenant_id: int, key_hash: bytes, prefix: str) -> ApiKeyInfo:
        """Store a key's hash for the tenant."""
        with self._store.translated("insert_key"):
            row = self.conn.execute(
                sa.insert(api_keys)
                .values(tenant_id=tenant_id, key_hash=key_hash, prefix=prefix)
                .returning(api_keys.c.id, api_keys.c.created_at)
            ).one()
            name = self.conn.execute(
                sa.select(tenants.c.name).where(tenants.c.id == tenant_id)
            ).scalar_one()
        return ApiKeyInfo(
            id=row.id, tenant=name, prefix=prefix, created_at=row.created_at, revoked_at=None
        )

    def revoke_key(self, key_id: int) -> bool:
        """Revoke a key; False when no unrevoked key has that id."""
        with self._store.translated("revoke_key"):
            result = self.conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=sa.func.now())
            )
        return bool(result.rowcount)

    # -- memories ---------------------------------------------------------------------------
    def lock_memories(self, tenant_id: int, coords: Sequence[str]) -> dict[str, Memory]:
        """The existing memories at ``coords``, locked until the transaction ends."""
        query = (
            sa.select(*_MEMORY_COLUMNS)
            .where(memories.c.tenant_id == tenant_id, memories.c.coord.in_(list(coords)))
            .with_for_update()
        )
        with self._store.translated("lock_memories"):
            return {row.coord: _memory(row) for row in self.conn.execute(query)}

    def reserve_ids(self, tenant_id: int, coords: Sequence[str]) -> dict[str, int]:
        """The id each coordinate's memory has, or will have if it is new (taken from the
        identity sequence now, so the outbox can name it before the row exists)."""
        with self._store.translated("reserve_ids"):
            existing = {
                row.coord: row.id
                for row in self.conn.execute(
                    sa.select(memories.c.coord, memories.c.id).where(
                        memories.c.tenant_id == tenant_id, memories.c.coord.in_(list(coords))
                    )
                )
            }
            new = [c for c in coords if c not in existing]
            if new:
                fresh = self.conn.execute(
                    sa.text(
                        "SELECT nextval(pg_get_serial_sequence('memories', 'id')) "
                        "FROM generate_series(1, :n)"
                    ),
                    {"n": len(new)},
                ).scalars()
                existing.update(zip(new, (int(i) for i in fresh), strict=True))
        return existing

    def add_outbox(self, tenant_id: int, entries: Sequence[tuple[str, int]]) -> list[int]:
        """Record (coord, memory id) pairs whose Milvus side is about to change."""
        statement = sa.insert(vector_outbox).returning(
            vector_outbox.c.id, sort_by_parameter_order=True
        )
        rows = [{"tenant_id": tenant_id, "coord": c, "memory_id": m} for c, m in entries]
        with self._store.translated("add_outbox"):
            return [int(i) for i in self.conn.execute(statement, rows).scalars()]

    def remove_outbox(self, ids: Sequence[int]) -> None:
        """Forget outbox entries whose Milvus side is done."""
        if ids:
            with self._store.translated("remove_outbox"):
                self.conn.execute(sa.delete(vector_outbox).where(vector_outbox.c.id.in_(list(ids))))

    def claim_outbox(self, older_than_seconds: float, limit: int) -> list[OutboxEntry]:
        """Lock up to ``limit`` outbox entries older than the grace period; entries another
        drainer holds are skipped."""
        query = (
            sa.select(vector_outbox)
            .where(
                vector_outbox.c.created_at
                <= sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
            )
            .order_by(vector_outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._store.translated("claim_outbox"):
            return [
                OutboxEntry(id=r.id, tenant_id=r.tenant_id, coord=r.coord, memory_id=r.memory_id)
                for r in self.conn.execute(query)
            ]

    def memories_for_sync(
        self, tenant_id: int, coords: Sequence[str]
    ) -> dict[str, tuple[Memory, list[float] | None]]:
        """The rows at ``coords`` with their client vectors, locked until the end."""
        query = (
            sa.select(memories.c.client_vector, *_MEMORY_COLUMNS)
            .where(memories.c.tenant_id == tenant_id, memories.c.coord.in_(list(coords)))
            .with_for_update()
        )
        with self._store.translated("memories_for_sync"):
            return {r.coord: (_memory(r), r.client_vector) for r in self.conn.execute(query)}

    def record_reconcile(
        self, tenants_seen: int, missing: int, orphans: int, repaired: bool
    ) -> None:
        """Keep the outcome of a reconcile run (read back for the drift gauge)."""
        with self._store.translated("record_reconcile"):
            self.conn.execute(
                sa.insert(reconcile_runs).values(
                    finished_at=sa.func.now(),
                    tenants=tenants_seen,
                    missing=missing,
                    orphans=orphans,
                    repaired=repaired,
                )
            )

    def upsert_memories(
        self,
        tenant_id: int,
        items: Sequence[NewMemory],
        ids: dict[str, int] | None = None,
    ) -> dict[str, Memory]:
        """Insert or replace memories by coordinate; a replace keeps ``created_at`` and its id.
        ``ids`` gives new memories the ids reserved for them.

        An item with its own ``created_at`` (import) is created with it, and a replace takes
        it too, so the row ends as the export file describes it."""
        stored: dict[str, Memory] = {}
        given = [item for item in items if item.created_at is not None]
        for group, keep_created in (
            ([item for item in items if item.created_at is None], True),
            (given, False),
        ):
            if group:
                stored.update(self._upsert_group(tenant_id, group, ids, keep_created))
        return stored

    def _upsert_group(
        self,
        tenant_id: int,
        items: Sequence[NewMemory],
        ids: dict[str, int] | None,
        keep_created: bool,
    ) -> dict[str, Memory]:
        # One statement compiled once and sent as executemany: SQLAlchemy's "insertmanyvalues"
        # batches the rows into multi-row INSERTs itself. (Building one .values([...]) per
        # batch instead compiled a statement of rows x columns parameters on every request.)
        now = sa.func.clock_timestamp()
        times = {"created_at": now, "updated_at": now} if keep_created else {"updated_at": now}
        insert = pg_insert(memories).values(**times)
        rows = [
            {
                **({"id": ids[item.coord]} if ids else {}),
                "tenant_id": tenant_id,
                "coord": item.coord,
                "memory_type": item.memory_type.value,
                "payload": item.payload,
                "text": item.text,
                "importance": item.importance,
                "client_vector": item.vector,
                **({} if keep_created else {"created_at": item.created_at}),
            }
            for item in items
        ]
        replaced: dict[str, Any] = {
            "memory_type": insert.excluded.memory_type,
            "payload": insert.excluded.payload,
            "text": insert.excluded.text,
            "importance": insert.excluded.importance,
            "client_vector": insert.excluded.client_vector,
            "updated_at": insert.excluded.updated_at,
        }
        if not keep_created:
            replaced["created_at"] = insert.excluded.created_at
        statement = insert.on_conflict_do_update(
            constraint="uq_memories_tenant_coord", set_=replaced
        ).returning(*_MEMORY_COLUMNS)
        with self._store.translated("upsert_memories"):
            return {row.coord: _memory(row) for row in self.conn.execute(statement, rows)}

    def delete_memory(self, tenant_id: int, coord: str) -> Memory | None:
        """Delete the tenant's memory at ``coord`` (its links go with it); None if absent."""
        statement = (
            sa.delete(memories)
            .where(memories.c.tenant_id == tenant_id, memories.c.coord == coord)
            .returning(*_MEMORY_COLUMNS)
        )
        with self._store.translated("delete_memory"):
            row = self.conn.execute(statement).first()
        return _memory(row) if row else None

    def upsert_link(
        self,
        tenant_id: int,
        from_id: int,
        to_id: int,
        link_type: str,
        strength: float,
        metadata: dict[str, Any],
    ) -> datetime:
        """Create or update the link (from, to, type); returns its creation time."""
        insert = pg_insert(links).values(
            tenant_id=tenant_id,
            from_id=from_id,
            to_id=to_id,
            link_type=link_type,
            strength=strength,
            metadata=metadata,
        )
        statement = insert.on_conflict_do_update(
            constraint="uq_links_edge",
            set_={"strength": insert.excluded.strength, "metadata": insert.excluded.metadata},
        ).returning(links.c.created_at)
        with self._store.translated("upsert_link"):
            created: datetime = self.conn.execute(statement).scalar_one()
        return created
