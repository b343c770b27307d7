"""Redis stopped while serving: the cache goes, the service stays.

The app's Redis is a private ``redis-server`` the test kills (SIGKILL) and starts again on
the same port. While it is down /healthz answers 503 naming it and ``api_redis_up`` is 0, but
stores, reads and searches succeed; once it is back, health and the gauge recover, and what
changed during the outage is never served from what the cache held before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from somafractalmemory.api.app import create_app
from somafractalmemory.core.embedding import create_embedder
from somafractalmemory.core.search import Searcher
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack, create_cache
from somafractalmemory.stores.redis import MAX_PENDING_LOOKUPS
from testkit.stores import own_connection, with_updates
from tests.faults.support import PrivateRedis, metric

Headers = dict[str, str]


@pytest.fixture
def served(test_settings: Settings, private_redis: PrivateRedis) -> Iterator[TestClient]:
    """The app with the test stack's PostgreSQL and Milvus and the private Redis."""
    settings = with_updates(
        test_settings,
        redis_url=private_redis.url,
        milvus_uri=own_connection(test_settings.milvus_uri),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def cached_keys(redis_server: PrivateRedis) -> list[bytes]:
    return list(redis_server.client().scan_iter(match="*:mem:*"))


def store(client: TestClient, auth: Headers, coord: str, text: str) -> None:
    response = client.post(
        "/memories", json={"coord": coord, "payload": {"text": text}}, headers=auth
    )
    assert response.status_code in (200, 201), response.text


def test_requests_succeed_and_health_names_redis_while_it_is_down(
    served: TestClient, private_redis: PrivateRedis, auth: Headers
) -> None:
    store(served, auth, "1,1", "the lighthouse keeper counts ships at dawn")
    assert served.get("/memories/1,1", headers=auth).status_code == 200
    assert cached_keys(private_redis), "the read was not cached in the private Redis"

    private_redis.stop()

    health = served.get("/healthz")
    assert health.status_code == 503, health.text
    assert health.json()["redis"] == "down"
    assert f"127.0.0.1:{private_redis.port}" in health.json()["errors"]["redis"]
    assert health.json()["postgres"] == health.json()["milvus"] == "up"
    assert metric(served.get("/metrics").text, "api_redis_up") == 0
    assert served.get("/readyz").status_code == 200  # Redis does not count for readiness

    created = served.post(
        "/memories",
        json={"coord": "2,2", "payload": {"text": "a violin left on the night train"}},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    for coord in ("1,1", "2,2"):
        read = served.get(f"/memories/{coord}", headers=auth)
        assert read.status_code == 200, read.text
    found = served.post(
        "/memories/search", json={"query": "violin on a train", "top_k": 2}, headers=auth
    )
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["coord"] == "2,2"
    assert metric(served.get("/metrics").text, "api_redis_up") == 0

    private_redis.start()

    health = served.get("/healthz")
    assert health.status_code == 200, health.text
    assert health.json()["redis"] == "up"
    assert metric(served.get("/metrics").text, "api_redis_up") == 1
    assert served.get("/memories/2,2", headers=auth).status_code == 200


def test_a_hung_redis_does_not_slow_a_search(
    served: TestClient, private_redis: PrivateRedis, auth: Headers
) -> None:
    """Redis frozen (SIGSTOP: connected, never answering): a search does not wait for its
    query-vector lookup, which only gives up at the client's 0.5 s timeout; it embeds the
    query and answers."""
    store(served, auth, "5,5", "a kite caught in the old oak tree")
    warm = served.post("/memories/search", json={"query": "warm-up", "top_k": 1}, headers=auth)
    assert warm.status_code == 200, warm.text
    private_redis.pause()
    try:
        started = time.perf_counter()
        found = served.post(
            "/memories/search",
            json={"query": "a kite stuck in a tree", "mode": "vector", "top_k": 1},
            headers=auth,
        )
        elapsed = time.perf_counter() - started
    finally:
        private_redis.resume()
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["coord"] == "5,5"
    assert "embed;dur=" in found.headers["Server-Timing"]
    assert elapsed < 0.5, f"the search waited {elapsed:.2f} s for the hung Redis"


def test_query_vector_lookups_are_bounded_while_redis_hangs(
    stack: Stack, test_settings: Settings, private_redis: PrivateRedis
) -> None:
    """Each lookup of a hung Redis waits for its 0.5 s timeout; past
    ``MAX_PENDING_LOOKUPS`` waiting, no more are made (the query is embedded, as on a miss),
    so a hung Redis cannot pile up work without end. After the close, none are made."""
    settings = with_updates(test_settings, redis_url=private_redis.url)
    cache = create_cache(settings)
    embedder = create_embedder(settings)
    searcher = Searcher(stack.postgres, stack.milvus, embedder, cache)
    assert cache.get_query_vector(embedder.model_name, "warm") is None  # connected
    private_redis.pause()
    try:
        pending = [cache.lookup_query_vector("m", f"q{i}") for i in range(MAX_PENDING_LOOKUPS)]
        assert all(p is not None for p in pending)
        assert cache.lookup_query_vector("m", "one too many") is None
        assert searcher.query_vector("a kite in a tree") == pytest.approx(
            embedder.embed_one("a kite in a tree"), abs=1e-6
        )
    finally:
        private_redis.resume()
    assert all(p is not None and p.result(timeout=30) is None for p in pending)
    cache.close()
    assert cache.lookup_query_vector("m", "after the close") is None


@pytest.mark.parametrize("restart_with_old_contents", [True, False], ids=["kept", "empty"])
def test_changes_made_during_the_outage_are_not_hidden_by_the_old_cache(
    served: TestClient,
    private_redis: PrivateRedis,
    make_key: Callable[[], Headers],
    restart_with_old_contents: bool,
) -> None:
    """Deleted and replaced while Redis was away: afterwards the reads show the change.

    With ``kept`` the restarted Redis still holds the entries cached before the outage (as
    a Redis behind a network partition would): they are checked to be there, so the test
    can see a stale read if the service served one."""
    auth = make_key()
    store(served, auth, "3,3", "a letter that will be burned")
    store(served, auth, "4,4", "the first draft of the speech")
    for coord in ("3,3", "4,4"):
        assert served.get(f"/memories/{coord}", headers=auth).status_code == 200
    before = set(cached_keys(private_redis))
    assert len(before) >= 2
    if restart_with_old_contents:
        private_redis.snapshot()

    private_redis.stop()
    deleted = served.delete("/memories/3,3", headers=auth)
    assert deleted.status_code == 200, deleted.text
    store(served, auth, "4,4", "the final draft of the speech")
    private_redis.start()

    if restart_with_old_contents:
        assert before <= set(cached_keys(private_redis)), "the old entries were not restored"
    assert served.get("/healthz").status_code == 200
    gone = served.get("/memories/3,3", headers=auth)
    assert gone.status_code == 404, gone.text
    replaced = served.get("/memories/4,4", headers=auth)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["payload"]["text"] == "the final draft of the speech"


# Each request of the mix while Redis hangs: each of its cache calls gives up at the client's
# 0.5 s socket timeout. Measured here: reads by key and item writes about 1.0 s (two calls),
# a delete about 1.5 s (three), searches, listing and the graph no wait at all (0.01-0.05 s).
# The bound is three timeouts and a second for a loaded machine: a request that waited on
# Redis more often, or without a timeout, fails it.
FROZEN_BOUND_SECONDS = 3 * 0.5 + 1.0


def test_every_kind_of_request_answers_in_bounded_time_while_redis_hangs(
    served: TestClient, private_redis: PrivateRedis, make_key: Callable[[], Headers]
) -> None:
    """Redis frozen (SIGSTOP) under the whole request mix, each request timed and its answer
    checked; after the thaw, what changed meanwhile is read as changed."""
    auth = make_key()
    store(served, auth, "1,1", "the lighthouse keeper counts ships at dawn")
    store(served, auth, "2,2", "a violin left on the night train")
    store(served, auth, "3,3", "a letter that will be burned")
    item = {"namespace": ["notes"], "key": "k", "value": {"text": "an item about tea"}}
    assert served.put("/items", headers=auth, json=item).status_code == 201
    for coord in ("1,1", "2,2", "3,3"):
        assert served.get(f"/memories/{coord}", headers=auth).status_code == 200  # cached
    assert cached_keys(private_redis), "nothing was cached in the private Redis"
    warm = served.post("/memories/search", json={"query": "warm-up"}, headers=auth)
    assert warm.status_code == 200, warm.text

    link = {"from_coord": "1,1", "to_coord": "2,2", "link_type": "next"}
    item_params = {"namespace": ["notes"], "key": "k"}
    mix: list[tuple[str, str, str, dict | None, dict | None, int]] = [
        ("store", "POST", "/memories", {"coord": "4,4", "payload": {"text": "a kite"}}, None, 201),
        (
            "replace",
            "POST",
            "/memories",
            {"coord": "2,2", "payload": {"text": "a cello"}},
            None,
            200,
        ),
        (
            "batch",
            "POST",
            "/memories/batch",
            {"memories": [{"coord": "5,5", "payload": {"text": "an oak"}}]},
            None,
            201,
        ),
        ("get cached", "GET", "/memories/1,1", None, None, 200),
        ("get new", "GET", "/memories/4,4", None, None, 200),
        ("get missing", "GET", "/memories/9,9", None, None, 404),
        ("list", "GET", "/memories", None, {"limit": 10}, 200),
        ("search", "POST", "/memories/search", {"query": "a violin on a train"}, None, 200),
        ("keyword", "POST", "/memories/search", {"query": "kite", "mode": "keyword"}, None, 200),
        ("delete", "DELETE", "/memories/3,3", None, None, 200),
        ("link", "POST", "/graph/link", link, None, 201),
        ("neighbors", "GET", "/graph/neighbors", None, {"coord": "1,1"}, 200),
        ("path", "GET", "/graph/path", None, {"from_coord": "1,1", "to_coord": "2,2"}, 200),
        ("history", "GET", "/memories/2,2/history", None, None, 200),
        ("put item", "PUT", "/items", item | {"value": {"text": "tea, green"}}, None, 200),
        ("get item", "GET", "/items", None, item_params, 200),
        ("search items", "POST", "/items/search", {"query": "tea"}, None, 200),
        ("stats", "GET", "/stats", None, None, 200),
        ("delete item", "DELETE", "/items", None, item_params, 200),
        ("healthz", "GET", "/healthz", None, None, 503),
        ("readyz", "GET", "/readyz", None, None, 200),
    ]
    private_redis.pause()
    answers: dict[str, tuple[int, float, dict]] = {}
    try:
        for name, method, path, body, params, _status in mix:
            started = time.perf_counter()
            response = served.request(method, path, json=body, params=params, headers=auth)
            answers[name] = (response.status_code, time.perf_counter() - started, response.json())
    finally:
        private_redis.resume()
    statuses = {name: answers[name][0] for name, *_ in mix}
    assert statuses == {name: status for name, *_, status in mix}, answers
    slow = {name: round(s, 2) for name, (_c, s, _b) in answers.items() if s > FROZEN_BOUND_SECONDS}
    assert slow == {}, f"requests slower than {FROZEN_BOUND_SECONDS} s while Redis hung: {slow}"
    assert answers["get cached"][2]["payload"]["text"].startswith("the lighthouse")
    assert answers["search"][2]["results"][0]["coord"] == "2,2"
    assert [r["coord"] for r in answers["keyword"][2]["results"]] == ["4,4"]
    assert answers["path"][2]["path"] == ["1,1", "2,2"]
    assert answers["get item"][2]["value"] == {"text": "tea, green"}
    assert answers["stats"][2]["memories"] == 4
    assert answers["healthz"][2]["redis"] == "down"

    # Thawed, with what it cached before the freeze: the changes are read as changed.
    assert served.get("/memories/3,3", headers=auth).status_code == 404
    replaced = served.get("/memories/2,2", headers=auth)
    assert replaced.json()["payload"]["text"] == "a cello", replaced.text
    assert served.get("/items", headers=auth, params=item_params).status_code == 404
