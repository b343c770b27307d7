"""History, supersession, validity, duplicates, purge and the change feed, end to end on the
real PostgreSQL, Milvus and Redis (issue: memory that knows what changed)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.server import stack_env
from testkit.stores import new_tenant, scalar, tenant_of, vector_ids
from testkit.verdict import run_cli

Headers = dict[str, str]
MODES = ("vector", "keyword", "hybrid")


def write(client: TestClient, auth: Headers, coord: str, text: str, **extra: object) -> dict:
    response = client.post(
        "/memories", headers=auth, json={"coord": coord, "payload": {"text": text}, **extra}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def search(client: TestClient, auth: Headers, query: str, **extra: object) -> list[dict]:
    response = client.post("/memories/search", headers=auth, json={"query": query, **extra})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def now() -> str:
    moment = datetime.now(UTC).isoformat()
    time.sleep(0.02)
    return moment


def test_paris_then_berlin(client: TestClient, auth: Headers) -> None:
    write(client, auth, "1,1", "Maya lives in Paris")
    between = now()
    moved = write(client, auth, "1,2", "Maya moved to Berlin", supersedes=["1,1"])
    assert moved["status"] == "created"
    for mode in MODES:
        found = search(client, auth, "Where does Maya live?", mode=mode)
        assert [r["coord"] for r in found] == ["1,2"], mode
        marked = search(client, auth, "Where does Maya live?", mode=mode, include_superseded=True)
        by_coord = {r["coord"]: r for r in marked}
        assert by_coord["1,1"]["superseded_by"] == "1,2", mode
        assert by_coord["1,2"]["superseded_by"] is None
    # Still readable by coordinate, marked with its successor and the end of its validity.
    paris = client.get("/memories/1,1", headers=auth).json()
    assert paris["superseded_by"] == "1,2"
    assert paris["valid_to"] is not None
    # Not listed by default; listed on request.
    listed = client.get("/memories", headers=auth).json()["memories"]
    assert [m["coord"] for m in listed] == ["1,2"]
    every = client.get("/memories?include_superseded=true", headers=auth).json()["memories"]
    assert sorted(m["coord"] for m in every) == ["1,1", "1,2"]
    # As SFM knew it between the two writes: Paris, not yet superseded.
    then = client.get("/memories/1,1", headers=auth, params={"as_of": between}).json()
    assert then["payload"] == {"text": "Maya lives in Paris"}
    assert then["superseded_by"] is None
    history = client.get("/memories/1,1/history", headers=auth).json()["versions"]
    assert [v["change"] for v in history] == ["superseded", "created"]


def test_replace_keeps_every_version_and_delete_keeps_the_last(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    write(client, auth, "2,1", "the car is red")
    after_first = now()
    write(client, auth, "2,1", "the car is blue")
    after_second = now()
    versions = client.get("/memories/2,1/history", headers=auth).json()["versions"]
    assert [(v["change"], v["payload"]["text"]) for v in versions] == [
        ("replaced", "the car is blue"),
        ("created", "the car is red"),
    ]
    key_id = tenant_of(stack, auth).key_id
    assert key_id is not None
    assert {v["api_key_id"] for v in versions} == {key_id}
    page = client.get("/memories/2,1/history?limit=1", headers=auth).json()
    assert [v["change"] for v in page["versions"]] == ["replaced"]
    rest = client.get(
        "/memories/2,1/history", headers=auth, params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert [v["change"] for v in rest["versions"]] == ["created"]

    assert client.delete("/memories/2,1", headers=auth).json() == {"deleted": True}
    gone = now()
    assert client.get("/memories/2,1", headers=auth).status_code == 404
    for moment, text in ((after_first, "the car is red"), (after_second, "the car is blue")):
        got = client.get("/memories/2,1", headers=auth, params={"as_of": moment})
        assert got.json()["payload"]["text"] == text
    assert client.get("/memories/2,1", headers=auth, params={"as_of": gone}).status_code == 404
    before_all = "2000-01-01T00:00:00Z"
    assert (
        client.get("/memories/2,1", headers=auth, params={"as_of": before_all}).status_code == 404
    )
    versions = client.get("/memories/2,1/history", headers=auth).json()["versions"]
    assert versions[0]["change"] == "deleted"


def test_purge_leaves_nothing_anywhere(client: TestClient, auth: Headers, stack: Stack) -> None:
    tenant = tenant_of(stack, auth)
    start = client.get("/changes", headers=auth).json()["next_cursor"]
    write(client, auth, "3,1", "a secret to forget")
    write(client, auth, "3,1", "a secret to forget, again")
    memory_id = stack.postgres.memory_ids(tenant.id, ["3,1"])["3,1"]
    assert client.get("/memories/3,1", headers=auth).status_code == 200  # cached
    purged = client.delete("/memories/3,1?purge=true", headers=auth)
    assert purged.json() == {"deleted": True, "purged_versions": 3}
    assert stack.postgres.memory_ids(tenant.id, ["3,1"]) == {}
    assert stack.postgres.versions(tenant.id, "", "3,1", None, 10) == []
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == set()
    assert stack.cache.get(tenant.id, "3,1") is None
    assert client.get("/memories/3,1/history", headers=auth).status_code == 404
    changes = client.get("/changes", headers=auth, params={"after": start}).json()["changes"]
    assert all(c["key"] != "3,1" for c in changes)
    exported = client.get("/export", headers=auth)
    assert "a secret to forget" not in exported.text
    # A memory deleted earlier can be purged afterwards; then there is nothing left to purge.
    write(client, auth, "3,2", "deleted first")
    client.delete("/memories/3,2", headers=auth)
    assert client.delete("/memories/3,2?purge=true", headers=auth).json()["purged_versions"] == 2
    assert client.delete("/memories/3,2?purge=true", headers=auth).status_code == 404


def test_the_same_value_again_changes_nothing(client: TestClient, auth: Headers) -> None:
    first = write(client, auth, "4,1", "tea at five", importance=0.7)
    again = write(client, auth, "4,1", "tea at five", importance=0.7)
    assert again["status"] == "unchanged"
    assert again["updated_at"] == first["updated_at"]
    versions = client.get("/memories/4,1/history", headers=auth).json()["versions"]
    assert [v["change"] for v in versions] == ["created"]
    changed = write(client, auth, "4,1", "tea at five", importance=0.8)
    assert changed["status"] == "replaced"


def test_duplicates_are_reported_skipped_or_superseded(client: TestClient, auth: Headers) -> None:
    write(client, auth, "5,1", "The user prefers green tea.")
    twin = write(client, auth, "5,2", "  the USER prefers   green tea. ")
    assert twin["status"] == "created"
    assert twin["duplicate_of"] == ["5,1"]
    near = write(client, auth, "5,3", "The user prefers green tea!")
    assert near["duplicate_of"] == []
    assert {s["coord"] for s in near["similar"]} >= {"5,1", "5,2"}
    assert all(0.9 <= s["score"] <= 1.0 for s in near["similar"])
    unrelated = write(client, auth, "5,4", "The train to Lyon leaves at noon.")
    assert unrelated["similar"] == []

    skipped = write(client, auth, "5,5", "the user prefers green tea.", on_duplicate="skip")
    assert skipped["status"] == "skipped"
    assert skipped["coord"] == "5,1"  # the duplicate that made it skip
    assert client.get("/memories/5,5", headers=auth).status_code == 404

    batch = client.post(
        "/memories/batch",
        headers=auth,
        json={
            "memories": [
                {
                    "coord": "5,6",
                    "payload": {"text": "The user prefers green tea."},
                    "on_duplicate": "supersede",
                },
                {"coord": "5,7", "payload": {"text": "something else entirely"}},
            ]
        },
    ).json()["results"]
    assert batch[0]["status"] == "created"
    assert sorted(batch[0]["duplicate_of"]) == ["5,1", "5,2"]
    for old in ("5,1", "5,2"):
        assert client.get(f"/memories/{old}", headers=auth).json()["superseded_by"] == "5,6"


def test_if_absent_refuses_to_replace(client: TestClient, auth: Headers) -> None:
    write(client, auth, "6,1", "first user's message")
    refused = client.post(
        "/memories",
        headers=auth,
        json={"coord": "6,1", "payload": {"text": "second user's message"}, "if_absent": True},
    )
    assert refused.status_code == 409
    assert "6,1" in refused.json()["detail"]
    assert client.get("/memories/6,1", headers=auth).json()["payload"]["text"] == (
        "first user's message"
    )
    created = write(client, auth, "6,2", "new", if_absent=True)
    assert created["status"] == "created"


@pytest.mark.parametrize(
    ("extra", "status", "field"),
    [
        ({"supersedes": ["9,9,9"]}, 404, "supersedes"),
        ({"supersedes": ["7,1"]}, 422, "supersedes"),
        ({"supersedes": ["not a coord"]}, 422, "supersedes"),
        (
            {"valid_from": "2024-01-01T00:00:00Z", "valid_to": "2020-01-01T00:00:00Z"},
            422,
            "valid_to",
        ),
        ({"valid_from": "2024-13-01T00:00:00Z"}, 422, "valid_from"),
        ({"valid_from": "2024-01-01T00:00:00"}, 422, "valid_from"),
        ({"on_duplicate": "merge"}, 422, "on_duplicate"),
    ],
)
def test_bad_history_input_names_the_field(
    client: TestClient, auth: Headers, extra: dict[str, object], status: int, field: str
) -> None:
    response = client.post(
        "/memories", headers=auth, json={"coord": "7,1", "payload": {"text": "x"}, **extra}
    )
    assert response.status_code == status, response.text
    assert field in response.text
    assert client.get("/memories/7,1", headers=auth).status_code == 404  # nothing written
    bad_time = client.get("/memories/7,1", headers=auth, params={"as_of": "yesterday"})
    assert bad_time.status_code == 422
    assert "as_of" in bad_time.text


def test_valid_at_keeps_the_facts_valid_then(client: TestClient, auth: Headers) -> None:
    write(
        client,
        auth,
        "8,1",
        "Maya lived in Paris",
        valid_from="2019-01-01T00:00:00Z",
        valid_to="2024-01-01T00:00:00Z",
    )
    write(client, auth, "8,2", "Maya lives in Berlin", valid_from="2024-01-01T00:00:00Z")
    write(client, auth, "8,3", "Maya likes trains")  # no bounds: always valid
    for mode in MODES:
        then = search(client, auth, "Maya", mode=mode, valid_at="2020-06-01T00:00:00Z")
        assert {r["coord"] for r in then} == {"8,1", "8,3"}, mode
        later = search(client, auth, "Maya", mode=mode, valid_at="2025-06-01T00:00:00Z")
        assert {r["coord"] for r in later} == {"8,2", "8,3"}, mode


def test_superseded_memories_are_filtered_before_the_limit(
    client: TestClient, auth: Headers
) -> None:
    """Many superseded memories closer to the query than the one current memory: the filter
    applies inside each store, so the current one is still found with top_k 3."""
    text = "the meeting room is on the third floor"
    memories = [{"coord": f"9,{i}", "payload": {"text": f"{text} ({i})"}} for i in range(300)]
    assert client.post("/memories/batch", headers=auth, json={"memories": memories}).is_success
    current = write(
        client,
        auth,
        "9,999",
        "meetings now happen in the basement",
        supersedes=[f"9,{i}" for i in range(100)],
    )
    assert current["status"] == "created"
    for start in (100, 200):
        write(
            client,
            auth,
            f"9,{900 + start // 100}",
            f"room change number {start}",
            supersedes=[f"9,{i}" for i in range(start, start + 100)],
        )
    for mode in MODES:
        found = search(client, auth, text, mode=mode, top_k=3)
        assert found, mode
        assert all(int(r["coord"].split(",")[1]) >= 900 for r in found), mode


def feed_after(client: TestClient, auth: Headers, after: str, want: int, limit: int) -> dict:
    """The feed after ``after`` once it holds ``want`` changes: a change is served when every
    older transaction in the cluster has ended (another test's, say), which may take a while."""
    deadline = time.monotonic() + 20
    while True:
        page = client.get("/changes", headers=auth, params={"after": after, "limit": limit}).json()
        if len(page["changes"]) >= want or time.monotonic() > deadline:
            return page
        time.sleep(0.1)


def test_the_change_feed_resumes_in_order(client: TestClient, auth: Headers) -> None:
    start = client.get("/changes", headers=auth).json()["next_cursor"]
    write(client, auth, "10,1", "one")
    write(client, auth, "10,1", "one, replaced")
    client.delete("/memories/10,1", headers=auth)
    first = feed_after(client, auth, start, 2, limit=2)
    assert [c["change"] for c in first["changes"]] == ["created", "replaced"]
    assert all(c["kind"] == "memory" and c["key"] == "10,1" for c in first["changes"])
    rest = feed_after(client, auth, first["next_cursor"], 1, limit=100)
    assert [c["change"] for c in rest["changes"]] == ["deleted"]
    idle = client.get("/changes", headers=auth, params={"after": rest["next_cursor"]}).json()
    assert idle == {"changes": [], "next_cursor": rest["next_cursor"]}
    bad = client.get("/changes", headers=auth, params={"after": "bm9wZQ"})
    assert bad.status_code == 422
    assert "cursor" in bad.text


def test_items_have_history_too(client: TestClient, auth: Headers) -> None:
    for value in ({"text": "v1"}, {"text": "v2"}):
        put = client.put(
            "/items", headers=auth, json={"namespace": ["u", "prefs"], "key": "k", "value": value}
        )
        assert put.status_code in (200, 201), put.text
    history = client.get(
        "/items/history", headers=auth, params={"namespace": ["u", "prefs"], "key": "k"}
    ).json()["versions"]
    assert [(v["change"], v["payload"]) for v in history] == [
        ("replaced", {"text": "v2"}),
        ("created", {"text": "v1"}),
    ]


def test_tenants_never_see_each_other_s_history(client: TestClient, make_key) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = make_key(), make_key()
    write(client, mine, "11,1", "mine only")
    assert client.get("/memories/11,1/history", headers=theirs).status_code == 404
    feed = client.get("/changes", headers=theirs).json()["changes"]
    assert all(c["key"] != "11,1" for c in feed)
    as_of = client.get("/memories/11,1", headers=theirs, params={"as_of": now()})
    assert as_of.status_code == 404


def test_purge_tenant_erases_every_record_everywhere(
    client: TestClient, settings: Settings, stack: Stack
) -> None:
    tenant, auth = new_tenant(settings, "purged")
    other, other_auth = new_tenant(settings, "kept")
    write(client, auth, "12,1", "to be erased")
    write(client, auth, "12,1", "to be erased, v2")
    write(client, auth, "12,2", "also erased")
    client.delete("/memories/12,2", headers=auth)  # only history is left of it
    item = {"namespace": ["u"], "key": "k", "value": {"text": "an item to erase"}}
    assert client.put("/items", headers=auth, json=item).is_success
    write(client, other_auth, "12,1", "another tenant's memory")
    memory_id = stack.postgres.memory_ids(tenant.id, ["12,1"])["12,1"]

    refused = run_cli(stack_env(settings), "purge-tenant", "--tenant", tenant.name)
    assert refused.returncode == 2
    done = run_cli(stack_env(settings), "purge-tenant", "--tenant", tenant.name, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 memories, 1 items, 7 versions" in done.stdout
    assert stack.postgres.memory_ids(tenant.id, ["12,1", "12,2"]) == {}
    assert stack.items.repo.count(tenant.id) == 0
    assert stack.postgres.versions(tenant.id, "", "12,1", None, 10) == []
    assert stack.postgres.changes(tenant.id, (0, 0), 10) == []
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == set()
    assert stack.milvus.count(tenant.id, stack.items.index.default_collection) == 0
    assert client.get("/memories/12,1", headers=auth).status_code == 404  # not from the cache
    # The other tenant keeps everything; the purged tenant's key still works.
    assert client.get("/memories/12,1", headers=other_auth).status_code == 200
    assert client.get("/memories", headers=auth).json()["memories"] == []
    missing = run_cli(stack_env(settings), "purge-tenant", "--tenant", "nobody", "--yes")
    assert missing.returncode == 1
    assert "nobody" in missing.stderr
    assert other.id != tenant.id


def test_history_retention_keeps_current_versions(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    for text in ("v1", "v2", "v3"):
        write(client, auth, "13,1", f"retained {text}")
    write(client, auth, "13,2", "old and never replaced")
    write(client, auth, "13,3", "deleted long ago")
    client.delete("/memories/13,3", headers=auth)
    scalar(
        stack.settings.postgres_libpq_dsn,
        "UPDATE record_history SET recorded_at = recorded_at - interval '10 days' "
        "WHERE tenant_id = %s AND key IN ('13,2', '13,3') OR (tenant_id = %s AND key = '13,1' "
        "AND change <> 'replaced') RETURNING 1",
        tenant.id,
        tenant.id,
    )
    # 13,1: v1 is 10 days old but v2 (its successor) is recent: v1 stays until v2 is old too.
    assert stack.history.sweep(5) == 2  # 13,3's two versions
    assert [v.change for v in stack.postgres.versions(tenant.id, "", "13,1", None, 9)] == [
        "replaced",
        "replaced",
        "created",
    ]
    assert len(stack.postgres.versions(tenant.id, "", "13,2", None, 9)) == 1  # current: kept
    assert stack.postgres.versions(tenant.id, "", "13,3", None, 9) == []
    scalar(
        stack.settings.postgres_libpq_dsn,
        "UPDATE record_history SET recorded_at = recorded_at - interval '10 days' "
        "WHERE tenant_id = %s AND key = '13,1' RETURNING 1",
        tenant.id,
    )
    assert stack.history.sweep(5) == 2  # v1 and v2 of 13,1; v3 is current
    assert [v.payload for v in stack.postgres.versions(tenant.id, "", "13,1", None, 9)] == [
        {"text": "retained v3"}
    ]


def test_export_and_import_carry_history_and_supersession(
    client: TestClient, settings: Settings, stack: Stack
) -> None:
    from somafractalmemory.core.portability import dump_line, export_records, import_lines

    source, auth = new_tenant(settings, "history-source")
    write(client, auth, "14,1", "Maya lives in Paris", valid_from="2019-01-01T00:00:00Z")
    between = now()
    write(client, auth, "14,2", "Maya moved to Berlin", supersedes=["14,1"])
    records = list(export_records(stack.memories, source))
    paris = next(r for r in records if r.get("coord") == "14,1")
    assert paris["superseded_by"] == "14,2"
    assert paris["valid_from"] == "2019-01-01T00:00:00+00:00"

    target, target_auth = new_tenant(settings, "history-target")
    report = import_lines(stack.memories, target, [dump_line(r) for r in records])
    assert (report.created, report.versions_imported, report.error_count) == (2, 3, 0)
    imported = client.get("/memories/14,1", headers=target_auth).json()
    assert imported["superseded_by"] == "14,2"
    assert imported["valid_from"] == "2019-01-01T00:00:00Z"
    for mode in MODES:
        found = search(client, target_auth, "Where does Maya live?", mode=mode)
        assert [r["coord"] for r in found] == ["14,2"], mode
    then = client.get("/memories/14,1", headers=target_auth, params={"as_of": between}).json()
    assert then["payload"]["text"] == "Maya lives in Paris"
    assert then["superseded_by"] is None
    again = import_lines(stack.memories, target, [dump_line(r) for r in records])
    assert (again.unchanged, again.versions_imported, again.versions_unchanged) == (2, 0, 3)


def test_a_second_successor_is_a_supersession_too(client: TestClient, auth: Headers) -> None:
    write(client, auth, "15,1", "the office is in Leeds")
    write(client, auth, "15,2", "the office moved to York", supersedes=["15,1"])
    write(client, auth, "15,3", "the office moved again, to Hull", supersedes=["15,1", "15,2"])
    versions = client.get("/memories/15,1/history", headers=auth).json()["versions"]
    assert [(v["change"], v["superseded_by"]) for v in versions] == [
        ("superseded", "15,3"),
        ("superseded", "15,2"),
        ("created", None),
    ]
