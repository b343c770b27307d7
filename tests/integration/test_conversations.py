"""Conversations against the real stores: messages posted, listed in order, searched (a long
message found once, by its last sentence), idempotent, refused whole on bad input, deleted;
two users kept apart; one user erased everywhere."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from somafractalmemory.core.portability import import_lines, tenant_for_import
from somafractalmemory.models import Scopes
from somafractalmemory.stack import Stack
from somafractalmemory.stores.items_milvus import ItemVectorIndex


def _cid() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


def _post(
    client: TestClient,
    auth: dict[str, str],
    cid: str,
    messages: list[dict[str, Any]],
    **scopes: str,
) -> Any:
    return client.post(
        f"/conversations/{cid}/messages", json={**scopes, "messages": messages}, headers=auth
    )


def _count(stack: Stack, sql: str, **params: Any) -> int:
    with stack.postgres.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def _entities(stack: Stack, tenant_id: int) -> int:
    index = ItemVectorIndex(stack.milvus)
    return len(index.entities(index.default_collection, tenant_id))


def _tenant_id(stack: Stack, auth: dict[str, str]) -> int:
    return stack.keys.authenticate(auth["Authorization"].split()[1]).id


def test_messages_are_idempotent_and_listed_in_conversation_order(
    client: TestClient, auth: dict[str, str]
) -> None:
    cid = _cid()
    first = [
        {
            "id": "m2",
            "role": "assistant",
            "content": "Hello Ann",
            "created_at": "2026-01-01T10:00:01Z",
        },
        {"id": "m1", "role": "user", "content": "Hi", "created_at": "2026-01-01T10:00:00Z"},
        {"role": "system", "content": "no id, no time"},
    ]
    answer = _post(client, auth, cid, first, user_id="ann", agent_id="bot")
    assert answer.status_code == 201, answer.text
    statuses = answer.json()["messages"]
    assert [s["status"] for s in statuses] == ["created"] * 3
    assert statuses[2]["id"].startswith("#")
    # The same messages again: nothing stored (the one without an id is new each time).
    again = _post(client, auth, cid, first[:2], user_id="ann", agent_id="bot")
    assert again.status_code == 200
    assert [s["status"] for s in again.json()["messages"]] == ["unchanged", "unchanged"]
    listed = client.get(f"/conversations/{cid}/messages", headers=auth).json()["messages"]
    assert [m["id"] for m in listed] == ["m1", "m2", statuses[2]["id"]]
    assert listed[0]["role"] == "user"
    assert listed[0]["user_id"] == "ann"
    # Paged: a cursor resumes after the last one seen.
    page = client.get(f"/conversations/{cid}/messages?limit=2", headers=auth).json()
    assert [m["id"] for m in page["messages"]] == ["m1", "m2"]
    rest = client.get(
        f"/conversations/{cid}/messages?limit=2&cursor={page['next_cursor']}", headers=auth
    ).json()
    assert [m["id"] for m in rest["messages"]] == [statuses[2]["id"]]
    # Same id, other content: 409 naming it, and nothing of that request is written.
    conflict = _post(
        client,
        auth,
        cid,
        [
            {"id": "m3", "role": "user", "content": "new"},
            {"id": "m1", "role": "user", "content": "Hey"},
        ],
        user_id="ann",
        agent_id="bot",
    )
    assert conflict.status_code == 409
    assert "'m1'" in conflict.json()["detail"]
    assert "messages[1]" in conflict.json()["detail"]
    listed = client.get(f"/conversations/{cid}/messages", headers=auth).json()["messages"]
    assert len(listed) == 3


def test_bad_messages_are_refused_naming_the_field_and_nothing_is_written(
    client: TestClient, auth: dict[str, str], stack: Stack
) -> None:
    cid = _cid()
    ok = {"role": "user", "content": "fine"}
    cases = [
        ([ok, {"role": "robot", "content": "x"}], "role"),
        ([ok, {"role": "user", "content": "   "}], "content"),
        ([ok, {"role": "user", "content": ""}], "content"),
        ([{**ok, "id": "a"}, {**ok, "id": "a"}], "id"),
        ([{**ok, "id": "#1"}], "id"),
        ([ok] * 501, "messages"),
        ([], "messages"),
    ]
    for messages, field in cases:
        answer = _post(client, auth, cid, messages)
        assert 400 <= answer.status_code < 500, (field, answer.text)
        assert field in answer.text, (field, answer.text)
    bad_id = client.post("/conversations/a.b/messages", json={"messages": [ok]}, headers=auth)
    assert bad_id.status_code == 422
    assert "conversation_id" in bad_id.text
    tenant = _tenant_id(stack, auth)
    assert _count(stack, "SELECT count(*) FROM records WHERE tenant_id = :t", t=tenant) == 0
    assert _count(stack, "SELECT count(*) FROM outbox WHERE tenant_id = :t", t=tenant) == 0


LONG = " ".join(
    f"Sentence {i} talks about the weather, the garden and the neighbours' cat." for i in range(40)
)


def test_a_long_message_is_found_once_by_a_fact_at_its_end(
    client: TestClient, auth: dict[str, str], stack: Stack
) -> None:
    cid = _cid()
    fact = "My passport number is stored in the blue drawer of the oak desk."
    long_message = f"{LONG} {fact}"
    assert len(long_message.split()) >= 450
    others = [
        {"id": f"o{i}", "role": "user", "content": f"Unrelated note {i} about cooking pasta."}
        for i in range(5)
    ]
    messages = [{"id": "long", "role": "user", "content": long_message}, *others]
    assert _post(client, auth, cid, messages, user_id="u1").status_code == 201
    tenant = _tenant_id(stack, auth)
    chunks = _count(
        stack,
        "SELECT count(*) FROM record_vectors v JOIN records r ON r.id = v.record_id "
        "WHERE r.tenant_id = :t AND r.key = 'long'",
        t=tenant,
    )
    assert chunks >= 3
    for mode in ("vector", "hybrid", "keyword"):
        found = client.post(
            "/conversations/search",
            json={"query": "where is my passport kept? blue drawer", "mode": mode, "top_k": 3},
            headers=auth,
        )
        assert found.status_code == 200, found.text
        ids = [r["id"] for r in found.json()["results"]]
        assert ids[0] == "long", (mode, found.json())
        assert ids.count("long") == 1
        assert found.json()["results"][0]["content"] == long_message


def test_scoped_search_never_returns_another_users_messages(
    client: TestClient, auth: dict[str, str]
) -> None:
    ann, bob = _cid(), _cid()
    _post(
        client,
        auth,
        ann,
        [{"id": "1", "role": "user", "content": "I adore green tea"}],
        user_id="ann",
    )
    _post(
        client,
        auth,
        bob,
        [{"id": "1", "role": "user", "content": "I adore green tea too"}],
        user_id="bob",
    )
    for mode in ("vector", "keyword", "hybrid"):
        found = client.post(
            "/conversations/search",
            json={"query": "green tea", "mode": mode, "user_id": "ann"},
            headers=auth,
        ).json()["results"]
        assert [(r["conversation_id"], r["user_id"]) for r in found] == [(ann, "ann")], mode
    both = client.post("/conversations/search", json={"query": "green tea"}, headers=auth)
    assert {r["user_id"] for r in both.json()["results"]} == {"ann", "bob"}
    listed = client.get("/conversations?user_id=bob", headers=auth).json()["conversations"]
    assert [c["conversation_id"] for c in listed] == [bob]
    # Newest first: the conversation with the latest message leads.
    _post(client, auth, ann, [{"id": "2", "role": "assistant", "content": "noted"}], user_id="ann")
    every = client.get("/conversations", headers=auth).json()["conversations"]
    assert [c["conversation_id"] for c in every] == [ann, bob]
    assert every[0]["messages"] == 2


def test_memories_are_scoped_in_every_mode(client: TestClient, auth: dict[str, str]) -> None:
    for coord, user in (("1,1", "ann"), ("2,2", "bob")):
        answer = client.post(
            "/memories",
            json={"coord": coord, "payload": {"text": f"{user} likes sailing"}, "user_id": user},
            headers=auth,
        )
        assert answer.status_code == 201
        assert answer.json()["user_id"] == user
    for mode in ("vector", "keyword", "hybrid"):
        found = client.post(
            "/memories/search",
            json={"query": "sailing", "mode": mode, "user_id": "bob"},
            headers=auth,
        ).json()["results"]
        assert [r["coord"] for r in found] == ["2,2"], mode
    listed = client.get("/memories?user_id=ann", headers=auth).json()["memories"]
    assert [m["coord"] for m in listed] == ["1,1"]


def test_delete_conversation_and_erase_a_user(
    client: TestClient, auth: dict[str, str], stack: Stack
) -> None:
    tenant = _tenant_id(stack, auth)
    gone, kept = _cid(), _cid()
    _post(client, auth, gone, [{"id": "a", "role": "user", "content": "to delete"}], user_id="x")
    _post(
        client,
        auth,
        kept,
        [{"id": "a", "role": "user", "content": "sailing in June"}],
        user_id="eve",
    )
    _post(client, auth, kept, [{"id": "b", "role": "user", "content": "keep me"}], user_id="zed")
    client.post(
        "/memories",
        json={"coord": "5,5", "payload": {"text": "eve sails"}, "user_id": "eve"},
        headers=auth,
    )
    client.post("/memories", json={"coord": "6,6", "payload": {"text": "other"}}, headers=auth)
    # Replaced, then deleted: its versions carry the user too.
    client.post(
        "/memories",
        json={"coord": "7,7", "payload": {"text": "old"}, "user_id": "eve"},
        headers=auth,
    )
    client.delete("/memories/7,7", headers=auth)
    assert _entities(stack, tenant) == 3

    deleted = client.delete(f"/conversations/{gone}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": 1}
    assert client.delete(f"/conversations/{gone}", headers=auth).status_code == 404
    assert client.get(f"/conversations/{gone}/messages", headers=auth).json()["messages"] == []
    assert _entities(stack, tenant) == 2

    erased = client.delete("/users/eve", headers=auth)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "user_id": "eve",
        "memories": 1,
        "messages": 1,
        "items": 0,
        "versions": erased.json()["versions"],
    }
    assert erased.json()["versions"] >= 4  # 5,5 created and deleted; 7,7 created, deleted
    assert client.get("/memories/5,5", headers=auth).status_code == 404
    assert client.get("/memories/6,6", headers=auth).status_code == 200
    left = client.get(f"/conversations/{kept}/messages", headers=auth).json()["messages"]
    assert [m["id"] for m in left] == ["b"]
    for table in ("records", "record_history"):
        assert (
            _count(
                stack,
                f"SELECT count(*) FROM {table} WHERE tenant_id = :t AND user_id = 'eve'",
                t=tenant,
            )
            == 0
        )
    assert (
        _count(
            stack,
            "SELECT count(*) FROM record_history WHERE tenant_id = :t AND key IN ('5,5', '7,7')",
            t=tenant,
        )
        == 0
    )
    assert _entities(stack, tenant) == 1
    assert stack.milvus.count(tenant) == 1  # the memory 6,6
    found = client.post("/memories/search", json={"query": "sails", "mode": "vector"}, headers=auth)
    assert [r["coord"] for r in found.json()["results"]] == ["6,6"]


def test_scopes_survive_export_and_import(
    client: TestClient, auth: dict[str, str], stack: Stack
) -> None:
    scoped = {
        "coord": "3,3",
        "payload": {"text": "likes kites"},
        "user_id": "ann",
        "session_id": "s",
    }
    assert client.post("/memories", json=scoped, headers=auth).status_code == 201
    exported = client.get("/export", headers=auth).text.splitlines()
    line = next(
        json.loads(x) for x in exported if '"kind": "memory"' in x or '"kind":"memory"' in x
    )
    assert (line["user_id"], line["session_id"]) == ("ann", "s")
    assert "agent_id" not in line
    copy = tenant_for_import(stack.memories, f"t-{uuid.uuid4().hex[:12]}")
    report = import_lines(stack.memories, copy, exported)
    assert report.created == 1
    memory = stack.memories.get(copy, "3,3")
    assert (memory.user_id, memory.agent_id, memory.session_id) == ("ann", None, "s")
    again = import_lines(stack.memories, copy, exported)
    assert (again.created, again.unchanged) == (0, 1)


def test_memories_deleted_by_scope(client: TestClient, auth: dict[str, str], stack: Stack) -> None:
    for coord, session in (("1,1", "s1"), ("2,2", "s1"), ("3,3", "s2")):
        body = {"coord": coord, "payload": {"text": f"note {coord}"}, "session_id": session}
        assert client.post("/memories", json=body, headers=auth).status_code == 201
    assert client.delete("/memories", headers=auth).status_code == 422
    gone = client.delete("/memories?session_id=s1&purge=true", headers=auth)
    assert gone.json() == {"deleted": 2, "purged_versions": 4}
    left = client.get("/memories", headers=auth).json()["memories"]
    assert [m["coord"] for m in left] == ["3,3"]
    assert stack.milvus.count(_tenant_id(stack, auth)) == 1


def test_messages_survive_export_and_import(
    client: TestClient, auth: dict[str, str], stack: Stack
) -> None:
    cid = _cid()
    long_message = f"{LONG} The spare key hangs behind the kitchen clock."
    messages = [
        {"id": "a", "role": "user", "content": long_message, "created_at": "2026-02-01T08:00:00Z"},
        {"role": "assistant", "name": "bot", "content": "I will remember that."},
    ]
    assert _post(client, auth, cid, messages, user_id="ann", session_id="s").status_code == 201
    exported = client.get("/export", headers=auth).text.splitlines()
    copy = tenant_for_import(stack.memories, f"t-{uuid.uuid4().hex[:12]}")
    report = import_lines(stack.memories, copy, exported, items=stack.items)
    assert (report.items_created, report.error_count) == (2, 0), report.errors
    before, _ = stack.messages.page(
        stack.keys.authenticate(auth["Authorization"][7:]), cid, None, 10
    )
    after, _ = stack.messages.page(copy, cid, None, 10)
    strip = [(m.key, m.value, m.created_at, m.user_id, m.session_id) for m in before]
    assert [(m.key, m.value, m.created_at, m.user_id, m.session_id) for m in after] == strip
    chunks = "SELECT count(*) FROM record_vectors v JOIN records r ON r.id = v.record_id "
    chunks += "WHERE r.tenant_id = :t AND r.key = 'a'"
    assert _count(stack, chunks, t=copy.id) == _count(stack, chunks, t=_tenant_id(stack, auth)) > 1
    found = stack.messages.search(copy, "where is the spare key?", "hybrid", 1, Scopes("ann"))
    assert [h.item.key for h in found] == ["a"]
    again = import_lines(stack.memories, copy, exported, items=stack.items)
    assert again.items_unchanged == 2


def test_duplicates_are_found_within_the_users_memories_only(
    client: TestClient, auth: dict[str, str]
) -> None:
    def store(coord: str, user: str, **options: Any) -> Any:
        body = {"coord": coord, "payload": {"text": "I like green tea"}, "user_id": user}
        return client.post("/memories", json={**body, **options}, headers=auth).json()

    store("1,1", "ann")
    bob = store("2,2", "bob", on_duplicate="skip")
    assert (bob["status"], bob["duplicate_of"], bob["similar"]) == ("created", [], [])
    again = store("3,3", "bob", on_duplicate="skip")
    assert (again["status"], again["coord"]) == ("skipped", "2,2")
