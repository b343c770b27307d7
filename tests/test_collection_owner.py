"""A Milvus collection belongs to the database that made it (``stores/ownership.py``).

Two real databases, the test database and a sibling (``<test db>_b``), are pointed at one
collection name on the real Milvus: the second refuses to start (``scripts/bootstrap.sh
--dry-run``, ``validate-infra``, bootstrap, the app's lifespan), naming the collection and
both owners, and changes nothing; the first still starts. A collection made by 0.5.0 (no
owner) is refused by the read-only checks and adopted by the first real start.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pymilvus import DataType, MilvusClient
from typer.testing import CliRunner

from somafractalmemory.api.app import create_app
from somafractalmemory.bootstrap import bootstrap, main
from somafractalmemory.errors import InfrastructureError
from somafractalmemory.models import DatabaseIdentity
from somafractalmemory.settings import Settings, get_settings
from somafractalmemory.stack import Stack, create_postgres_store
from somafractalmemory.stores.ownership import OWNER, read_identity
from testkit.server import ROOT, stack_env
from testkit.stores import (
    drop_collections,
    drop_database,
    migrate,
    milvus_client,
    own_connection,
    recreate_database,
    sibling_dsn,
    with_updates,
)


def identity_of(settings: Settings) -> DatabaseIdentity:
    store = create_postgres_store(settings)
    try:
        return read_identity(store)
    finally:
        store.engine.dispose()


def use_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Make the process environment name ``settings`` (main() reads the environment)."""
    for name in list(os.environ):
        if name.startswith(("POSTGRES_", "MILVUS_", "REDIS_", "SOMA_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in stack_env(settings).items():
        if name.startswith(("POSTGRES_", "MILVUS_", "REDIS_", "SOMA_")):
            monkeypatch.setenv(name, value)


def failed_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("FAILED ")]


def owner_property(settings: Settings, collection: str) -> str | None:
    client = milvus_client(settings.milvus_uri)
    try:
        properties = client.describe_collection(collection).get("properties") or {}
    finally:
        client.close()
    return properties.get(OWNER)


@pytest.fixture(scope="module")
def first(stack: Stack) -> Iterator[Settings]:
    """The test database, on a collection of this module's own, set up by bootstrap."""
    settings = with_updates(
        stack.settings,
        milvus_uri=own_connection(stack.settings.milvus_uri),
        milvus_collection=f"{stack.settings.milvus_collection}_owned",
    )
    drop_collections(settings.milvus_uri, settings.milvus_collection)
    bootstrap(settings, dry_run=False).close()
    yield settings
    drop_collections(settings.milvus_uri, settings.milvus_collection)


@pytest.fixture(scope="module")
def second(first: Settings) -> Iterator[Settings]:
    """Another database, migrated (so with an identity of its own), on the same collection."""
    dsn = sibling_dsn(first.postgres_dsn.get_secret_value(), "_b")
    recreate_database(dsn)
    migrate(dsn)
    yield with_updates(first, postgres_dsn=dsn)
    drop_database(dsn)


def assert_names_both_owners(line: str, first: Settings, second: Settings) -> None:
    assert line.startswith(f"FAILED milvus ({first.milvus_address})"), line
    assert repr(first.milvus_collection) in line
    assert "belongs to another database" in line
    for settings in (first, second):
        assert identity_of(settings).uuid in line
        assert settings.postgres_address in line


def test_identities_differ_and_collections_carry_their_owner(
    first: Settings, second: Settings
) -> None:
    assert identity_of(first) != identity_of(second)
    mine = identity_of(first).uuid
    for suffix in ("", "_items"):
        assert owner_property(first, first.milvus_collection + suffix) == mine


def test_dry_run_of_the_second_database_refuses_naming_the_collection_and_both_owners(
    first: Settings, second: Settings
) -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap.sh"), "--dry-run"],
        env=stack_env(second),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    (line,) = failed_lines(done.stderr)  # one line: only Milvus failed
    assert_names_both_owners(line, first, second)


def test_validate_infra_of_the_second_database_refuses(
    monkeypatch: pytest.MonkeyPatch, first: Settings, second: Settings
) -> None:
    from somafractalmemory import cli

    use_env(monkeypatch, second)
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(cli.app, ["validate-infra"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 1, done.output
    assert "belongs to another database" in done.output


def test_start_of_the_second_database_refuses_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    first: Settings,
    second: Settings,
) -> None:
    use_env(monkeypatch, second)
    assert main([]) == 1  # not a dry run: it would set up, and must not adopt
    (line,) = failed_lines(capsys.readouterr().err)
    assert_names_both_owners(line, first, second)
    for suffix in ("", "_items"):
        assert owner_property(first, first.milvus_collection + suffix) == identity_of(first).uuid


def test_the_app_of_the_second_database_refuses_to_start(second: Settings) -> None:
    with pytest.raises(InfrastructureError) as raised, TestClient(create_app(second)):
        pytest.fail("the app started on another database's collection")
    (failure,) = raised.value.failures
    assert failure.part == "milvus"
    assert "belongs to another database" in failure.reason


def test_the_first_database_still_starts(
    monkeypatch: pytest.MonkeyPatch, first: Settings, second: Settings
) -> None:
    use_env(monkeypatch, first)
    assert main(["--dry-run"]) == 0
    with TestClient(create_app(first)) as client:
        assert client.get("/healthz").status_code == 200


def test_the_items_collection_of_another_database_is_refused(
    first: Settings, second: Settings
) -> None:
    """The memories' collection is the second database's own, the items' is the first's."""
    settings = with_updates(second, milvus_collection=f"{first.milvus_collection}_mixed")
    drop_collections(settings.milvus_uri, settings.milvus_collection)
    try:
        bootstrap(with_updates(first, milvus_collection=settings.milvus_collection), False).close()
        client = milvus_client(settings.milvus_uri)
        client.drop_collection(settings.milvus_collection)
        client.close()
        with pytest.raises(InfrastructureError) as raised:
            bootstrap(settings, dry_run=False)
        assert owner_property(settings, settings.milvus_collection) == identity_of(second).uuid
    finally:
        drop_collections(settings.milvus_uri, settings.milvus_collection)
    (failure,) = raised.value.failures
    assert f"{settings.milvus_collection}_items" in failure.reason
    assert "belongs to another database" in failure.reason


def make_unowned_collection(settings: Settings, dimension: int) -> None:
    """A memories' collection as 0.5.0 left it: SFM's shape, indexed, loaded, no properties."""
    client = milvus_client(settings.milvus_uri)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("tenant_id", DataType.INT64, is_partition_key=True)
    schema.add_field("memory_type", DataType.VARCHAR, max_length=16)
    schema.add_field("created_at", DataType.INT64)
    schema.add_field("attrs", DataType.JSON)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    client.create_collection(settings.milvus_collection, schema=schema)
    index = MilvusClient.prepare_index_params()
    index.add_index(
        field_name="vector",
        index_type="HNSW",
        metric_type="COSINE",
        params={"M": 16, "efConstruction": 200},
    )
    client.create_index(settings.milvus_collection, index)
    client.load_collection(settings.milvus_collection)
    client.close()


def test_a_collection_made_before_owners_is_adopted_by_the_first_real_start(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    stack: Stack,
    first: Settings,
    second: Settings,
) -> None:
    settings = with_updates(first, milvus_collection=f"{first.milvus_collection}_old")
    drop_collections(settings.milvus_uri, settings.milvus_collection)
    make_unowned_collection(settings, stack.embedder.dimension)
    try:
        use_env(monkeypatch, settings)
        assert main(["--dry-run"]) == 1  # whose it is cannot be told: refused, not adopted
        (line,) = failed_lines(capsys.readouterr().err)
        assert "has no owner" in line
        assert repr(settings.milvus_collection) in line
        assert owner_property(settings, settings.milvus_collection) is None
        with caplog.at_level(logging.WARNING, logger="somafractalmemory.stores.ownership"):
            assert main([]) == 0
        assert any("adopted by database" in r.getMessage() for r in caplog.records)
        assert owner_property(settings, settings.milvus_collection) == identity_of(first).uuid
        assert main(["--dry-run"]) == 0
        use_env(monkeypatch, with_updates(second, milvus_collection=settings.milvus_collection))
        capsys.readouterr()
        assert main(["--dry-run"]) == 1  # adopted: now the first database's, for good
        (line,) = failed_lines(capsys.readouterr().err)
        assert "belongs to another database" in line
    finally:
        drop_collections(settings.milvus_uri, settings.milvus_collection)


def test_healthz_and_readyz_check_the_item_collections(first: Settings) -> None:
    """The items' collections are part of Milvus for the probes as for start-up."""
    settings = with_updates(first, milvus_collection=f"{first.milvus_collection}_probe")
    drop_collections(settings.milvus_uri, settings.milvus_collection)
    bootstrap(settings, dry_run=False).close()
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert client.get("/healthz").status_code == 200
            dropped = milvus_client(settings.milvus_uri)
            dropped.drop_collection(f"{settings.milvus_collection}_items")
            dropped.close()
            health, ready = client.get("/healthz"), client.get("/readyz")
    finally:
        drop_collections(settings.milvus_uri, settings.milvus_collection)
    for answer in (health, ready):
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["milvus"] == "down", body
        assert body["postgres"] == body["redis"] == "up", body
        assert f"{settings.milvus_collection}_items" in body["errors"]["milvus"]
        assert settings.milvus_address in body["errors"]["milvus"]
