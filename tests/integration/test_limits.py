"""Per-key rate limits (in Redis, and still when Redis is down) and payload limits."""

from __future__ import annotations

import socket
import time
import uuid

import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from somafractalmemory.api.app import create_app
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from somafractalmemory.stores.rate_limit import RateLimiter


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _limited(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"rate_limit_per_minute": 5, **changes})


def _hammer(
    client: TestClient, stack: Stack, tenant: str, times: int
) -> tuple[dict[str, str], list[int]]:
    """A new key's headers and the statuses of ``times`` requests with it, all in one
    one-minute window: tried again with another new key when the minute rolls over."""
    while True:
        key, _ = stack.keys.create(tenant)
        headers = {"Authorization": f"Bearer {key}"}
        window = time.time() // 60
        statuses = [client.get("/stats", headers=headers).status_code for _ in range(times)]
        if time.time() // 60 == window:
            return headers, statuses


def test_rate_limit_answers_429_per_key(stack: Stack) -> None:
    with TestClient(create_app(_limited(stack.settings))) as client:
        second, _ = stack.keys.create("rate-limited-b")
        b = {"Authorization": f"Bearer {second}"}
        a, statuses = _hammer(client, stack, "rate-limited-a", 7)
        assert statuses == [200] * 5 + [429, 429]
        refused = client.get("/stats", headers=a)
        assert refused.json()["error"] == "RateLimitedError"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert client.get("/stats", headers=b).status_code == 200  # budgets are per key
        assert client.get("/healthz").status_code == 200  # probes are never limited


def test_rate_limit_holds_when_redis_is_down(stack: Stack) -> None:
    settings = _limited(
        stack.settings,
        redis_url=SecretStr(f"redis://127.0.0.1:{_closed_port()}/0"),
        require_redis=False,
    )
    with TestClient(create_app(settings)) as client:
        _, statuses = _hammer(client, stack, "rate-limited-no-redis", 7)
        assert statuses == [200] * 5 + [429, 429]
        assert "api_redis_up 0.0" in client.get("/metrics").text


def test_rate_limit_budget_is_shared_between_processes(stack: Stack) -> None:
    # Two limiters on one Redis stand for two server processes; a fixed `now` keeps them in
    # one window. A limiter's thread syncs once after its first hit, then sleeps for
    # sync_seconds (an hour here), so the explicit sync() calls move the counts, and each
    # assertion holds whether or not the thread's first sync got there first.
    settings = _limited(stack.settings)
    first = RateLimiter(stack.cache.client, settings, sync_seconds=3600)
    second = RateLimiter(stack.cache.client, settings, sync_seconds=3600)
    key_id, now = uuid.uuid4().hex, time.time()
    redis_key = f"{settings.redis_key_prefix}:rl:{key_id}:{int(now // 60)}"
    try:
        assert [first.hit(key_id, now)[0] for _ in range(6)] == [True] * 5 + [False]
        assert first.sync()
        assert int(stack.cache.client.get(redis_key) or 0) == 6
        # The second process learns of the first's requests at its next sync, at the latest.
        second.hit(key_id, now)
        assert second.sync()
        assert second.hit(key_id, now)[0] is False
        assert second.sync()
        assert int(stack.cache.client.get(redis_key) or 0) == 8
        assert first.hit(key_id, now)[0] is False
    finally:
        first.close()
        second.close()


def test_rate_limit_counts_reach_redis_after_an_outage(stack: Stack) -> None:
    settings = _limited(stack.settings)
    down = redis.Redis(port=_closed_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    limiter = RateLimiter(down, settings, sync_seconds=3600)
    key_id, now = uuid.uuid4().hex, time.time()
    redis_key = f"{settings.redis_key_prefix}:rl:{key_id}:{int(now // 60)}"
    try:
        assert [limiter.hit(key_id, now)[0] for _ in range(3)] == [True] * 3
        assert not limiter.sync()  # Redis is away: the counts stay in the process
        assert [limiter.hit(key_id, now)[0] for _ in range(3)] == [True, True, False]
        limiter.client = stack.cache.client  # Redis is back
        assert limiter.sync()
        assert int(stack.cache.client.get(redis_key) or 0) == 6
    finally:
        limiter.close()


def test_rate_limit_budget_renews_each_minute(stack: Stack) -> None:
    limiter = RateLimiter(stack.cache.client, _limited(stack.settings), sync_seconds=3600)
    key_id, minute = uuid.uuid4().hex, (time.time() // 60) * 60
    try:
        assert [limiter.hit(key_id, minute + 1)[0] for _ in range(6)] == [True] * 5 + [False]
        assert limiter.hit(key_id, minute + 59) == (False, 1)
        assert limiter.hit(key_id, minute + 61) == (True, 59)  # a new window, a new budget
        assert limiter.sync()
        assert limiter.hit(key_id, minute + 62) == (True, 58)  # counted in the new window
    finally:
        limiter.close()


def test_payload_with_too_many_keys(client: TestClient, auth: dict[str, str]) -> None:
    payload = {f"k{i}": i for i in range(1001)}
    payload["text"] = "wide"
    response = client.post("/memories", headers=auth, json={"coord": "1,2", "payload": payload})
    assert response.status_code == 422
    assert "at most 1000 keys" in response.json()["detail"]
