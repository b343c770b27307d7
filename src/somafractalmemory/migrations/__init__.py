"""Alembic migrations: the only code that creates or changes tables."""
