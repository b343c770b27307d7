"""One check of every part of the stack, shared by ``/healthz``, ``/readyz`` and start-up.

Each part is touched for real:

- ``postgres``: every SFM table exists (a dropped table shows up); at start-up also that the
  schema is at the migrations' head. The probes leave the revision out on purpose: during a
  rolling upgrade the pods of the previous version keep serving after the migration
  (docs/deployment.md, "Upgrades"), and must stay ready.
- ``milvus``: the memories' collection, the items' default one and every registered
  embedding space's exist, are loaded, have their index, dimension and metric, and belong to
  this database (:mod:`somafractalmemory.stores.ownership`). The owner and the spaces are
  read from PostgreSQL; when it cannot say, only what Milvus alone can tell is checked, and
  PostgreSQL's own check names the failure.
- ``redis``: PING.

Which failures count is the caller's business: the probes and bootstrap each apply their own
``require_*`` rules to the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from somafractalmemory.errors import SchemaError, StoreUnavailableError
from somafractalmemory.stack import Stack
from somafractalmemory.stores.ownership import read_identity
from somafractalmemory.stores.record_moves import RecordMoves

PARTS = ("postgres", "milvus", "redis")


def check_parts(
    stack: Stack, parts: tuple[str, ...] = PARTS, schema_head: str | None = None
) -> dict[str, StoreUnavailableError]:
    """Check ``parts`` in parallel; returns the failed ones, in the order of ``parts``, each
    with its error. ``schema_head``, when given, is the Alembic revision PostgreSQL must be
    at (start-up only, see the module docstring)."""
    checks: dict[str, Callable[[], None]] = {
        "postgres": lambda: check_postgres(stack, schema_head),
        "milvus": lambda: check_milvus(stack),
        "redis": stack.cache.ping,
    }

    def run(part: str) -> StoreUnavailableError | None:
        try:
            checks[part]()
        except StoreUnavailableError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        found = dict(zip(parts, pool.map(run, parts), strict=True))
    return {part: exc for part, exc in found.items() if exc is not None}


def check_postgres(stack: Stack, schema_head: str | None = None) -> None:
    """PostgreSQL answers with every table and its identity, and (when given) is at revision
    ``schema_head``."""
    postgres = stack.postgres
    if schema_head is not None:
        revision = postgres.schema_revision()
        if revision != schema_head:
            raise SchemaError(
                "postgres",
                f"schema is at revision {revision or 'none'}, the code needs {schema_head} "
                "(run `somafractalmemory migrate`)",
                postgres.address,
            )
        pending = RecordMoves(postgres).pending()
        if pending:
            raise SchemaError(
                "postgres",
                f"{pending} item(s) moved by migration 0007 still have their old ids in Milvus "
                "(run `somafractalmemory move-items`, or start through bootstrap)",
                postgres.address,
            )
    postgres.check()
    read_identity(postgres)


def check_milvus(stack: Stack) -> None:
    """Every collection of the stack is there, in shape, and this database's. Without
    PostgreSQL (the owner and the spaces are read there) only the memories' and the items'
    default collection are checked, for their shape: one wait on a PostgreSQL that does not
    answer, not one per read, and PostgreSQL's own check names the failure."""
    try:
        owner = read_identity(stack.postgres)
    except StoreUnavailableError:
        stack.milvus.check_collection(stack.embedder.dimension, None)
        stack.items.check_default_collection(None)
        return
    stack.milvus.check_collection(stack.embedder.dimension, owner)
    try:
        stack.items.check_collections(owner)
    except StoreUnavailableError as exc:
        # The spaces are listed in PostgreSQL, whose own check names its failures.
        if exc.store != "postgres":
            raise
