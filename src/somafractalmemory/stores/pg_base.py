"""The PostgreSQL connection layer every table adapter shares: the engine, the reads, and the
one place driver errors are translated.

Reads run on their own connection; writes run inside a
:class:`~somafractalmemory.stores.pg_writes.UnitOfWork` that only the core services commit.
A connection problem becomes :class:`PostgresUnavailableError`, a missing table or column
:class:`SchemaError`, a value PostgreSQL refuses :class:`InvalidInputError`, a constraint
:class:`ConflictError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import psycopg.errors
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from somafractalmemory.errors import (
    ConflictError,
    InvalidInputError,
    PostgresUnavailableError,
    SchemaError,
    StatementRejectedError,
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
    metadata,
)

T = TypeVar("T")

_SCHEMA_ERRORS = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.UndefinedObject,
)
# PostgreSQL answered and refused what SFM sent (checked after the schema errors above, which
# are ProgrammingErrors too): a bug in SFM, never a reason to call PostgreSQL down.
_STATEMENT_ERRORS = (
    psycopg.errors.ProgrammingError,
    psycopg.errors.NotSupportedError,
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


class PostgresBase:
    """A PostgreSQL database: its engine, address, reads and error translation."""

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
        if isinstance(orig, _STATEMENT_ERRORS):
            mark_store("postgres", True)
            return StatementRejectedError("postgres", message)
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


def from_row(record: Callable[..., T], row: Any, **converted: Any) -> T:
    """The domain record (a dataclass) whose fields are the row's columns of the same names;
    ``converted`` gives the fields a column holds in another form (an enum's text, a pair)."""
    names = _field_names(record)
    return record(**{n: getattr(row, n) for n in names if n not in converted}, **converted)


@cache
def _field_names(record: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record))
