"""An export scoped by user (GET /export?user_id=, the CLI's --user-id) holds that user's
records only, and imports elsewhere as exactly those, on the real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from somafractalmemory.core.portability import import_lines, tenant_for_import
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack

Headers = dict[str, str]


def _cli_export(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "MILVUS_URI": settings.milvus_uri,
        "MILVUS_COLLECTION": settings.milvus_collection,
        "REDIS_URL": settings.redis_url.get_secret_value(),
    }
    command = [sys.executable, "-m", "somafractalmemory.cli", "export", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=env
    )


def _ok(answer: object) -> None:
    status = getattr(answer, "status_code", 0)
    assert status in (200, 201), getattr(answer, "text", "")


def _two_users(client: TestClient, auth: Headers) -> tuple[str, str]:
    """Ann: two linked memories (one replaced: history) and a conversation; Bob: a memory
    linked from Ann's and a conversation. The conversation ids are returned."""
    for coord, text, user in (
        ("1,1", "Ann collects old maps", "ann"),
        ("1,2", "Ann flies to Lisbon in May", "ann"),
        ("2,1", "Bob keeps bees on his roof", "bob"),
    ):
        body = {"coord": coord, "payload": {"text": text}, "user_id": user}
        _ok(client.post("/memories", headers=auth, json=body))
    body = {"coord": "1,1", "payload": {"text": "Ann collects old sea maps"}, "user_id": "ann"}
    _ok(client.post("/memories", headers=auth, json=body))
    for source, target in (("1,1", "1,2"), ("1,1", "2,1")):
        link = {"from_coord": source, "to_coord": target, "link_type": "related"}
        _ok(client.post("/graph/link", headers=auth, json=link))
    chats = (f"ann-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}")
    for cid, user in zip(chats, ("ann", "bob"), strict=True):
        message = {"id": "m1", "role": "user", "content": f"{user} says hello"}
        posted = {"user_id": user, "messages": [message]}
        _ok(client.post(f"/conversations/{cid}/messages", headers=auth, json=posted))
    return chats


def test_export_scoped_by_user_imports_only_that_users_records(
    client: TestClient, stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    key, _info = stack.keys.create(name)
    auth = {"Authorization": f"Bearer {key}"}
    ann_chat, bob_chat = _two_users(client, auth)

    answer = client.get("/export", headers=auth, params={"user_id": "ann"})
    assert answer.status_code == 200, answer.text
    lines = answer.text.splitlines()
    header, records = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert header["scopes"] == {"user_id": "ann"}
    kinds = sorted(r["kind"] for r in records)
    assert [r["coord"] for r in records if r["kind"] == "memory"] == ["1,1", "1,2"]
    # Only the link between two of Ann's memories; the one to Bob's is left out.
    assert [(r["from_coord"], r["to_coord"]) for r in records if r["kind"] == "link"] == [
        ("1,1", "1,2")
    ]
    assert [r["namespace"] for r in records if r["kind"] == "item"] == [["conversations", ann_chat]]
    versions = [r["key"] for r in records if r["kind"] == "version"]
    assert sorted(versions) == ["1,1", "1,1", "1,2", "m1"], kinds
    assert "bob" not in answer.text.lower()
    whole = client.get("/export", headers=auth).text
    assert "Bob keeps bees" in whole  # the unscoped export still holds everyone's

    done = _cli_export(settings, str(tmp_path / "ann.jsonl"), "--tenant", name, "--user-id", "ann")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ann.jsonl").read_text(encoding="utf-8") == answer.text

    copy = tenant_for_import(stack.memories, f"t-{uuid.uuid4().hex[:12]}")
    report = import_lines(stack.memories, copy, lines, items=stack.items)
    assert report.error_count == 0, report.errors
    assert (report.created, report.links_created, report.items_created) == (2, 1, 1)
    coords = sorted(m.coord for m, _v in stack.postgres.memories_page(copy.id, 0, 100))
    assert coords == ["1,1", "1,2"]
    assert {m.user_id for m, _v in stack.postgres.memories_page(copy.id, 0, 100)} == {"ann"}
    items = stack.items.repo.items_page(copy.id, 0, 100)
    assert [(i.namespace[1], i.user_id) for i in items] == [(ann_chat, "ann")]
    assert bob_chat not in {i.namespace[1] for i in items}


def test_export_scopes_are_checked(client: TestClient, auth: Headers) -> None:
    answer = client.get("/export", headers=auth, params={"user_id": ""})
    assert answer.status_code == 422
    assert "user_id" in answer.json()["detail"]
    nobody = client.get("/export", headers=auth, params={"session_id": "none-such"})
    assert nobody.status_code == 200
    assert [json.loads(x)["kind"] for x in nobody.text.splitlines()[1:]] == []
