"""The Python client, sync and async, against a real SFM server started as a subprocess.

No mocks: the server is `uvicorn somafractalmemory.http_api:app` on the test stack; failures
come from real wrong endpoints (a closed port, a dropped Milvus collection, a timeout too short).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from somafractalmemory.client import (
    AsyncSFMClient,
    BadRequest,
    ConnectionFailed,
    DeleteResponse,
    HealthResponse,
    InvalidInput,
    LinkPublic,
    MemoryCreate,
    MemoryPublic,
    MemoryType,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    SearchResponse,
    ServerError,
    SFMClient,
    SFMClientError,
    StoreUnavailable,
    Unauthorized,
)
from somafractalmemory.client.errors import error_for
from somafractalmemory.stack import Stack
from somafractalmemory.stores.milvus import MilvusStore
from testkit.server import START_TIMEOUT, ServerProcess, free_port, running_server, server_env


@pytest.fixture
def server_url(sfm_server: ServerProcess) -> str:
    """The session's real SFM server on the test stack (migrated, collection ensured)."""
    return sfm_server.url


@pytest.fixture
def api_key(stack: Stack) -> str:
    """A key of a new tenant of this test's own."""
    key, _info = stack.keys.create(f"client-{uuid.uuid4().hex[:12]}")
    return key


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that also records the requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    """The async twin of :class:`CountingTransport`."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await super().handle_async_request(request)


# -- the light client stays light ------------------------------------------------------------

HEAVY = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "pymilvus",
    "torch",
    "sentence_transformers",
    "redis",
    "pydantic_settings",
    "prometheus_client",
    "opentelemetry",
    "uvicorn",
    "typer",
    "mcp",
)


def test_client_imports_nothing_of_the_server() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from somafractalmemory.client import SFMClient, AsyncSFMClient
        print(json.dumps(sorted(sys.modules)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules: list[str] = json.loads(done.stdout)
    loaded = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    assert loaded == [], f"the client pulled in server modules: {loaded}"
    ours = {m for m in modules if m.split(".")[0] == "somafractalmemory"}
    allowed = {
        "somafractalmemory",
        "somafractalmemory.errors",
        "somafractalmemory.schemas",
        "somafractalmemory.item_schemas",
        "somafractalmemory.history_schemas",
        "somafractalmemory.context_schemas",
        "somafractalmemory.message_schemas",
        "somafractalmemory.scope_schemas",
        "somafractalmemory.webhook_schemas",
        "somafractalmemory.core",
        "somafractalmemory.models",
    }
    strays = {m for m in ours - allowed if not m.startswith("somafractalmemory.client")}
    assert not strays, f"the client imported more of the package than it may: {strays}"


# -- error mapping, offline ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (404, "NotFoundError", NotFound),
        (401, "UnauthorizedError", Unauthorized),
        (422, "InvalidInputError", InvalidInput),
        (400, "BadRequestError", BadRequest),
        (413, "PayloadTooLargeError", PayloadTooLarge),
        (503, "MilvusUnavailableError", StoreUnavailable),
        (503, "SchemaError", StoreUnavailable),
        (503, "InfrastructureError", StoreUnavailable),
        (500, "InternalError", ServerError),
        (429, "SomethingNew", RateLimited),
        (502, None, ServerError),
        (404, None, NotFound),
        (418, "TeapotError", SFMClientError),
    ],
)
def test_error_names_and_statuses_map_to_classes(
    status: int, name: str | None, expected: type[SFMClientError]
) -> None:
    error = error_for(status, name, "what went wrong")
    assert type(error) is expected
    assert error.status_code == status
    assert error.detail == "what went wrong"
    assert error.error == (name or expected.__name__)


# -- every method, sync ----------------------------------------------------------------------


def test_sync_client_every_endpoint(server_url: str, api_key: str, stack: Stack) -> None:
    dimension = stack.embedder.dimension
    with SFMClient(server_url, api_key) as sfm:
        health = sfm.health()
        assert isinstance(health, HealthResponse)
        assert (health.status, health.postgres, health.milvus, health.redis) == (
            "ok",
            "up",
            "up",
            "up",
        )
        assert sfm.ready().status == "ok"

        first = sfm.store(
            "1,2,3",
            {"text": "The user prefers green tea", "topic": "drinks"},
            memory_type="semantic",
            importance=0.8,
        )
        assert isinstance(first, MemoryPublic)
        assert (first.coord, first.memory_type, first.importance) == (
            "1,2,3",
            MemoryType.SEMANTIC,
            0.8,
        )
        again = sfm.store(
            "1.0, 2, 3",
            {"text": "The user prefers green tea without sugar", "topic": "drinks"},
            MemoryType.SEMANTIC,
            0.9,
        )
        assert again.created_at == first.created_at
        assert again.updated_at > first.updated_at
        assert sfm.get("1.00,2,3").payload["text"].endswith("without sugar")

        batch = sfm.store_batch(
            [
                MemoryCreate(coord="4,5,6", payload={"text": "Bought a tea pot on Friday"}),
                {"coord": "7,8,9", "payload": {"text": "The flight to Tokyo leaves at 7am"}},
                {"coord": "-1,0.5", "payload": {"text": "Flight seat 12A", "topic": "travel"}},
            ]
        )
        assert [(r.coord, r.status) for r in batch.results] == [
            ("4,5,6", "created"),
            ("7,8,9", "created"),
            ("-1,0.5", "created"),
        ]

        page = sfm.list(limit=3)
        assert [m.coord for m in page.memories] == ["1,2,3", "4,5,6", "7,8,9"]
        assert page.next_cursor is not None
        rest = sfm.list(cursor=page.next_cursor)
        assert [m.coord for m in rest.memories] == ["-1,0.5"]
        assert rest.next_cursor is None
        assert [m.coord for m in sfm.list(memory_type="semantic").memories] == ["1,2,3"]

        found = sfm.search("what does the user like to drink?", top_k=3)
        assert isinstance(found, SearchResponse)
        assert found.results[0].coord == "1,2,3"
        assert found.results[0].payload["topic"] == "drinks"
        assert len(found.results) == 3
        assert [r.coord for r in sfm.search("seat", filters={"topic": "travel"}).results] == [
            "-1,0.5"
        ]
        assert [r.coord for r in sfm.search("tea", memory_type="semantic").results] == ["1,2,3"]
        # Extra keys reach the server unchanged: search options, datetimes, own vectors.
        keyword = sfm.search("Tokyo", mode="keyword")
        assert [r.coord for r in keyword.results] == ["7,8,9"]
        assert keyword.results[0].signals.keyword == 1
        since = datetime.now(UTC) + timedelta(hours=1)
        assert sfm.search("tea", created_after=since).results == []
        with pytest.raises(InvalidInput) as refused:
            sfm.search("tea", colour="red")
        assert "colour" in refused.value.detail

        link = sfm.link("1,2,3", "4,5,6", "related", 0.9, {"why": "tea"})
        assert link == LinkPublic(
            from_coord="1,2,3",
            to_coord="4,5,6",
            link_type="related",
            strength=0.9,
            metadata={"why": "tea"},
        )
        sfm.link("4,5,6", "7,8,9", "then")
        near = sfm.neighbors("1,2,3", k_hop=2)
        assert [(n.coord, n.link_type, n.depth) for n in near.neighbors] == [
            ("4,5,6", "related", 1),
            ("7,8,9", "then", 2),
        ]
        assert [n.coord for n in sfm.neighbors("1,2,3", 2, link_type="related").neighbors] == [
            "4,5,6"
        ]
        assert [n.coord for n in sfm.neighbors("4,5,6", direction="in").neighbors] == ["1,2,3"]
        assert [n.coord for n in sfm.neighbors("1,2,3", k_hop=2, limit=1).neighbors] == ["4,5,6"]
        assert sfm.path("1,2,3", "7,8,9").path == ["1,2,3", "4,5,6", "7,8,9"]
        assert sfm.path("7,8,9", "1,2,3", direction="both").path == ["7,8,9", "4,5,6", "1,2,3"]

        stats = sfm.stats()
        assert (stats.memories, stats.links, stats.vectors) == (4, 2, 4)
        assert stats.by_type == {"episodic": 3, "semantic": 1}

        own = [0.0] * dimension
        own[0], own[1] = 1.0, 1.0
        assert sfm.store("5,5", {"text": "a memory with a vector of its own"}, vector=own).coord
        by_vector = sfm.search(None, top_k=1, mode="vector", vector=own)
        assert [r.coord for r in by_vector.results] == ["5,5"]
        assert by_vector.results[0].score == pytest.approx(1.0, abs=1e-3)

        assert sfm.delete("4,5,6") == DeleteResponse(deleted=True)
        with pytest.raises(NotFound):
            sfm.get("4,5,6")
        assert sfm.stats().links == 0


# -- every method, async ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_client_every_endpoint(server_url: str, api_key: str) -> None:
    async with AsyncSFMClient(server_url, api_key) as sfm:
        health = await sfm.health()
        assert health.status == "ok"
        assert (await sfm.ready()).status == "ok"

        stored = await sfm.store("10,10", {"text": "Ana's birthday is on March 3rd", "n": 1})
        assert (stored.coord, stored.memory_type, stored.importance) == (
            "10,10",
            MemoryType.EPISODIC,
            0.5,
        )
        batch = await sfm.store_batch(
            [
                {"coord": "10,10", "payload": {"text": "Ana's birthday is on March 3rd", "n": 1}},
                {"coord": "20,20", "payload": {"text": "My sister Ana lives in Lisbon", "n": 2}},
                {
                    "coord": "30,30",
                    "payload": {"text": "I am allergic to peanuts"},
                    "memory_type": "semantic",
                },
            ]
        )
        # 10,10 holds this very memory already (stored above): nothing to write.
        assert [r.status for r in batch.results] == ["unchanged", "created", "created"]
        assert (await sfm.get("20.0,20")).payload["text"] == "My sister Ana lives in Lisbon"

        page = await sfm.list(limit=2)
        assert [m.coord for m in page.memories] == ["10,10", "20,20"]
        assert page.next_cursor is not None
        assert [m.coord for m in (await sfm.list(cursor=page.next_cursor)).memories] == ["30,30"]

        hits = (await sfm.search("where does my sister live?", top_k=2)).results
        assert hits[0].coord == "20,20"
        assert len(hits) == 2
        assert [h.coord for h in (await sfm.search("Ana", filters={"n": 1})).results] == ["10,10"]
        assert [
            h.coord for h in (await sfm.search("food", memory_type=MemoryType.SEMANTIC)).results
        ] == ["30,30"]
        with pytest.raises(InvalidInput) as refused:
            await sfm.search("Ana", colour="red")
        assert "colour" in refused.value.detail

        link = await sfm.link("20,20", "10,10", metadata={"who": "Ana"})
        assert (link.link_type, link.strength, link.metadata) == ("related", 1.0, {"who": "Ana"})
        await sfm.link("10,10", "30,30", "mentions", 0.2)
        near = (await sfm.neighbors("20,20", k_hop=2)).neighbors
        assert [(n.coord, n.depth) for n in near] == [("10,10", 1), ("30,30", 2)]
        both = (await sfm.neighbors("10,10", direction="both")).neighbors
        assert sorted(n.coord for n in both) == ["20,20", "30,30"]
        assert (await sfm.path("20,20", "30,30")).path == ["20,20", "10,10", "30,30"]
        with pytest.raises(NotFound):
            await sfm.path("20,20", "30,30", link_type="related")

        stats = await sfm.stats()
        assert (stats.memories, stats.links, stats.vectors) == (3, 2, 3)

        assert (await sfm.delete("10,10")).deleted is True
        with pytest.raises(NotFound):
            await sfm.delete("10,10")
        assert (await sfm.neighbors("20,20")).neighbors == []


# -- errors ------------------------------------------------------------------------------------


def test_sync_errors_are_mapped(server_url: str, api_key: str) -> None:
    with SFMClient(server_url, api_key) as sfm:
        with pytest.raises(NotFound) as missing:
            sfm.get("404,404")
        assert missing.value.status_code == 404
        assert missing.value.error == "NotFoundError"
        assert missing.value.detail
        assert missing.value.attempts == 1  # 4xx is never retried
        with pytest.raises(NotFound):
            sfm.delete("404,404")
        with pytest.raises(NotFound):
            sfm.link("404,404", "405,405")

        with pytest.raises(InvalidInput) as bad_coord:
            sfm.get("1,x")
        assert bad_coord.value.status_code == 422
        assert "coord" in bad_coord.value.detail
        with pytest.raises(InvalidInput) as bad_top_k:
            sfm.search("tea", top_k=0)
        assert "top_k" in bad_top_k.value.detail
        with pytest.raises(InvalidInput) as bad_importance:
            sfm.store("1,2", {"text": "x"}, importance=2.0)
        assert "importance" in bad_importance.value.detail
        with pytest.raises(InvalidInput):
            sfm.neighbors("1,2", direction="sideways")

        with pytest.raises(PayloadTooLarge) as too_big:
            sfm.store("1,2", {"text": "a" * 1_100_000})
        assert too_big.value.status_code == 413

    for key in ("sfm_not_a_key", None):
        with SFMClient(server_url, key) as stranger:
            with pytest.raises(Unauthorized) as refused:
                stranger.stats()
            assert refused.value.status_code == 401
            assert refused.value.error == "UnauthorizedError"
            assert stranger.health().status == "ok"  # probes need no key


@pytest.mark.anyio
async def test_async_errors_are_mapped(server_url: str, api_key: str) -> None:
    async with AsyncSFMClient(server_url, api_key) as sfm:
        with pytest.raises(NotFound) as missing:
            await sfm.get("404,404")
        assert (missing.value.status_code, missing.value.attempts) == (404, 1)
        with pytest.raises(InvalidInput) as bad:
            await sfm.store("1", {"text": "one number is not a coordinate"})
        assert bad.value.status_code == 422
        assert "coord" in bad.value.detail
    async with AsyncSFMClient(server_url, "sfm_not_a_key") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.search("anything")


# -- iter_memories ---------------------------------------------------------------------------


def _batch(count: int) -> list[dict[str, object]]:
    return [
        {
            "coord": f"{i},7",
            "payload": {"text": f"note number {i}"},
            "memory_type": "semantic" if i % 3 == 0 else "episodic",
        }
        for i in range(count)
    ]


def test_iter_memories_follows_cursors(server_url: str, api_key: str) -> None:
    transport = CountingTransport()
    with SFMClient(server_url, api_key, transport=transport) as sfm:
        sfm.store_batch(_batch(23))
        transport.sent.clear()
        coords = [m.coord for m in sfm.iter_memories(page_size=5)]
        assert coords == [f"{i},7" for i in range(23)]
        assert len(transport.sent) == 5  # 5 + 5 + 5 + 5 + 3
        assert all(r.url.path == "/memories" for r in transport.sent)
        semantic = [m.coord for m in sfm.iter_memories(memory_type="semantic", page_size=2)]
        assert semantic == [f"{i},7" for i in range(0, 23, 3)]
    with SFMClient(server_url, api_key) as plain:
        assert [m.coord for m in plain.iter_memories(page_size=1000)][-1] == "22,7"


@pytest.mark.anyio
async def test_async_iter_memories_follows_cursors(server_url: str, api_key: str) -> None:
    transport = AsyncCountingTransport()
    async with AsyncSFMClient(server_url, api_key, transport=transport) as sfm:
        await sfm.store_batch(_batch(10))
        transport.sent.clear()
        coords = [m.coord async for m in sfm.iter_memories(page_size=4)]
        assert coords == [f"{i},7" for i in range(10)]
        assert len(transport.sent) == 3
        episodic = [m.coord async for m in sfm.iter_memories(MemoryType.EPISODIC, page_size=3)]
        assert episodic == [f"{i},7" for i in range(10) if i % 3]


# -- retries ---------------------------------------------------------------------------------


def test_closed_port_fails_after_the_retries_in_bounded_time() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with SFMClient(url, "sfm_key", retries=2, backoff=0.1) as sfm:
        calls: list[Callable[[], object]] = [
            lambda: sfm.get("1,2"),
            lambda: sfm.store("1,2", {"text": "x"}),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(ConnectionFailed) as failed:
                call()
            elapsed = time.monotonic() - started
            assert failed.value.attempts == 3
            assert failed.value.maybe_applied is False
            assert failed.value.status_code is None
            assert "ConnectError" in failed.value.detail
            assert "after 3 attempts" in str(failed.value)
            assert 0.3 <= elapsed < 3.0  # waits of 0.1 and 0.2, each plus up to 0.1 jitter
    with SFMClient(url, "sfm_key", retries=0) as once:
        with pytest.raises(ConnectionFailed) as failed:
            once.health()
        assert failed.value.attempts == 1
    started = time.monotonic()
    with SFMClient(url, "sfm_key") as default, pytest.raises(ConnectionFailed) as failed:
        default.stats()
    assert failed.value.attempts == 4
    assert time.monotonic() - started < 5.0  # 0.25 + 0.5 + 1.0, plus jitter


@pytest.mark.anyio
async def test_async_closed_port_fails_after_the_retries_in_bounded_time() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncSFMClient(url, "sfm_key", retries=3, backoff=0.05) as sfm:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as failed:
            await sfm.search("anything")
        assert failed.value.attempts == 4
        assert time.monotonic() - started < 3.0
        with pytest.raises(ConnectionFailed) as failed:
            await sfm.delete("1,2")
        assert failed.value.attempts == 4


def test_a_write_that_may_have_been_applied_is_not_retried() -> None:
    # A socket that listens and never answers: connecting succeeds and the request is sent
    # (the kernel queues both), the answer never comes. A real server that is merely slow
    # made this a race: a retried read could be answered within a tight timeout.
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        impatient = httpx.Timeout(0.2, connect=5.0)
        with SFMClient(url, "sfm_key", timeout=impatient, retries=2, backoff=0.05) as sfm:
            with pytest.raises(ConnectionFailed) as write:
                sfm.store("3,3", {"text": "a store whose answer we do not wait for"})
            assert write.value.maybe_applied is True
            assert write.value.attempts == 1
            with pytest.raises(ConnectionFailed) as read:
                sfm.search("a read is safe to send again")
            assert read.value.attempts == 3


RATE_LIMIT = 5


@pytest.fixture(scope="module")
def milvus_gone_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server on a collection of its own, which is dropped once it is serving, and
    a budget of RATE_LIMIT requests a minute per key."""
    settings = stack.settings.model_copy(
        update={"milvus_collection": f"{stack.settings.milvus_collection}_gone"}
    )
    milvus = MilvusStore(settings)
    env = server_env(settings, SOMA_RATE_LIMIT_PER_MINUTE=str(RATE_LIMIT))
    try:
        # The real bootstrap sets up whatever the server needs (the database is migrated).
        # Set-up, not what is tested: it may wait 30 s (not 5) for a busy Milvus to load the
        # new collection.
        setup = subprocess.run(
            [sys.executable, "-m", "somafractalmemory.bootstrap"],
            env={**env, "SOMA_STORE_TIMEOUT": "30"},
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert setup.returncode == 0, setup.stderr[-4000:]
        with running_server(env, tmp_path_factory.mktemp("gone") / "server.log") as server:
            milvus.client.drop_collection(milvus.collection)
            yield server.url
    finally:
        milvus.close()


def test_store_unavailable_is_retried_then_raised(milvus_gone_url: str, api_key: str) -> None:
    with SFMClient(milvus_gone_url, api_key, retries=2, backoff=0.05) as sfm:
        health = sfm.health()  # a 503 with the health body is an answer
        assert (health.status, health.milvus, health.postgres) == ("down", "down", "up")
        assert "milvus" in health.errors
        with pytest.raises(StoreUnavailable) as down:
            sfm.search("anything at all")
        assert down.value.status_code == 503
        assert down.value.attempts == 3
        assert "milvus" in down.value.detail
        assert isinstance(down.value, ServerError)


@pytest.mark.anyio
async def test_async_store_unavailable_and_health(milvus_gone_url: str, api_key: str) -> None:
    async with AsyncSFMClient(milvus_gone_url, api_key, retries=1, backoff=0.05) as sfm:
        assert (await sfm.health()).status == "down"
        assert (await sfm.ready()).milvus == "down"
        with pytest.raises(StoreUnavailable) as down:
            await sfm.stats()
        assert down.value.attempts == 2


def test_rate_limited_is_not_retried_and_says_when(milvus_gone_url: str, api_key: str) -> None:
    with SFMClient(milvus_gone_url, api_key, retries=3, backoff=0.05) as sfm:
        # A fixed one-minute window: at most RATE_LIMIT + 1 answers pass before a 429, even
        # if the window turns over in the middle.
        for _ in range(2 * RATE_LIMIT + 2):
            try:
                sfm.get("1,1")
            except NotFound:
                continue
            except RateLimited as exc:
                limited = exc
                break
        else:
            pytest.fail("never rate limited")
    assert (limited.status_code, limited.error, limited.attempts) == (429, "RateLimitedError", 1)
    assert limited.retry_after is not None
    assert 1 <= limited.retry_after <= 60
