"""Alembic environment: runs migrations against ``POSTGRES_DSN`` from the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from somafractalmemory.stores.tables import metadata


def _url() -> str:
    configured = context.config.get_main_option("sqlalchemy.url")
    if configured:
        return configured
    from somafractalmemory.settings import get_settings

    return get_settings().sqlalchemy_url


def run_migrations_online() -> None:
    """Run every pending migration in one transaction."""
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
