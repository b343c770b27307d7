"""Start-up refuses to run half-configured, and says which part failed where.

For each store pointed at a closed port (a free port nothing is bound to), the bootstrap
script exits non-zero in bounded time with a line naming the part and its address and never
the password, and the in-process app refuses to start. Everything else here drives
``bootstrap.py`` and ``stack.py`` in-process against the real stores (a collection with the
wrong dimension, an unmigrated database, a down Redis that is not required, ...), so that
coverage, which does not see subprocesses, sees every line and branch of them.

In-process stacks use :func:`own_connection` for Milvus: pymilvus shares one connection per
URI, and closing these stacks must not close the session stack's.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from somafractalmemory import bootstrap as bootstrap_module
from somafractalmemory.api.app import create_app
from somafractalmemory.bootstrap import (
    alembic_head,
    bootstrap,
    main,
    validate_infrastructure,
    wait_for,
    wait_for_postgres,
)
from somafractalmemory.core.keys import KeyService
from somafractalmemory.errors import (
    InfrastructureError,
    MilvusUnavailableError,
    PostgresUnavailableError,
    RedisUnavailableError,
)
from somafractalmemory.health import check_parts
from somafractalmemory.settings import Settings, get_settings
from somafractalmemory.stack import Stack, create_cache, create_postgres_store, create_stack
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.ownership import read_identity
from testkit.server import ROOT, free_port, python_module, stack_env
from testkit.stores import (
    drop_collections,
    drop_database,
    migrate,
    milvus_client,
    own_connection,
    private_database,
    recreate_database,
    sibling_dsn,
    with_updates,
)
from tests.faults.support import PrivateRedis

SECRET = "s3cret"
BOOTSTRAP_TIMEOUT = 3.0
# Beyond the interpreter's start-up (measured by a baseline run): one probe may outlast the
# deadline by its own timeout (a Milvus connect attempt is bounded by SOMA_STORE_TIMEOUT,
# 5 s, not by the time left), plus a few seconds.
SLACK = 5.0 + 3.0
# On a loaded machine (CI's side jobs start with the suite) the same load that slows the
# baseline's start-up slows the dry run's own work too: the slack grows with the baseline, up
# to half of it. Still far below the default deadline (SOMA_BOOTSTRAP_TIMEOUT 60 s) that an
# unbounded wait would run into.
LOAD_SLACK_SHARE = 0.5
PARTS = ("postgres", "milvus", "redis")


def closed_part(settings: Settings, part: str, port: int) -> Settings:
    """``settings`` with ``part`` pointed at a closed port, its credentials holding SECRET."""
    if part == "postgres":
        return with_updates(
            settings, postgres_dsn=f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/x"
        )
    if part == "milvus":
        return with_updates(
            settings, milvus_uri=f"http://127.0.0.1:{port}", milvus_token=f"root:{SECRET}"
        )
    return with_updates(settings, redis_url=f"redis://:{SECRET}@127.0.0.1:{port}/0")


@pytest.fixture(scope="module")
def dimension(stack: Stack) -> int:
    """The embedding model's dimension."""
    return stack.embedder.dimension


@pytest.fixture(scope="module")
def own(stack: Stack) -> Settings:
    """The test stack's settings on a pymilvus connection of this module's own."""
    return with_updates(stack.settings, milvus_uri=own_connection(stack.settings.milvus_uri))


def use_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, **extra: str) -> None:
    """Make the process environment name ``settings`` (main() reads the environment)."""
    for name in list(os.environ):
        if name.startswith(("POSTGRES_", "MILVUS_", "REDIS_", "SOMA_", "OTEL_")):
            monkeypatch.delenv(name)
    for name, value in stack_env(settings, **extra).items():
        if name.startswith(("POSTGRES_", "MILVUS_", "REDIS_", "SOMA_")):
            monkeypatch.setenv(name, value)


# -- scripts/bootstrap.sh --dry-run, as a subprocess ------------------------------------------
@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def failed_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("FAILED ")]


def _run(args: list[str], env: dict[str, str]) -> Run:
    started = time.monotonic()
    done = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def _dry_run(env: dict[str, str]) -> Run:
    return _run([str(ROOT / "scripts" / "bootstrap.sh"), "--dry-run"], env)


@pytest.fixture(scope="module")
def dry_runs(stack: Stack) -> Iterator[dict[str, tuple[int, Future[Run]]]]:
    """The failing dry runs of this module, started together (each mostly waits on its
    closed port), with a baseline: the same interpreter importing the same module and
    exiting, to tell start-up cost (seconds more on a busy machine) from waiting."""
    settings = stack.settings
    timeout = {"SOMA_BOOTSTRAP_TIMEOUT": str(BOOTSTRAP_TIMEOUT)}
    runs: dict[str, tuple[int, Future[Run]]] = {}
    with ThreadPoolExecutor(max_workers=5) as pool:
        for part in PARTS:
            port = free_port()
            env = stack_env(closed_part(settings, part, port), **timeout)
            runs[part] = (port, pool.submit(_dry_run, env))
        port = free_port()
        uri = f"http://root:{SECRET}@127.0.0.1:{port}"
        env = stack_env(with_updates(settings, milvus_uri=uri), **timeout)
        runs["milvus-uri-credentials"] = (port, pool.submit(_dry_run, env))
        baseline = python_module("somafractalmemory.bootstrap", "--help")
        runs["baseline"] = (0, pool.submit(_run, baseline, stack_env(settings)))
        yield runs


@pytest.mark.parametrize("part", PARTS)
def test_dry_run_names_the_closed_part_and_its_address(
    dry_runs: dict[str, tuple[int, Future[Run]]], part: str
) -> None:
    port, future = dry_runs[part]
    run = future.result()
    baseline = dry_runs["baseline"][1].result()
    assert baseline.returncode == 0, baseline.stderr
    assert run.returncode == 1, run.stderr
    waited = run.seconds - baseline.seconds
    slack = max(SLACK, LOAD_SLACK_SHARE * baseline.seconds)
    assert waited < BOOTSTRAP_TIMEOUT + slack, (
        f"{run.seconds:.1f} s ({baseline.seconds:.1f} s start-up)"
    )
    assert len(run.failed_lines) == 1, run.stderr  # one line per failed part, only that part
    line = run.failed_lines[0]
    assert line.startswith(f"FAILED {part} ("), line
    assert f"127.0.0.1:{port}" in line
    assert SECRET not in run.stdout + run.stderr


def test_dry_run_never_echoes_credentials_given_in_the_milvus_uri(
    dry_runs: dict[str, tuple[int, Future[Run]]],
) -> None:
    """pymilvus takes ``http://user:password@host:port``; the password must not be echoed."""
    port, future = dry_runs["milvus-uri-credentials"]
    run = future.result()
    assert run.returncode == 1, run.stderr
    assert any(f"127.0.0.1:{port}" in line for line in run.failed_lines), run.stderr
    assert SECRET not in run.stdout + run.stderr


def test_dry_run_passes_with_everything_up(stack: Stack) -> None:
    run = _dry_run(stack_env(stack.settings))
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK postgres"), run.stdout
    assert not run.failed_lines


# -- the in-process API --------------------------------------------------------------------------
@pytest.mark.parametrize("part", PARTS)
def test_api_refuses_to_start_without_a_required_part(own: Settings, part: str) -> None:
    port = free_port()
    app = create_app(closed_part(with_updates(own, store_timeout=2), part, port))
    with pytest.raises(InfrastructureError) as raised, TestClient(app):
        pytest.fail("the app started with a required part down")
    failures = raised.value.failures
    assert [f.part for f in failures] == [part]
    assert f"127.0.0.1:{port}" in failures[0].address
    assert SECRET not in str(raised.value)
    assert SECRET not in repr(failures)


def serve(client: TestClient, auth: dict[str, str]) -> dict[str, tuple[int, dict]]:
    """Status and body of each kind of request, on an app whose stores may be down."""
    requests: dict[str, tuple[str, str, dict | None]] = {
        "store": ("POST", "/memories", {"coord": "1,1", "payload": {"text": "hello world"}}),
        "get": ("GET", "/memories/1,1", None),
        "list": ("GET", "/memories", None),
        "keyword": ("POST", "/memories/search", {"query": "hello", "mode": "keyword"}),
        "vector": ("POST", "/memories/search", {"query": "hello", "mode": "vector"}),
        "hybrid": ("POST", "/memories/search", {"query": "hello"}),
        "put_item": (
            "PUT",
            "/items",
            {"namespace": ["a"], "key": "k", "value": {"text": "x"}, "index": False},
        ),
        "get_item": ("GET", "/items?namespace=a&key=k", None),
        "stats": ("GET", "/stats", None),
        "delete": ("DELETE", "/memories/1,1", None),
    }
    answers = {}
    for name, (method, path, body) in requests.items():
        response = client.request(method, path, json=body, headers=auth)
        answers[name] = (response.status_code, response.json())
    return answers


def test_api_starts_when_a_down_redis_is_not_required(own: Settings, stack: Stack) -> None:
    """Redis is a cache: every request is served from PostgreSQL and Milvus, health says
    which part is down, and the app is ready."""
    settings = with_updates(
        own, redis_url=f"redis://127.0.0.1:{free_port()}/0", require_redis=False
    )
    key, _info = KeyService(stack.postgres).create(f"noredis-{uuid.uuid4().hex[:12]}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
        answers = serve(client, {"Authorization": f"Bearer {key}"})
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "degraded"
    assert health.json()["redis"] == "down"
    assert health.json()["postgres"] == health.json()["milvus"] == "up"
    assert ready.status_code == 200, ready.text
    statuses = {name: status for name, (status, _body) in answers.items()}
    assert statuses == {
        "store": 201,
        "get": 200,
        "list": 200,
        "keyword": 200,
        "vector": 200,
        "hybrid": 200,
        "put_item": 201,
        "get_item": 200,
        "stats": 200,
        "delete": 200,
    }, answers
    for mode in ("keyword", "vector", "hybrid"):
        assert [r["coord"] for r in answers[mode][1]["results"]] == ["1,1"], mode
    assert answers["stats"][1]["memories"] == 1


def test_api_serves_postgres_alone_when_a_down_milvus_is_not_required(
    own: Settings, stack: Stack
) -> None:
    """Without Milvus: what PostgreSQL alone answers is served (reads by key, listing,
    keyword search, items without vectors); what needs Milvus is a 503 naming it and its
    address, never a 500; health is degraded and the app is not ready."""
    port = free_port()
    settings = with_updates(
        own, milvus_uri=f"http://127.0.0.1:{port}", require_milvus=False, store_timeout=1
    )
    key, _info = KeyService(stack.postgres).create(f"nomilvus-{uuid.uuid4().hex[:12]}")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
        live = client.get("/livez")
        answers = serve(client, {"Authorization": f"Bearer {key}"})
    assert health.status_code == 200, health.text
    assert (health.json()["status"], health.json()["milvus"]) == ("degraded", "down")
    assert ready.status_code == 503, ready.text
    assert f"127.0.0.1:{port}" in ready.json()["errors"]["milvus"]
    assert live.status_code == 200
    statuses = {name: status for name, (status, _body) in answers.items()}
    assert statuses == {
        "store": 503,
        "get": 404,  # the refused store wrote nothing
        "list": 200,
        "keyword": 200,
        "vector": 503,
        "hybrid": 503,
        "put_item": 201,
        "get_item": 200,
        "stats": 503,
        "delete": 404,
    }, answers
    for name in ("store", "vector", "hybrid", "stats"):
        body = answers[name][1]
        assert body["error"] == "MilvusUnavailableError", (name, body)
        assert f"127.0.0.1:{port}" in body["detail"], (name, body)
    assert answers["list"][1]["memories"] == []
    assert answers["get_item"][1]["value"] == {"text": "x"}


# -- bootstrap() and main(), in-process ----------------------------------------------------------
@pytest.mark.usefixtures("no_store_settings")
def test_main_without_settings_exits_2_naming_each_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--dry-run"]) == 2
    err = capsys.readouterr().err
    for name in ("POSTGRES_DSN", "MILVUS_URI", "REDIS_URL"):
        assert f"FAILED settings ({name})" in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("POSTGRES_DSN", "postgresql+asyncpg://postgres@127.0.0.1:5432/x"),
        ("REDIS_URL", "http://127.0.0.1:6379/0"),
    ],
)
def test_main_reports_a_malformed_address_as_a_settings_failure(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    own: Settings,
    variable: str,
    value: str,
) -> None:
    """A scheme the service cannot use is a settings error (exit 2, one line), not a crash."""
    use_env(monkeypatch, own, SOMA_BOOTSTRAP_TIMEOUT="1")
    monkeypatch.setenv(variable, value)
    assert main(["--dry-run"]) == 2
    assert f"FAILED settings ({variable})" in capsys.readouterr().err


@pytest.mark.usefixtures("no_store_settings")
def test_module_entry_point_exits_with_mains_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["somafractalmemory.bootstrap", "--dry-run"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(bootstrap_module.__file__, run_name="__main__")
    assert exited.value.code == 2


def test_main_dry_run_passes_with_everything_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own: Settings
) -> None:
    use_env(monkeypatch, own)
    assert main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK postgres ({own.postgres_address}), milvus ({own.milvus_uri})")


def test_main_sets_up_and_passes_with_everything_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own: Settings
) -> None:
    use_env(monkeypatch, own)
    assert main([]) == 0
    assert capsys.readouterr().out.startswith("OK postgres")


def test_main_reports_every_closed_part_on_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own: Settings
) -> None:
    ports = {part: free_port() for part in PARTS}
    settings = own
    for part in PARTS:
        settings = closed_part(settings, part, ports[part])
    use_env(monkeypatch, settings, SOMA_BOOTSTRAP_TIMEOUT="1", SOMA_STORE_TIMEOUT="1")
    started = time.monotonic()
    assert main(["--dry-run"]) == 1
    assert time.monotonic() - started < 1 + 5
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("FAILED ")]
    assert [line.split()[1] for line in lines] == list(PARTS), err
    for part, line in zip(PARTS, lines, strict=True):
        assert f"127.0.0.1:{ports[part]}" in line
    assert SECRET not in err


def test_main_reports_an_unmigrated_database_as_postgres(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own: Settings
) -> None:
    unmigrated = sibling_dsn(own.postgres_dsn.get_secret_value(), "_unmigrated")
    with private_database(unmigrated, migrated=False) as dsn:
        use_env(monkeypatch, with_updates(own, postgres_dsn=dsn))
        assert main(["--dry-run"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("FAILED postgres (")
    assert "_unmigrated" in lines[0]
    assert "revision" in lines[0]


def test_main_sets_nothing_up_on_an_unmigrated_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own: Settings
) -> None:
    """Without the database's identity no collection is made or adopted (it would carry no
    owner): PostgreSQL is named, and Milvus for the collection that is still missing."""
    dsn = sibling_dsn(own.postgres_dsn.get_secret_value(), "_unmigrated")
    settings = with_updates(
        own, postgres_dsn=dsn, milvus_collection=f"{own.milvus_collection}_nodb"
    )
    recreate_database(dsn)
    drop_collections(own.milvus_uri, settings.milvus_collection)
    try:
        use_env(monkeypatch, settings)
        assert main([]) == 1
        client = milvus_client(own.milvus_uri)
        made = [n for n in client.list_collections() if n.startswith(settings.milvus_collection)]
        client.close()
    finally:
        drop_database(dsn)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert [line.split()[1] for line in lines] == ["postgres", "milvus"], lines
    assert "revision none" in lines[0]
    assert "does not exist" in lines[1]  # and was not made
    assert made == []


def test_validate_names_postgres_alone_when_the_spaces_table_is_dropped(own: Settings) -> None:
    """The spaces are listed in PostgreSQL: a dropped ``embedding_spaces`` is PostgreSQL's
    failure, not Milvus's, although the Milvus check reads that table too."""
    dsn = sibling_dsn(own.postgres_dsn.get_secret_value(), "_nospaces")
    settings = with_updates(
        own, postgres_dsn=dsn, milvus_collection=f"{own.milvus_collection}_nospaces"
    )
    recreate_database(dsn)
    migrate(dsn)
    drop_collections(own.milvus_uri, settings.milvus_collection)
    stack = bootstrap(settings, dry_run=False)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE embedding_spaces CASCADE")
        with pytest.raises(InfrastructureError) as raised:
            validate_infrastructure(stack)
    finally:
        stack.close()
        drop_database(dsn)
        drop_collections(own.milvus_uri, settings.milvus_collection)
    (failure,) = raised.value.failures
    assert failure.part == "postgres"
    assert "embedding_spaces" in failure.reason


@pytest.fixture
def wrong_dimension(own: Settings, dimension: int) -> Iterator[Settings]:
    """A collection shaped like SFM's but with another dimension, named in the settings."""
    settings = with_updates(own, milvus_collection=f"{own.milvus_collection}_wrongdim")
    drop_collections(settings.milvus_uri, settings.milvus_collection)
    # Set-up, not what is tested: up to 30 s (not the 5 s store timeout) for a busy Milvus.
    store = MilvusStore(with_updates(settings, store_timeout=30.0))
    try:
        postgres = create_postgres_store(settings)
        try:
            owner = read_identity(postgres)  # this database's, so only the dimension is wrong
        finally:
            postgres.engine.dispose()
        store.ensure_collection(dimension // 2, owner)
    finally:
        store.close()
    yield settings
    drop_collections(settings.milvus_uri, settings.milvus_collection)


def test_validate_names_milvus_and_the_dimension(wrong_dimension: Settings, dimension: int) -> None:
    stack = create_stack(wrong_dimension)
    try:
        with pytest.raises(InfrastructureError) as raised:
            validate_infrastructure(stack)
    finally:
        stack.close()
    (failure,) = raised.value.failures
    assert failure.part == "milvus"
    assert f"dimension {dimension // 2}" in failure.reason
    assert str(dimension) in failure.reason


def test_validate_names_milvus_when_the_items_collection_is_missing(own: Settings) -> None:
    settings = with_updates(own, milvus_collection=f"{own.milvus_collection}_noitems")
    drop_collections(settings.milvus_uri, settings.milvus_collection)
    stack = create_stack(settings)
    try:
        owner = read_identity(stack.postgres)
        stack.milvus.ensure_collection(stack.embedder.dimension, owner)  # the memories' one only
        with pytest.raises(InfrastructureError) as raised:
            validate_infrastructure(stack)
    finally:
        stack.close()
        drop_collections(settings.milvus_uri, settings.milvus_collection)
    (failure,) = raised.value.failures
    assert failure.part == "milvus"
    assert f"{settings.milvus_collection}_items" in failure.reason


def test_main_refuses_a_collection_of_another_dimension(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    wrong_dimension: Settings,
    dimension: int,
) -> None:
    use_env(monkeypatch, wrong_dimension)
    assert main([]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"FAILED milvus ({wrong_dimension.milvus_uri})")
    assert f"dimension {dimension // 2}" in lines[0]
    # refused, never altered
    client = milvus_client(wrong_dimension.milvus_uri)
    fields = client.describe_collection(wrong_dimension.milvus_collection)["fields"]
    client.close()
    vector = next(f for f in fields if f["name"] == "vector")
    assert int(vector["params"]["dim"]) == dimension // 2


def test_bootstrap_starts_without_a_broken_milvus_that_is_not_required(
    wrong_dimension: Settings, dimension: int
) -> None:
    """The stack starts; its checks still find the broken collection (left as it is), and
    PostgreSQL serves."""
    stack = bootstrap(with_updates(wrong_dimension, require_milvus=False), dry_run=False)
    try:
        stack.postgres.ping()
        found = check_parts(stack, schema_head=alembic_head())
    finally:
        stack.close()
    assert list(found) == ["milvus"]
    assert f"dimension {dimension // 2}" in found["milvus"].reason
    client = milvus_client(wrong_dimension.milvus_uri)
    fields = client.describe_collection(wrong_dimension.milvus_collection)["fields"]
    client.close()
    vector = next(f for f in fields if f["name"] == "vector")
    assert int(vector["params"]["dim"]) == dimension // 2


def test_bootstrap_starts_without_a_down_milvus_that_is_not_required(own: Settings) -> None:
    port = free_port()
    settings = with_updates(
        own, milvus_uri=f"http://127.0.0.1:{port}", require_milvus=False, store_timeout=1
    )
    stack = bootstrap(settings, dry_run=False)
    try:
        stack.postgres.ping()
        stack.cache.ping()
        with pytest.raises(MilvusUnavailableError, match=f"127.0.0.1:{port}"):
            stack.milvus.ping()
    finally:
        stack.close()


def test_bootstrap_starts_without_a_down_redis_that_is_not_required(own: Settings) -> None:
    port = free_port()
    settings = with_updates(own, redis_url=f"redis://127.0.0.1:{port}/0", require_redis=False)
    stack = bootstrap(settings, dry_run=True)
    try:
        stack.postgres.ping()
        stack.milvus.ping()
        with pytest.raises(RedisUnavailableError, match=f"127.0.0.1:{port}"):
            stack.cache.ping()
    finally:
        stack.close()


def test_wait_for_postgres_returns_when_it_answers(own: Settings) -> None:
    started = time.monotonic()
    assert wait_for_postgres(with_updates(own, bootstrap_timeout=30)) is None
    assert time.monotonic() - started < 5  # answered at once, no backoff waited out


def test_wait_for_postgres_gives_up_after_the_timeout(own: Settings) -> None:
    settings = with_updates(
        own,
        postgres_dsn=f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/x",
        bootstrap_timeout=1.5,
    )
    started = time.monotonic()
    with pytest.raises(PostgresUnavailableError) as raised:
        wait_for_postgres(settings)
    assert 1.5 <= time.monotonic() - started < 1.5 + 5
    assert SECRET not in str(raised.value)


def test_bootstrap_waits_for_a_store_that_comes_up_late(own: Settings, tmp_path: Path) -> None:
    late = PrivateRedis(tmp_path / "redis")
    settings = with_updates(own, redis_url=late.url, bootstrap_timeout=20)
    starter = threading.Timer(1.5, late.start)
    started = time.monotonic()
    starter.start()
    try:
        stack = bootstrap(settings, dry_run=True)
        waited = time.monotonic() - started
        stack.close()
    finally:
        starter.join()
        late.stop()
    assert 1.5 <= waited < 1.5 + 6


def test_wait_for_raises_the_probes_last_error_after_the_timeout(own: Settings) -> None:
    port = free_port()
    settings = with_updates(own, redis_url=f"redis://127.0.0.1:{port}/0")
    cache = create_cache(settings)
    started = time.monotonic()
    try:
        with pytest.raises(RedisUnavailableError, match=f"127.0.0.1:{port}"):
            wait_for("redis", cache.ping, 1.0)
    finally:
        cache.close()
    assert 1.0 <= time.monotonic() - started < 1.0 + 4


def test_create_stack_refuses_anything_but_the_real_milvus_adapter(own: Settings) -> None:
    class AnotherMilvusStore(MilvusStore):
        """A real adapter of another type: the factory must not accept it."""

    with pytest.raises(TypeError, match="expected MilvusStore, got AnotherMilvusStore"):
        create_stack(own, milvus=AnotherMilvusStore(own))


def test_the_service_starts_after_migrate_and_ensure_collection(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], own: Settings
) -> None:
    """`somafractalmemory ensure-collection` sets up what start-up then checks."""
    from somafractalmemory import cli

    settings = with_updates(own, milvus_collection=f"{own.milvus_collection}_cli")
    drop_collections(settings.milvus_uri, settings.milvus_collection)
    use_env(monkeypatch, settings)
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(cli.app, ["ensure-collection"])
        assert done.exit_code == 0, done.output
        capsys.readouterr()
        status = main(["--dry-run"])
        err = capsys.readouterr().err
    finally:
        get_settings.cache_clear()
        drop_collections(settings.milvus_uri, settings.milvus_collection)
    assert status == 0, err


def test_closing_a_stack_leaves_another_stack_of_the_process_working(own: Settings) -> None:
    """pymilvus shares one connection per URI and token, and a client's ``close()`` removes
    it for every client: a stack must close its own connection only (two apps in one
    process, the test suite's fixtures, a CLI command run in-process)."""
    settings = with_updates(own, milvus_uri=own.milvus_uri.rstrip("/") + "//")
    first, second = create_stack(settings), create_stack(settings)
    try:
        first.milvus.ping()
        second.milvus.ping()
        first.close()
        second.milvus.ping()
        second.cache.ping()
        second.postgres.ping()
    finally:
        second.close()


def test_main_names_the_embedding_model_when_its_export_is_missing(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    own: Settings,
    tmp_path: Path,
) -> None:
    use_env(monkeypatch, own, SOMA_EMBEDDING_ONNX_DIR=str(tmp_path / "no-export"))
    assert main(["--dry-run"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED embedding ({tmp_path / 'no-export'}): no ONNX export" in err
    assert "somafractalmemory embedder build" in err
