"""Webhooks end to end: a real SFM server (uvicorn subprocess) on stores of this module's
own, delivering to a real HTTP receiver in a process of its own that the tests kill and
restart (issue 19: "a webhook receiver killed and restarted mid-stream receives every change
at least once, each signature verifies, and writes never waited on it")."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.server import ApiServer, wait_until
from testkit.stores import new_tenant, private_stack, scalar
from testkit.webhook_receiver import Receiver

SECRET = "s3cret-of-sixteen-chars"
TIMEOUT = 1.0  # SOMA_WEBHOOK_TIMEOUT_SECONDS of the module's server
HOOK_ENV = {
    "SOMA_WEBHOOK_ALLOW_HTTP_LOOPBACK": "true",
    "SOMA_WEBHOOK_INTERVAL_SECONDS": "0.1",
    "SOMA_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT),
    "SOMA_WEBHOOK_BACKOFF_SECONDS": "0.2",
    "SOMA_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
    "SOMA_WEBHOOK_BATCH_SIZE": "50",
}


class HookServer(ApiServer):
    """The module's server, with the settings of the stores it runs on."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        super().__init__(
            settings, log_path, SOMA_REDIS_PREFIX=settings.redis_key_prefix, **HOOK_ENV
        )
        self.settings = settings


@pytest.fixture(scope="module")
def served(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HookServer]:
    """The module's server on a database and collections of its own (so no other process's
    dispatcher delivers its webhooks), started."""
    with private_stack(stack.settings, "_hooks") as settings:
        server = HookServer(settings, tmp_path_factory.mktemp("webhooks") / "server.log")
        try:
            server.start()
            yield server
        finally:
            server.kill()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    running = Receiver(tmp_path / "received.jsonl")
    running.start()
    try:
        yield running
    finally:
        running.kill()


def tenant_http(server: HookServer) -> httpx.Client:
    _tenant, headers = new_tenant(server.settings, "hooks")
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def register(http: httpx.Client, url: str, **extra: Any) -> dict[str, Any]:
    answer = http.post("/webhooks", json={"url": url, "secret": SECRET, **extra})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def store(http: httpx.Client, coord: str, text: str) -> float:
    """Store a memory; the seconds the write took."""
    began = time.perf_counter()
    answer = http.post("/memories", json={"coord": coord, "payload": {"text": text}})
    took = time.perf_counter() - began
    assert answer.status_code in (200, 201), answer.text
    return took


def feed(http: httpx.Client, after: str | None = None) -> list[dict[str, Any]]:
    """Every change in the tenant's feed after ``after`` (the truth deliveries must match)."""
    found: list[dict[str, Any]] = []
    while True:
        params = {"limit": 1000, **({"after": after} if after else {})}
        page = http.get("/changes", params=params).json()
        found += page["changes"]
        if not page["changes"]:
            return found
        after = page["next_cursor"]


def settled_feed(http: httpx.Client, after: str | None, count: int) -> list[dict[str, Any]]:
    """The feed once it holds the ``count`` changes written: a change enters it when every
    older transaction on the PostgreSQL server has ended, and other databases' transactions
    (other suites, benchmarks on the same server) count too."""

    def complete() -> list[dict[str, Any]] | None:
        found = feed(http, after)
        return found if len(found) >= count else None

    settled = wait_until(f"{count} changes in the feed", complete, 60, 0.1)
    assert settled is not None
    return settled


def ids_of(changes: list[dict[str, Any]]) -> set[int]:
    return {c["version_id"] for c in changes}


def verified(deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bodies of the deliveries, each signature and delivery id checked."""
    bodies = []
    for delivery in deliveries:
        raw = delivery["body"].encode()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(delivery["signature"], expected), delivery
        body = json.loads(raw)
        assert delivery["delivery"] == body["delivery_id"]
        bodies.append(body)
    return bodies


def delivered_ids(receiver: Receiver, webhook_id: int) -> list[int]:
    bodies = verified(receiver.received())
    return [
        change["version_id"]
        for body in bodies
        if body["webhook_id"] == webhook_id
        for change in body["changes"]
    ]


def wait_for_all(receiver: Receiver, webhook_id: int, expected: set[int], timeout: float) -> None:
    wait_until(
        "every change delivered",
        lambda: expected <= set(delivered_ids(receiver, webhook_id)),
        timeout,
        0.1,
    )


def webhook_state(http: httpx.Client, webhook_id: int) -> dict[str, Any]:
    (found,) = [w for w in http.get("/webhooks").json()["webhooks"] if w["id"] == webhook_id]
    return dict(found)


def test_every_change_arrives_signed_in_feed_order(served: HookServer, receiver: Receiver) -> None:
    with tenant_http(served) as http:
        start = http.get("/changes").json()["next_cursor"]
        hook = register(http, receiver.url)
        assert "secret" not in hook
        for i in range(5):
            store(http, f"{i},1", f"fact number {i}")
        store(http, "0,1", "fact number zero, replaced")
        assert http.delete("/memories/1,1").status_code == 200
        put = http.put("/items", json={"namespace": ["u", "notes"], "key": "k", "value": {"a": 1}})
        assert put.status_code in (200, 201), put.text
        changes = settled_feed(http, start, 8)
        assert len(changes) == 8
        wait_for_all(receiver, hook["id"], ids_of(changes), 30)
        bodies = verified(receiver.received())
        # In the feed's order, as the feed shows them; the body names where to resume.
        assert [c for b in bodies for c in b["changes"]] == changes
        assert {c["change"] for c in changes} == {"created", "replaced", "deleted"}
        assert {c["kind"] for c in changes} == {"memory", "item"}
        assert feed(http, bodies[-1]["next_cursor"]) == []
        wait_until("cursor stored", lambda: webhook_state(http, hook["id"])["attempts"] == 0, 10)
        state = webhook_state(http, hook["id"])
        assert state["cursor"] == bodies[-1]["next_cursor"]
        assert state["last_delivered_at"] is not None
        assert state["last_error"] is None


def test_a_receiver_killed_mid_stream_gets_every_change_and_writes_never_wait(
    served: HookServer, receiver: Receiver
) -> None:
    with tenant_http(served) as http:
        start = http.get("/changes").json()["next_cursor"]
        hook = register(http, receiver.url)
        up = [store(http, f"{i},2", f"before the kill {i}") for i in range(40)]
        wait_until("some deliveries", lambda: len(delivered_ids(receiver, hook["id"])) > 0, 30)
        receiver.kill()
        down = [store(http, f"{i},3", f"receiver down {i}") for i in range(120)]
        # The dispatcher was retrying meanwhile, backing off, and the writes went on.
        wait_until("a failure seen", lambda: webhook_state(http, hook["id"])["attempts"] > 0, 20)
        assert webhook_state(http, hook["id"])["last_error"]
        receiver.start()
        more = [store(http, f"{i},4", f"receiver back {i}") for i in range(40)]
        expected = ids_of(settled_feed(http, start, len(up) + len(down) + len(more)))
        assert len(expected) == len(up) + len(down) + len(more)
        wait_for_all(receiver, hook["id"], expected, 60)
    assert statistics.median(down) < 3 * statistics.median(up) + 0.05, (up, down)


def test_a_hanging_endpoint_never_slows_writes(served: HookServer) -> None:
    """An endpoint that accepts connections and never answers holds a delivery for the whole
    time out; writes meanwhile take no longer than without it."""
    with socket.socket() as hanging, tenant_http(served) as http:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen(64)
        baseline = [store(http, f"{i},5", f"no webhook yet {i}") for i in range(30)]
        hook = register(http, f"http://127.0.0.1:{hanging.getsockname()[1]}/hook")
        stalled = [store(http, f"{i},6", f"endpoint hanging {i}") for i in range(60)]
        wait_until(
            "a delivery timed out",
            lambda: "Timeout" in (webhook_state(http, hook["id"])["last_error"] or ""),
            20,
        )
        # A write that waited on a delivery would take the time out at least.
        assert sorted(stalled)[int(0.9 * len(stalled))] < TIMEOUT, stalled
        assert statistics.median(stalled) < 3 * statistics.median(baseline) + 0.05


def test_a_failing_endpoint_is_retried_with_backoff(served: HookServer, tmp_path: Path) -> None:
    failing = Receiver(tmp_path / "received.jsonl")
    failing.start(status=500)
    try:
        with tenant_http(served) as http:
            start = http.get("/changes").json()["next_cursor"]
            hook = register(http, failing.url)
            store(http, "1,7", "to an endpoint that fails")
            wait_until("retried", lambda: webhook_state(http, hook["id"])["attempts"] >= 3, 30)
            state = webhook_state(http, hook["id"])
            assert state["last_error"] == "HTTP 500"
            assert state["cursor"] == hook["cursor"]  # nothing acknowledged, nothing skipped
            # The same changes each time, under the same delivery id.
            assert len({d["delivery"] for d in failing.received()}) == 1
            failing.kill()
            failing.start(status=204)
            expected = ids_of(settled_feed(http, start, 1))
            wait_for_all(failing, hook["id"], expected, 30)
            wait_until("reset", lambda: webhook_state(http, hook["id"])["attempts"] == 0, 10)
    finally:
        failing.kill()


def test_a_server_killed_mid_stream_resumes_from_the_stored_cursor(
    served: HookServer, receiver: Receiver
) -> None:
    with tenant_http(served) as http:
        start = http.get("/changes").json()["next_cursor"]
        hook = register(http, receiver.url)
        for i in range(60):
            store(http, f"{i},8", f"before the server dies {i}")
        wait_until("some deliveries", lambda: len(delivered_ids(receiver, hook["id"])) > 0, 30)
        served.kill()
        served.start()
        for i in range(20):
            store(http, f"{i},9", f"after the restart {i}")
        changes = settled_feed(http, start, 80)
        assert len(changes) == 80
        # A lease held by the killed process expires (2 x the time out + 10 s) first.
        wait_for_all(receiver, hook["id"], ids_of(changes), 60)
        delivered = delivered_ids(receiver, hook["id"])
        # Resumed from the cursor: at most the batch in flight came twice, not the stream.
        assert len(delivered) - len(set(delivered)) <= 50


def test_two_replicas_share_the_deliveries_without_doubling_them(
    served: HookServer, receiver: Receiver, tmp_path: Path
) -> None:
    """Another server on the same database: each webhook is leased to one dispatcher at a
    time (FOR UPDATE SKIP LOCKED), so no change arrives twice while both are healthy."""
    replica = HookServer(served.settings, tmp_path / "replica.log")
    replica.start()
    try:
        with tenant_http(served) as http:
            start = http.get("/changes").json()["next_cursor"]
            hooks = [register(http, receiver.url)["id"] for _ in range(3)]
            for i in range(60):
                store(http, f"{i},12", f"two replicas deliver this {i}")
            expected = ids_of(settled_feed(http, start, 60))
            for hook in hooks:
                wait_for_all(receiver, hook, expected, 60)
                delivered = delivered_ids(receiver, hook)
                assert len(delivered) == len(set(delivered)) == len(expected)
    finally:
        replica.stop()


def test_tenants_see_and_get_only_their_own(served: HookServer, receiver: Receiver) -> None:
    with tenant_http(served) as mine, tenant_http(served) as theirs:
        hook = register(mine, receiver.url)
        other = register(theirs, receiver.url)
        store(theirs, "1,10", "someone else's memory")
        store(mine, "1,10", "my memory")
        mine_ids = ids_of(settled_feed(mine, None, 1))
        theirs_ids = ids_of(settled_feed(theirs, None, 1))
        wait_for_all(receiver, hook["id"], mine_ids, 30)
        wait_for_all(receiver, other["id"], theirs_ids, 30)
        assert set(delivered_ids(receiver, hook["id"])).isdisjoint(theirs_ids)
        assert set(delivered_ids(receiver, other["id"])).isdisjoint(mine_ids)
        listed = mine.get("/webhooks").json()["webhooks"]
        assert [w["id"] for w in listed] == [hook["id"]]
        assert SECRET not in mine.get("/webhooks").text
        # Another tenant's webhook is a webhook that does not exist.
        for answer in (mine.delete(f"/webhooks/{other['id']}"), mine.delete("/webhooks/999999")):
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"] == "NotFoundError"
        assert [w["id"] for w in theirs.get("/webhooks").json()["webhooks"]] == [other["id"]]
        assert mine.delete(f"/webhooks/{hook['id']}").json() == {"deleted": True}
        assert mine.get("/webhooks").json()["webhooks"] == []


def test_a_webhook_may_start_from_a_feed_cursor(served: HookServer, receiver: Receiver) -> None:
    with tenant_http(served) as http:
        start = http.get("/changes").json()["next_cursor"]
        store(http, "1,11", "written before the webhook")
        hook = register(http, receiver.url, after=start)
        expected = ids_of(settled_feed(http, start, 1))
        wait_for_all(receiver, hook["id"], expected, 30)


def test_webhooks_go_with_their_tenant(served: HookServer) -> None:
    dsn = served.settings.postgres_dsn.get_secret_value()
    rule = scalar(
        dsn,
        "SELECT confdeltype FROM pg_constraint WHERE conrelid = 'webhooks'::regclass "
        "AND contype = 'f'",
    )
    assert rule == "c"  # ON DELETE CASCADE


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://example.com/hook", "secret": SECRET}, "url"),
        ({"url": "ftp://127.0.0.1/hook", "secret": SECRET}, "url"),
        ({"url": "https:///nohost", "secret": SECRET}, "url"),
        ({"url": "https://127.0.0.1:99999/hook", "secret": SECRET}, "url"),
        ({"url": "", "secret": SECRET}, "url"),
        ({"url": "https://example.com/hook", "secret": "short"}, "secret"),
        ({"url": "https://example.com/hook"}, "secret"),
        (
            {"url": "https://example.com/hook", "secret": SECRET, "after": "bm90LWEtY3Vyc29y"},
            "after",
        ),
        ({"url": "https://example.com/hook", "secret": SECRET, "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    served: HookServer, body: dict[str, Any], field: str
) -> None:
    with tenant_http(served) as http:
        answer = http.post("/webhooks", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith(field), answer.text
        assert http.get("/webhooks").json()["webhooks"] == []


def test_limits_and_paths(served: HookServer) -> None:
    with tenant_http(served) as http:
        for _ in range(10):
            register(http, "https://example.com/hook")
        answer = http.post("/webhooks", json={"url": "https://example.com/x", "secret": SECRET})
        assert answer.status_code == 409, answer.text
        assert http.delete("/webhooks/not-a-number").status_code == 422
        unknown = http.get("/webhooks", params={"limit": 5})
        assert unknown.status_code == 422
        assert unknown.json()["detail"].startswith("limit")
        assert (
            http.post(
                "/webhooks", content=b"{", headers={"Content-Type": "application/json"}
            ).status_code
            == 400
        )
    assert httpx.get(f"{served.url}/webhooks").status_code == 401


def test_plain_http_to_loopback_needs_the_setting(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.post(
        "/webhooks", headers=auth, json={"url": "http://127.0.0.1:9/hook", "secret": SECRET}
    )
    assert answer.status_code == 422, answer.text
    assert "SOMA_WEBHOOK_ALLOW_HTTP_LOOPBACK" in answer.json()["detail"]
    assert answer.json()["detail"].startswith("url")
