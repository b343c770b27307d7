"""Per-key rate limits (in Redis, and still when Redis is down) and payload limits."""

from __future__ import annotations

import socket

from fastapi.testclient import TestClient
from pydantic import SecretStr

from somafractalmemory.api.app import create_app
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _limited(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"rate_limit_per_minute": 5, **changes})


def _hammer(client: TestClient, headers: dict[str, str], times: int) -> list[int]:
    return [client.get("/stats", headers=headers).status_code for _ in range(times)]


def test_rate_limit_answers_429_per_key(stack: Stack) -> None:
    with TestClient(create_app(_limited(stack.settings))) as client:
        first, _ = stack.keys.create("rate-limited-a")
        second, _ = stack.keys.create("rate-limited-b")
        a = {"Authorization": f"Bearer {first}"}
        b = {"Authorization": f"Bearer {second}"}
        statuses = _hammer(client, a, 7)
        if statuses[:5] != [200] * 5:  # the minute rolled over mid-test: try once more
            statuses = _hammer(client, a, 7)
        assert statuses[5:] == [429, 429]
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
        key, _ = stack.keys.create("rate-limited-no-redis")
        headers = {"Authorization": f"Bearer {key}"}
        statuses = _hammer(client, headers, 7)
        if statuses[:5] != [200] * 5:
            statuses = _hammer(client, headers, 7)
        assert statuses[5:] == [429, 429]
        assert "api_redis_up 0.0" in client.get("/metrics").text


def test_payload_with_too_many_keys(client: TestClient, auth: dict[str, str]) -> None:
    payload = {f"k{i}": i for i in range(1001)}
    payload["text"] = "wide"
    response = client.post("/memories", headers=auth, json={"coord": "1,2", "payload": payload})
    assert response.status_code == 422
    assert "at most 1000 keys" in response.json()["detail"]
