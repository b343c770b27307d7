"""PostgreSQL connections: the client-side deadline leaves the server's own answers alone,
and a pooled connection the server ended is replaced at checkout, without a round trip."""

from __future__ import annotations

import time

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa

from somafractalmemory.settings import Settings
from somafractalmemory.stores.postgres import create_postgres_engine


def _backend_pid(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_pooled_connection_the_server_ended_is_replaced_at_checkout(settings: Settings) -> None:
    """pg_terminate_backend ends the pooled connection while it is idle: the next checkout
    gets a working connection (another backend), and the caller never sees the error."""
    engine = create_postgres_engine(settings.model_copy(update={"store_timeout": 2.0}))
    try:
        with engine.connect() as conn:
            ended = _backend_pid(conn)
        with engine.connect() as other:
            assert _backend_pid(other) == ended  # pooled: the same connection comes back
        with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (ended,)).fetchone() == (True,)
        deadline = time.monotonic() + 5
        while admin_sees(settings, ended) and time.monotonic() < deadline:
            time.sleep(0.05)
        with engine.connect() as conn:
            replaced = _backend_pid(conn)
        assert replaced != ended
    finally:
        engine.dispose()


def admin_sees(settings: Settings, pid: int) -> bool:
    """Whether backend ``pid`` still exists."""
    with psycopg.connect(settings.postgres_dsn.get_secret_value(), autocommit=True) as admin:
        row = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None


def test_a_statement_timeout_stays_the_servers_error_on_a_kept_connection(
    settings: Settings,
) -> None:
    """statement_timeout (1 s here) fires before the client deadline (1.5 s): the caller sees
    PostgreSQL's QueryCanceled, not a client-side deadline, and the connection stays usable."""
    engine = create_postgres_engine(settings.model_copy(update={"store_timeout": 0.5}))
    try:
        with engine.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError) as raised:
                conn.execute(sa.text("SELECT pg_sleep(3)"))
            assert isinstance(raised.value.orig, psycopg.errors.QueryCanceled)
            assert not conn.invalidated
            conn.rollback()
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
