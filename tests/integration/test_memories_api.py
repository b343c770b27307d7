"""The memory endpoints end to end on the real PostgreSQL, Milvus and Redis."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from somafractalmemory.stack import Stack
from testkit.stores import tenant_of, vector_ids

Headers = dict[str, str]


def store(
    client: TestClient,
    auth: Headers,
    coord: str,
    text: str,
    fields: dict[str, object] | None = None,
    **extra: object,
) -> dict:
    payload = {"text": text, **(fields or {})}
    response = client.post(
        "/memories", headers=auth, json={"coord": coord, "payload": payload, **extra}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_store_get_replace_keeps_created_at(client: TestClient, auth: Headers) -> None:
    first = client.post(
        "/memories",
        headers=auth,
        json={"coord": "1,2,3", "payload": {"text": "tea at noon"}, "importance": 0.9},
    )
    assert first.status_code == 201
    assert first.json()["coord"] == "1,2,3"
    assert first.json()["importance"] == 0.9

    again = client.post(
        "/memories",
        headers=auth,
        json={
            "coord": "1.0, 2, 3",
            "payload": {"text": "coffee at noon"},
            "memory_type": "semantic",
        },
    )
    assert again.status_code == 200
    body = again.json()
    assert body["payload"] == {"text": "coffee at noon"}
    assert body["memory_type"] == "semantic"
    assert body["created_at"] == first.json()["created_at"]
    assert body["updated_at"] > first.json()["updated_at"]

    got = client.get("/memories/1.00,2,3.0", headers=auth)
    assert got.status_code == 200
    assert got.json()["payload"] == {"text": "coffee at noon"}


def test_replace_updates_the_vector_too(client: TestClient, auth: Headers) -> None:
    store(client, auth, "5,5", "the cat sleeps on the warm windowsill")
    store(client, auth, "5,5", "quarterly revenue grew by eight percent")
    hits = client.post(
        "/memories/search",
        headers=auth,
        json={"query": "quarterly revenue grew", "top_k": 5, "mode": "vector"},
    ).json()["results"]
    assert [h["coord"] for h in hits] == ["5,5"]
    assert hits[0]["payload"]["text"].startswith("quarterly")
    assert hits[0]["score"] > 0.8


def test_search_ranks_the_exact_text_first_and_filters(client: TestClient, auth: Headers) -> None:
    texts = {
        "1,1": ("My sister Ana lives in Lisbon", {"topic": "family", "n": 1}),
        "2,2": ("The flight to Tokyo leaves at 7am", {"topic": "travel", "n": 2}),
        "3,3": ("I am allergic to peanuts", {"topic": "health", "n": 3}),
        "4,4": ("Ana's birthday is on March 3rd", {"topic": "family", "n": 4}),
    }
    for coord, (text, extra) in texts.items():
        kind = "semantic" if coord == "3,3" else "episodic"
        client.post(
            "/memories",
            headers=auth,
            json={"coord": coord, "payload": {"text": text, **extra}, "memory_type": kind},
        )
    for coord, (text, _extra) in texts.items():
        results = client.post("/memories/search", headers=auth, json={"query": text}).json()
        assert results["results"][0]["coord"] == coord
        scores = [r["score"] for r in results["results"]]
        assert scores == sorted(scores, reverse=True)

    family = client.post(
        "/memories/search",
        headers=auth,
        json={"query": "Ana", "filters": {"topic": "family"}, "top_k": 10},
    ).json()["results"]
    assert sorted(r["coord"] for r in family) == ["1,1", "4,4"]

    numeric = client.post(
        "/memories/search", headers=auth, json={"query": "Ana", "filters": {"n": 4}}
    ).json()["results"]
    assert [r["coord"] for r in numeric] == ["4,4"]

    semantic = client.post(
        "/memories/search", headers=auth, json={"query": "food", "memory_type": "semantic"}
    ).json()["results"]
    assert [r["coord"] for r in semantic] == ["3,3"]
    assert set(semantic[0]) >= {
        "coord",
        "score",
        "payload",
        "memory_type",
        "importance",
        "created_at",
    }


@pytest.mark.parametrize(
    "value",
    [
        'family" or tenant_id > 0 or "',
        'family\\" || true || \\"',
        "x') OR 1=1 --",
        "\u00e9\u4e2d\U0001f600",
        "line\nbreak\r\ttab\x01\x7f\u0085",  # control characters, as they are or \n, \r
    ],
)
def test_filter_values_cannot_break_out_of_the_expression(
    client: TestClient, auth: Headers, value: str
) -> None:
    """A value that would widen an unescaped expression matches only itself, in each store."""
    store(client, auth, "9,9", "a memory that must not leak", {"topic": "family"})
    store(client, auth, "9,8", "a memory whose topic is the odd value", {"topic": value})
    for mode in ("vector", "keyword", "hybrid"):

        def found(topic: str, mode: str = mode) -> list[str]:
            body = {"query": "memory", "mode": mode, "filters": {"topic": topic}}
            response = client.post("/memories/search", headers=auth, json=body)
            assert response.status_code == 200, response.text
            return [r["coord"] for r in response.json()["results"]]

        assert found(value) == ["9,8"], mode
        # The positive control: the same path finds the other memory when asked for it.
        assert found("family") == ["9,9"], mode


def test_filter_keys_are_checked(client: TestClient, auth: Headers) -> None:
    response = client.post(
        "/memories/search",
        headers=auth,
        json={"query": "x", "filters": {'topic"] == 1 or attrs["a': "v"}},
    )
    assert response.status_code == 422
    assert response.json()["error"] == "InvalidInputError"
    assert "filters" in response.json()["detail"]


def test_delete_removes_it_from_every_store(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    store(client, auth, "8,8", "the spare key is under the blue flowerpot")
    assert client.get("/memories/8,8", headers=auth).status_code == 200  # now cached
    memory_id = stack.postgres.memory_ids(tenant.id, ["8,8"])["8,8"]
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == {memory_id}
    assert stack.cache.get(tenant.id, "8,8") is not None

    deleted = client.delete("/memories/8.0,8", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": True}
    assert client.get("/memories/8,8", headers=auth).status_code == 404
    assert stack.cache.get(tenant.id, "8,8") is None
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == set()
    hits = client.post(
        "/memories/search", headers=auth, json={"query": "spare key under the blue flowerpot"}
    ).json()["results"]
    assert "8,8" not in [h["coord"] for h in hits]
    stats = client.get("/stats", headers=auth).json()
    assert stats["memories"] == 0
    assert stats["vectors"] == 0
    assert client.delete("/memories/8,8", headers=auth).status_code == 404


def test_replace_invalidates_the_cache(client: TestClient, auth: Headers) -> None:
    store(client, auth, "6,6", "first version")
    assert client.get("/memories/6,6", headers=auth).json()["payload"]["text"] == "first version"
    store(client, auth, "6,6", "second version")
    assert client.get("/memories/6,6", headers=auth).json()["payload"]["text"] == "second version"


def test_batch_is_all_or_nothing(client: TestClient, auth: Headers) -> None:
    store(client, auth, "0,1", "already here")
    batch = [
        {"coord": f"0,{i}", "payload": {"text": f"batch memory number {i}"}} for i in range(1, 6)
    ]
    response = client.post("/memories/batch", headers=auth, json={"memories": batch})
    assert response.status_code == 201
    assert response.json()["results"][0] == {
        "coord": "0,1",
        "status": "replaced",
        "duplicate_of": [],
        "similar": [],
    }
    assert [r["status"] for r in response.json()["results"][1:]] == ["created"] * 4

    bad = [
        {"coord": "50,1", "payload": {"text": "fine"}},
        {"coord": "50,2", "payload": {"text": ""}},
    ]
    refused = client.post("/memories/batch", headers=auth, json={"memories": bad})
    assert refused.status_code == 422
    assert client.get("/memories/50,1", headers=auth).status_code == 404

    duplicate = [
        {"coord": "60,1", "payload": {"text": "a"}},
        {"coord": "60.0,1", "payload": {"text": "b"}},
    ]
    refused = client.post("/memories/batch", headers=auth, json={"memories": duplicate})
    assert refused.status_code == 422
    assert "memories[1].coord" in refused.json()["detail"]

    # Too many memories is a field that is wrong (422 naming it), not a body over the byte
    # limit (413): these 1,001 are about 50 kB.
    too_many = [{"coord": f"1,{i}", "payload": {"text": "x"}} for i in range(1001)]
    refused = client.post("/memories/batch", headers=auth, json={"memories": too_many})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == "InvalidInputError"
    assert "memories" in refused.json()["detail"]
    stats = client.get("/stats", headers=auth).json()
    assert stats["memories"] == stats["vectors"] == 5


def test_listing_pages_with_a_cursor(client: TestClient, auth: Headers) -> None:
    for i in range(7):
        store(client, auth, f"{i},0", f"note {i}", memory_type="semantic" if i % 2 else "episodic")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/memories", headers=auth, params=params).json()
        seen += [m["coord"] for m in page["memories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"{i},0" for i in range(7)]
    semantic = client.get("/memories", headers=auth, params={"memory_type": "semantic"}).json()
    assert [m["coord"] for m in semantic["memories"]] == ["1,0", "3,0", "5,0"]


def test_tenants_never_see_each_other(client: TestClient, make_key: Callable[[], Headers]) -> None:
    alice, bob = make_key(), make_key()
    store(client, alice, "1,2,3", "alice's secret: the vault code is 4471")
    store(client, alice, "4,5,6", "alice's second memory")
    store(client, bob, "1,2,3", "bob's note about lunch")

    assert (
        client.get("/memories/1,2,3", headers=alice).json()["payload"]["text"].startswith("alice")
    )
    assert client.get("/memories/1,2,3", headers=bob).json()["payload"]["text"].startswith("bob")
    assert client.get("/memories/4,5,6", headers=bob).status_code == 404

    hits = client.post(
        "/memories/search", headers=bob, json={"query": "vault code 4471", "top_k": 100}
    ).json()["results"]
    assert [h["coord"] for h in hits] == ["1,2,3"]
    assert hits[0]["payload"]["text"].startswith("bob")

    assert client.delete("/memories/4,5,6", headers=bob).status_code == 404
    link = client.post(
        "/graph/link", headers=bob, json={"from_coord": "1,2,3", "to_coord": "4,5,6"}
    )
    assert link.status_code == 404
    assert client.get("/graph/neighbors", headers=bob, params={"coord": "4,5,6"}).status_code == 404
    listed = client.get("/memories", headers=bob).json()["memories"]
    assert [m["coord"] for m in listed] == ["1,2,3"]
    assert client.get("/stats", headers=bob).json()["memories"] == 1

    assert client.delete("/memories/1,2,3", headers=bob).status_code == 200
    assert client.get("/memories/1,2,3", headers=alice).status_code == 200
    assert client.get("/stats", headers=alice).json()["vectors"] == 2


def test_keys_are_required_and_revocation_is_immediate(client: TestClient, stack: Stack) -> None:
    assert client.get("/stats").status_code == 401
    assert client.get("/stats", headers={"Authorization": "Bearer sfm_nope"}).status_code == 401
    key, info = stack.keys.create("revocable")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/stats", headers=headers).status_code == 200
    assert stack.keys.revoke(info.id)
    # The server may hold the key's tenant in its cache until PostgreSQL's notice of the
    # change reaches it (milliseconds; tests/integration/test_key_cache.py).
    deadline = time.monotonic() + 1.0
    while (refused := client.get("/stats", headers=headers)).status_code == 200:
        assert time.monotonic() < deadline, "the revoked key still works after 1 s"
        time.sleep(0.002)
    assert refused.status_code == 401
    assert refused.json()["error"] == "UnauthorizedError"
    assert not stack.keys.revoke(info.id)
    listed = {k.id: k for k in stack.keys.list()}
    assert listed[info.id].revoked_at is not None
    assert key not in repr(listed[info.id])


def test_isolation_on_paths_exports_and_listings(
    client: TestClient, make_key: Callable[[], Headers]
) -> None:
    alice, bob = make_key(), make_key()
    for coord in ("1,1", "2,2"):
        store(client, alice, coord, f"alice memory {coord}")
    client.post("/graph/link", headers=alice, json={"from_coord": "1,1", "to_coord": "2,2"})
    store(client, bob, "1,1", "bob memory")
    assert (
        client.get(
            "/graph/path", headers=bob, params={"from_coord": "1,1", "to_coord": "2,2"}
        ).status_code
        == 404
    )
    assert client.get("/graph/neighbors", headers=bob, params={"coord": "1,1"}).json() == {
        "neighbors": []
    }
    exported = client.get("/export", headers=bob).text
    assert "alice" not in exported
    assert "bob memory" in exported
    assert client.get("/stats", headers=bob).json()["links"] == 0
