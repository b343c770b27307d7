"""The client-side PostgreSQL deadline leaves the server's own answers alone."""

from __future__ import annotations

import psycopg.errors
import pytest
import sqlalchemy as sa

from somafractalmemory.settings import Settings
from somafractalmemory.stores.postgres import create_postgres_engine


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
