"""Migrations on real databases of their own: a database filled by the previous release
(revision 0005) reaches the head with its rows and gains an identity, and the identity
survives ``pg_dump`` and ``pg_restore``."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from somafractalmemory.bootstrap import alembic_config, alembic_head
from somafractalmemory.settings import Settings
from testkit.stores import drop_database, recreate_database, scalar, sibling_dsn

PREVIOUS_RELEASE = "0005"  # 0.5.0's head


def _url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture
def old_database(settings: Settings) -> Iterator[str]:
    """A database at 0.5.0's head, with a tenant, a key and two memories in it."""
    dsn = sibling_dsn(settings.postgres_dsn.get_secret_value(), "_m0005")
    recreate_database(dsn)
    command.upgrade(alembic_config(_url(dsn)), PREVIOUS_RELEASE)
    scalar(dsn, "INSERT INTO tenants (name) VALUES ('old') RETURNING id")
    scalar(
        dsn,
        "INSERT INTO api_keys (tenant_id, key_hash, prefix) "
        "SELECT id, decode(repeat('ab', 32), 'hex'), 'sfm_old' FROM tenants RETURNING id",
    )
    scalar(
        dsn,
        "INSERT INTO memories (tenant_id, coord, memory_type, payload, text, importance) "
        "SELECT id, c, 'episodic', '{}'::jsonb, 'text ' || c, 0.5 FROM tenants, "
        "unnest(ARRAY['1,2,3', '4,5,6']) AS c RETURNING id",
    )
    yield dsn
    drop_database(dsn)


def test_a_database_of_the_previous_release_gains_an_identity(old_database: str) -> None:
    assert scalar(old_database, "SELECT to_regclass('database_identity')") is None
    command.upgrade(alembic_config(_url(old_database)), "head")
    assert scalar(old_database, "SELECT version_num FROM alembic_version") == alembic_head()
    assert scalar(old_database, "SELECT count(*) FROM database_identity") == 1
    identity = uuid.UUID(str(scalar(old_database, "SELECT uuid FROM database_identity")))
    assert identity.version == 4  # gen_random_uuid()
    # Rows kept, the memories now records of the empty namespace (migration 0007).
    assert scalar(old_database, "SELECT count(*) FROM records WHERE namespace_path = ''") == 2
    assert scalar(old_database, "SELECT count(*) FROM api_keys") == 1
    # One row, ever: a second one is refused.
    with pytest.raises(psycopg.errors.UniqueViolation):
        scalar(old_database, "INSERT INTO database_identity DEFAULT VALUES RETURNING uuid")


def test_downgrade_to_the_previous_release_and_back(old_database: str) -> None:
    config = alembic_config(_url(old_database))
    command.upgrade(config, "head")
    command.downgrade(config, PREVIOUS_RELEASE)
    assert scalar(old_database, "SELECT to_regclass('database_identity')") is None
    assert scalar(old_database, "SELECT count(*) FROM memories") == 2  # 0005's layout again
    command.upgrade(config, "head")
    assert scalar(old_database, "SELECT count(*) FROM database_identity") == 1


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs pg_dump and pg_restore")
def test_the_identity_survives_pg_dump_and_restore(old_database: str) -> None:
    command.upgrade(alembic_config(_url(old_database)), "head")
    before = str(scalar(old_database, "SELECT uuid::text FROM database_identity"))
    restored = sibling_dsn(old_database, "_restored")
    recreate_database(restored)
    try:
        dump = subprocess.run(
            ["pg_dump", "-Fc", old_database], capture_output=True, check=True, timeout=120
        )
        subprocess.run(
            ["pg_restore", "--no-owner", "-d", restored],
            input=dump.stdout,
            capture_output=True,
            check=True,
            timeout=120,
        )
        after = str(scalar(restored, "SELECT uuid::text FROM database_identity"))
    finally:
        drop_database(restored)
    assert after == before


@pytest.fixture
def release_06_database(settings: Settings) -> Iterator[str]:
    """A database at 0.6.0's head (0007) with two memories and an item in ``records``."""
    dsn = sibling_dsn(settings.postgres_dsn.get_secret_value(), "_m0007")
    recreate_database(dsn)
    command.upgrade(alembic_config(_url(dsn)), "0007")
    scalar(dsn, "INSERT INTO tenants (name) VALUES ('old') RETURNING id")
    scalar(
        dsn,
        "INSERT INTO records (tenant_id, key, memory_type, payload, text, importance, "
        "updated_at) SELECT id, c, 'episodic', '{}'::jsonb, t, 0.5, "
        "'2026-01-02T03:04:05Z' FROM tenants, unnest(ARRAY['1,2', '3,4'], "
        "ARRAY['Maya  lives in PARIS ', 'maya lives in paris']) AS x(c, t) RETURNING id",
    )
    scalar(
        dsn,
        "INSERT INTO records (tenant_id, namespace, namespace_path, key, payload, text) "
        "SELECT id, ARRAY['u', 'notes'], 'u.notes', 'k', '{\"text\": \"x\"}'::jsonb, 'x' "
        "FROM tenants RETURNING id",
    )
    yield dsn
    drop_database(dsn)


def test_the_previous_release_gains_history_and_text_hashes(release_06_database: str) -> None:
    dsn = release_06_database
    config = alembic_config(_url(dsn))
    command.upgrade(config, "head")
    # Every existing record has a first version, recorded when it was last written.
    assert scalar(dsn, "SELECT count(*) FROM record_history WHERE change = 'created'") == 3
    recorded = scalar(dsn, "SELECT recorded_at FROM record_history WHERE key = '1,2'")
    assert recorded.isoformat() == "2026-01-02T03:04:05+00:00"
    # The same text once case and whitespace are normalised: one hash.
    assert scalar(dsn, "SELECT count(DISTINCT text_hash) FROM records WHERE key <> 'k'") == 1
    # The trigger writes the versions of new changes, and a refresh of the expiry writes none.
    scalar(dsn, "UPDATE records SET payload = '{\"a\": 1}' WHERE key = '3,4' RETURNING id")
    scalar(dsn, "UPDATE records SET expires_at = now() WHERE key = 'k' RETURNING id")
    kinds = scalar(dsn, "SELECT string_agg(change, ',' ORDER BY id) FROM record_history")
    assert kinds == "created,created,created,replaced"
    command.downgrade(config, "0007")
    assert scalar(dsn, "SELECT to_regclass('record_history')") is None
    assert scalar(dsn, "SELECT count(*) FROM records") == 3
    command.upgrade(config, "head")
    assert scalar(dsn, "SELECT count(*) FROM record_history") == 3


@pytest.fixture
def release_072_database(settings: Settings) -> Iterator[str]:
    """A database at 0.7.2's head (0009): a memory and a message-like item, with history."""
    dsn = sibling_dsn(settings.postgres_dsn.get_secret_value(), "_m0009")
    recreate_database(dsn)
    command.upgrade(alembic_config(_url(dsn)), "0009")
    scalar(dsn, "INSERT INTO tenants (name) VALUES ('old') RETURNING id")
    scalar(
        dsn,
        "INSERT INTO records (tenant_id, key, memory_type, payload, text, importance) "
        "SELECT id, '1,2', 'episodic', '{\"text\": \"tea\"}'::jsonb, 'tea', 0.5 FROM tenants "
        "RETURNING id",
    )
    scalar(
        dsn,
        "INSERT INTO records (tenant_id, namespace, namespace_path, key, payload, text) "
        "SELECT id, ARRAY['u', 'notes'], 'u.notes', 'k', '{\"text\": \"x\"}'::jsonb, 'x' "
        "FROM tenants RETURNING id",
    )
    yield dsn
    drop_database(dsn)


def test_the_previous_release_gains_scopes(release_072_database: str) -> None:
    dsn = release_072_database
    config = alembic_config(_url(dsn))
    command.upgrade(config, "head")
    # Rows and versions kept, no scope on any of them.
    assert scalar(dsn, "SELECT count(*) FROM records WHERE user_id IS NULL") == 2
    assert scalar(dsn, "SELECT count(*) FROM record_history WHERE user_id IS NULL") == 2
    # The trigger copies the scopes into each version, and a change of scope is a version.
    scalar(
        dsn,
        "UPDATE records SET user_id = 'ann', session_id = 's1' WHERE key = '1,2' RETURNING id",
    )
    assert (
        scalar(
            dsn,
            "SELECT change || ':' || user_id || ':' || session_id FROM record_history "
            "WHERE user_id IS NOT NULL",
        )
        == "replaced:ann:s1"
    )
    scalar(dsn, "DELETE FROM records WHERE key = '1,2' RETURNING id")
    assert scalar(dsn, "SELECT count(*) FROM record_history WHERE user_id = 'ann'") == 2
    # The scopes are indexed.
    plan = scalar(
        dsn,
        "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
        "WHERE indexname IN ('ix_records_user_id', 'ix_records_agent_id', "
        "'ix_records_session_id', 'ix_record_history_user_id')",
    )
    assert plan == (
        "ix_record_history_user_id,ix_records_agent_id,ix_records_session_id,ix_records_user_id"
    )
    command.downgrade(config, "0009")
    assert scalar(dsn, "SELECT count(*) FROM records") == 1
    # 0009's trigger again: still writes versions, without the scope columns.
    scalar(dsn, "UPDATE records SET payload = '{\"a\": 1}' WHERE key = 'k' RETURNING id")
    assert scalar(dsn, "SELECT count(*) FROM record_history WHERE change = 'replaced'") == 2
    command.upgrade(config, "head")
    assert scalar(dsn, "SELECT count(*) FROM records WHERE user_id IS NULL") == 1
