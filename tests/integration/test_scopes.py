"""``GET /scopes/{scope}`` against the real stores: the distinct user, agent and session ids
of one tenant's memories, items and messages, in text order, paged by cursor; another
tenant's never; bad input a 422 naming the field."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient


def _values(client: TestClient, auth: dict[str, str], scope: str, **params: object) -> list[str]:
    answer = client.get(f"/scopes/{scope}", params=params, headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scope"] == scope
    assert body["next_cursor"] is None
    values: list[str] = body["values"]
    return values


def test_scope_values_come_from_every_kind_of_record_of_the_tenant(
    client: TestClient, make_key: Callable[[], dict[str, str]]
) -> None:
    auth, other = make_key(), make_key()
    assert _values(client, auth, "user_id") == []
    tag = uuid.uuid4().hex[:6]
    for coord, scopes in (
        ("1,1,1", {"user_id": f"bo-{tag}", "session_id": "s-2"}),
        ("1,1,2", {"user_id": f"ann-{tag}", "agent_id": "planner"}),
        ("1,1,3", {"user_id": f"ann-{tag}", "session_id": "s-1"}),  # a value twice: once
        ("1,1,4", {}),
    ):
        stored = client.post(
            "/memories", json={"coord": coord, "payload": {"text": coord}, **scopes}, headers=auth
        )
        assert stored.status_code == 201, stored.text
    posted = client.post(
        "/conversations/c-1/messages",
        json={
            "user_id": f"cy-{tag}",
            "agent_id": "helper",
            "session_id": "s-3",
            "messages": [{"role": "user", "content": "hello"}],
        },
        headers=auth,
    )
    assert posted.status_code == 201, posted.text
    # Another tenant's scopes are not this tenant's.
    theirs = client.post(
        "/memories",
        json={"coord": "1,1,1", "payload": {"text": "x"}, "user_id": f"dee-{tag}"},
        headers=other,
    )
    assert theirs.status_code == 201, theirs.text

    assert _values(client, auth, "user_id") == [f"ann-{tag}", f"bo-{tag}", f"cy-{tag}"]
    assert _values(client, auth, "agent_id") == ["helper", "planner"]
    assert _values(client, auth, "session_id") == ["s-1", "s-2", "s-3"]
    assert _values(client, other, "user_id") == [f"dee-{tag}"]
    assert _values(client, other, "session_id") == []


def test_scope_values_page_by_cursor(client: TestClient, auth: dict[str, str]) -> None:
    users = [f"user {n:02d} · é" for n in range(7)]  # spaces and non-ASCII survive the cursor
    batch = client.post(
        "/memories/batch",
        json={
            "memories": [
                {"coord": f"2,{n},0", "payload": {"text": u}, "user_id": u}
                for n, u in enumerate(reversed(users))
            ]
        },
        headers=auth,
    )
    assert batch.status_code == 201, batch.text
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/scopes/user_id", params=params, headers=auth)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["values"]) <= 3
        seen += body["values"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == users
    assert pages == 3


def test_scope_values_refuse_bad_input(client: TestClient, auth: dict[str, str]) -> None:
    wrong_scope = client.get("/scopes/tenant_id", headers=auth)
    assert wrong_scope.status_code == 422
    assert "scope" in wrong_scope.text
    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": "bTo1"}, "cursor"),  # base64url of "m:5": a memory list's cursor
    ):
        refused = client.get("/scopes/user_id", params=params, headers=auth)
        assert refused.status_code in (400, 422), refused.text
        assert field in refused.json()["detail"], refused.text
    assert client.get("/scopes/user_id").status_code == 401
