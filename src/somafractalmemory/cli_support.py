"""What the ``somafractalmemory`` commands share: settings and clients built from the
environment (and ``.env``), closed on the way out, and a store failure reported as one line
on stderr with exit status 1 (settings errors: 2).

Server parts are imported inside the functions, so that the light client install can run
``--help`` and ``mcp`` without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer

if TYPE_CHECKING:
    from somafractalmemory.core.keys import KeyService
    from somafractalmemory.settings import Settings
    from somafractalmemory.stack import Stack


T = TypeVar("T")


def load_settings() -> Settings:
    """The settings; each invalid or missing one is a line ``settings: NAME: why``, exit 2."""
    from pydantic import ValidationError

    from somafractalmemory.settings import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            typer.echo(f"settings: {name}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def build_stack(settings: Settings) -> Stack:
    """Every client of the stack; an embedding model that cannot load is one FAILED line."""
    from somafractalmemory.errors import EmbeddingModelError
    from somafractalmemory.stack import create_stack

    try:
        return create_stack(settings)
    except EmbeddingModelError as exc:
        typer.echo(f"FAILED embedding ({exc.location}): {exc.detail}", err=True)
        raise typer.Exit(1) from None


@contextmanager
def reporting_failures(prefix: str = "FAILED ") -> Iterator[None]:
    """An :class:`SFMError` raised inside becomes one line, ``prefix`` and its detail, on
    stderr and exit status 1: how every command reports a store that failed it."""
    from somafractalmemory.errors import SFMError

    try:
        yield
    except SFMError as exc:
        typer.echo(f"{prefix}{exc.detail}", err=True)
        raise typer.Exit(1) from None


@contextmanager
def open_stack() -> Iterator[Stack]:
    """The stack of the configured settings, closed on the way out, its failures reported
    by :func:`reporting_failures`."""
    stack = build_stack(load_settings())
    try:
        with reporting_failures():
            yield stack
    finally:
        stack.close()


@contextmanager
def open_key_service() -> Iterator[KeyService]:
    """The key service on a PostgreSQL store of its own (the key commands need no other
    store), its failures reported as ``error: ...``."""
    from somafractalmemory.core.keys import KeyService
    from somafractalmemory.stack import create_postgres_store

    store = create_postgres_store(load_settings())
    try:
        with reporting_failures("error: "):
            yield KeyService(store)
    finally:
        store.engine.dispose()


def found_or_exit(found: T | None, what: str) -> T:
    """``found``, unless it is None: then ``error: no WHAT`` and exit 1."""
    if found is None:
        typer.echo(f"error: no {what}", err=True)
        raise typer.Exit(1)
    return found
