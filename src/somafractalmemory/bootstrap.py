"""Start-up: wait for every store, set up what is missing, and refuse to run half-configured.

``scripts/bootstrap.sh`` migrates, then runs ``python -m somafractalmemory.bootstrap``, which:

1. waits for PostgreSQL, Milvus and Redis in parallel, each with bounded exponential backoff
   up to ``SOMA_BOOTSTRAP_TIMEOUT``;
2. loads the embedding model and ensures the Milvus collections and their indexes, stamped
   with this database's identity, adopting collections made before 0.6.0 (skipped with
   ``--dry-run``, which only checks);
3. runs :func:`validate_infrastructure`, the checks of ``/healthz``
   (:mod:`somafractalmemory.health`) plus the schema revision: a collection owned by another
   database is refused there, naming both.

Any failure prints one line per failed part, naming it and its address (never a secret), and
exits 1. ``require_*`` settings set to false let the service start without that part; it is
then reported as a warning, and requests that need it answer 503.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from pydantic import ValidationError
from tenacity import Retrying, stop_after_delay, wait_exponential

from somafractalmemory.core.embedding import create_embedder
from somafractalmemory.core.record_moves import finish_moves
from somafractalmemory.errors import (
    EmbeddingModelError,
    InfrastructureError,
    PartFailure,
    SFMError,
    StoreUnavailableError,
)
from somafractalmemory.health import PARTS, check_parts
from somafractalmemory.observability.tracing import configure_tracing, tracer
from somafractalmemory.settings import Settings
from somafractalmemory.stack import (
    Stack,
    create_cache,
    create_milvus_store,
    create_postgres_store,
    create_stack,
)
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.ownership import read_identity


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def alembic_head() -> str:
    """The newest migration's revision."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return str(head)


def _address(settings: Settings, part: str) -> str:
    return {
        "postgres": settings.postgres_address,
        "milvus": settings.milvus_address,
        "redis": settings.redis_address,
    }[part]


def _required(settings: Settings, part: str) -> bool:
    return bool(getattr(settings, f"require_{part}"))


def wait_for(name: str, probe: Callable[[], object], timeout: float) -> object:
    """Call ``probe`` until it succeeds, backing off exponentially, for at most ``timeout``
    seconds; the last error is raised if it never does."""
    with tracer().start_as_current_span(f"bootstrap.wait_for.{name}"):
        retrying = Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.25, max=4.0),
            retry=lambda state: state.outcome is not None and state.outcome.failed,
            reraise=True,
        )
        return retrying(probe)


def _probe_postgres(settings: Settings) -> object:
    store = create_postgres_store(settings)
    try:
        store.ping()
    finally:
        store.engine.dispose()
    return None


def wait_for_postgres(settings: Settings) -> None:
    """Wait until PostgreSQL answers (before migrating); raises its last error."""
    wait_for("postgres", lambda: _probe_postgres(settings), settings.bootstrap_timeout)


def _probe_milvus(settings: Settings) -> MilvusStore:
    store = create_milvus_store(settings)
    try:
        store.ping()
    except SFMError:
        store.close()
        raise
    return store


def _probe_redis(settings: Settings) -> object:
    cache = create_cache(settings)
    try:
        cache.ping()
    finally:
        cache.close()
    return None


def wait_for_stores(settings: Settings) -> tuple[MilvusStore | None, list[PartFailure]]:
    """Wait for the three stores in parallel; returns the Milvus adapter (when it answered)
    and one failure per store that never answered."""
    probes: dict[str, Callable[[], object]] = {
        "postgres": lambda: _probe_postgres(settings),
        "milvus": lambda: _probe_milvus(settings),
        "redis": lambda: _probe_redis(settings),
    }
    failures: list[PartFailure] = []
    milvus: MilvusStore | None = None
    with ThreadPoolExecutor(max_workers=len(PARTS)) as pool:
        # A part that is not required gets one try: it must not hold up the start.
        futures = {
            part: pool.submit(
                wait_for,
                part,
                probes[part],
                settings.bootstrap_timeout if _required(settings, part) else 0.0,
            )
            for part in PARTS
        }
        for part, future in futures.items():
            try:
                result = future.result()
            except StoreUnavailableError as exc:
                failures.append(PartFailure(part, _address(settings, part), exc.reason))
                continue
            if isinstance(result, MilvusStore):
                milvus = result
    return milvus, failures


def validate_infrastructure(stack: Stack) -> None:
    """Check every part of the stack (:func:`somafractalmemory.health.check_parts`, with the
    schema at the Alembic head); raise :class:`InfrastructureError` naming each failed
    required part."""
    settings = stack.settings
    with tracer().start_as_current_span("bootstrap.validate_infrastructure"):
        found = check_parts(stack, schema_head=alembic_head())
    failures = [
        PartFailure(part, _address(settings, part), exc.reason)
        for part, exc in found.items()
        if _required(settings, part)
    ]
    if failures:
        raise InfrastructureError(failures)


def ensure_collections(stack: Stack) -> None:
    """Create the collections this database needs, or adopt those made before collections
    had an owner; raise :class:`InfrastructureError` when required Milvus refuses."""
    settings = stack.settings
    with tracer().start_as_current_span("bootstrap.ensure_collection"):
        try:
            owner = read_identity(stack.postgres)
        except StoreUnavailableError:
            return  # without an owner nothing is made; validate_infrastructure names PostgreSQL
        try:
            stack.milvus.ensure_collection(stack.embedder.dimension, owner)
            stack.items.ensure_collections()
            finish_moves(stack.items)  # migration 0007's Milvus step, when it is pending
        except StoreUnavailableError as exc:
            if _required(settings, "milvus"):
                raise InfrastructureError(
                    [PartFailure("milvus", settings.milvus_address, exc.reason)]
                ) from exc


def bootstrap(settings: Settings, dry_run: bool) -> Stack:
    """Wait, set up (unless ``dry_run``) and validate; returns the ready stack."""
    configure_tracing(settings)
    try:  # the model first: nothing is connected yet if it cannot load
        create_embedder(settings)  # loaded once per process; create_stack reuses it
    except EmbeddingModelError as exc:
        raise InfrastructureError([PartFailure("embedding", exc.location, exc.detail)]) from exc
    milvus, failures = wait_for_stores(settings)
    required = [f for f in failures if _required(settings, f.part)]
    if required:
        raise InfrastructureError(required)
    with tracer().start_as_current_span("bootstrap.create_stack"):
        stack = create_stack(settings, milvus=milvus)
    try:
        if not dry_run and milvus is not None:
            ensure_collections(stack)
        validate_infrastructure(stack)
    except InfrastructureError:
        stack.close()
        raise
    return stack


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m somafractalmemory.bootstrap``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="somafractalmemory.bootstrap")
    parser.add_argument("--dry-run", action="store_true", help="check only, change nothing")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "settings"
            print(f"FAILED settings ({name.upper()}): {error['msg']}", file=sys.stderr)
        return 2
    try:
        stack = bootstrap(settings, dry_run=args.dry_run)
    except InfrastructureError as exc:
        for failure in exc.failures:
            print(f"FAILED {failure.line()}", file=sys.stderr)
        return 1
    stack.close()
    elapsed = time.monotonic() - started
    print(
        f"OK postgres ({settings.postgres_address}), milvus ({settings.milvus_address}), "
        f"redis ({settings.redis_address}) in {elapsed:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
