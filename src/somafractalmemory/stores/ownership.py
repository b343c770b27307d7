"""Which SFM database a Milvus collection belongs to.

A collection's entity ids are one database's PostgreSQL ids: two databases pointed at one
collection would answer searches with each other's vectors (and an id that means another
memory here). So every database has an identity, the one row of ``database_identity`` (a uuid
made by migration 0006, which ``pg_dump`` and ``pg_restore`` carry along), and every
collection SFM creates carries it in its collection properties:

    sfm.owner           the owner's uuid (what is compared)
    sfm.owner_database  the owner's address when stamped, without credentials (for people)

Properties, not the collection ``description``: both are set at create time, but only
properties can be set on an existing collection (``AlterCollection``), and Milvus 2.3.5 and
2.4 to 2.6 all keep and describe them.

The rules:

- ``ensure_*`` (bootstrap, ``somafractalmemory ensure-collection``, registering a space)
  creates collections stamped, and *adopts* a collection that carries no owner (made by a
  release before 0.6.0) by stamping it, with a warning in the log;
- every check (``ensure_*``, ``validate-infra``, start-up, ``/healthz``, ``/readyz``) refuses a
  collection owned by another database, naming the collection and both owners; the read-only
  checks also refuse an unstamped one, since they cannot tell whose it is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import sqlalchemy as sa

from somafractalmemory.errors import SchemaError
from somafractalmemory.models import DatabaseIdentity
from somafractalmemory.stores.postgres import PostgresStore

logger = logging.getLogger(__name__)

OWNER = "sfm.owner"
OWNER_DATABASE = "sfm.owner_database"


def read_identity(postgres: PostgresStore) -> DatabaseIdentity:
    """The database's identity; :class:`SchemaError` (postgres) when it has none."""
    with postgres.reading("database_identity") as conn:
        found = conn.execute(sa.text("SELECT uuid::text FROM database_identity")).scalar()
    if found is None:
        raise SchemaError(
            "postgres",
            "table database_identity is empty (restore it from a backup, or insert a new "
            "identity: INSERT INTO database_identity DEFAULT VALUES)",
            postgres.address,
        )
    return DatabaseIdentity(uuid=str(found), database=postgres.address)


def stamp(owner: DatabaseIdentity) -> dict[str, str]:
    """The collection properties that name ``owner``."""
    return {OWNER: owner.uuid, OWNER_DATABASE: owner.database}


def properties_of(description: Mapping[str, object]) -> dict[str, str]:
    """The properties in a ``describe_collection`` answer (none: an empty dict)."""
    found = description.get("properties")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, Mapping) else {}


def _owner_text(uuid: str, database: str) -> str:
    return f"{uuid} ({database})" if database else uuid


def foreign_owner(
    collection: str, properties: Mapping[str, str], owner: DatabaseIdentity
) -> str | None:
    """Why ``collection`` is not ``owner``'s when another database owns it, else None (an
    unstamped collection is not foreign)."""
    found = properties.get(OWNER)
    if found is None or found == owner.uuid:
        return None
    theirs = _owner_text(found, properties.get(OWNER_DATABASE, ""))
    return (
        f"collection {collection!r} belongs to another database: owner {theirs}, this "
        f"database is {_owner_text(owner.uuid, owner.database)} (give each database a "
        "MILVUS_COLLECTION of its own)"
    )


def ownership_problem(
    collection: str, properties: Mapping[str, str], owner: DatabaseIdentity
) -> str | None:
    """Why ``collection`` may not be used by ``owner`` (foreign or unstamped), else None."""
    if OWNER not in properties:
        return (
            f"collection {collection!r} has no owner (made before 0.6.0): start the service "
            "once, or run `somafractalmemory ensure-collection`, to adopt it for this "
            f"database {_owner_text(owner.uuid, owner.database)}"
        )
    return foreign_owner(collection, properties, owner)


def log_adoption(collection: str, owner: DatabaseIdentity) -> None:
    """The log line of an adoption (it changes a collection's owner, so it is a warning)."""
    logger.warning(
        "Milvus collection %r had no owner (made before 0.6.0); adopted by database %s",
        collection,
        _owner_text(owner.uuid, owner.database),
    )
