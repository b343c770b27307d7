"""Export and import on the real stores: round trips, idempotence, bad lines, headers, and
GET /export against the CLI."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from somafractalmemory.core.portability import (
    FORMAT,
    dump_line,
    export_lines,
    export_records,
    import_lines,
    tenant_for_import,
)
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import Tenant
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack

Headers = dict[str, str]
Records = list[dict[str, Any]]

TEXTS = [
    "The user prefers green tea in the morning",
    "Bought a cast iron tea pot at the Friday market",
    "The dentist appointment moved to Tuesday at nine",
    "Grandmother's recipe for plum dumplings uses quark",
    "The quarterly report is due on the last Friday of March",
    "Kiwi the parrot learned to whistle the radio jingle",
]


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment of the test stack, for CLI subprocesses."""
    return {
        **os.environ,
        "POSTGRES_DSN": settings.postgres_dsn.get_secret_value(),
        "MILVUS_URI": settings.milvus_uri,
        "MILVUS_COLLECTION": settings.milvus_collection,
        "REDIS_URL": settings.redis_url.get_secret_value(),
    }


def run_cli(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "somafractalmemory.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=cli_env(settings),
    )


def new_tenant(make_key: Callable[..., Headers], stack: Stack) -> tuple[Tenant, Headers]:
    name = f"t-{uuid.uuid4().hex[:12]}"
    headers = make_key(name)
    tenant = stack.postgres.tenant_by_name(name)
    assert tenant is not None
    return tenant, headers


def populate(client: TestClient, auth: Headers, dimension: int) -> None:
    """Memories of both types, two with their own (unnormalised) vectors, and links."""
    rng = random.Random(7)
    memories: list[dict[str, Any]] = [
        {
            "coord": f"{i}, 2.50, -1",
            "payload": {"text": text, "n": i, "tags": ["a", {"deep": [1.5, None, True]}]},
            "memory_type": "semantic" if i % 2 else "episodic",
            "importance": round(0.1 + i / 10, 2),
        }
        for i, text in enumerate(TEXTS)
    ]
    memories.append({"coord": "9,9", "payload": {"kind": "no text", "ünïcode": "日本語"}})
    for coord in ("7,7", "8,8"):
        memories.append(
            {
                "coord": coord,
                "payload": {"text": f"own vector {coord}"},
                "vector": [rng.uniform(-2, 2) for _ in range(dimension)],
            }
        )
    response = client.post("/memories/batch", headers=auth, json={"memories": memories})
    assert response.status_code == 201, response.text
    for start, end, link_type, strength, metadata in (
        ("0,2.5,-1", "1,2.5,-1", "related", 0.9, {"why": "tea"}),
        ("1,2.5,-1", "0,2.5,-1", "related", 0.4, {}),
        ("0,2.5,-1", "7,7", "mentions", 1.0, {"n": [1, 2, {"x": None}]}),
        ("9,9", "8,8", "related", 0.25, {}),
    ):
        link = {
            "from_coord": start,
            "to_coord": end,
            "link_type": link_type,
            "strength": strength,
            "metadata": metadata,
        }
        assert client.post("/graph/link", headers=auth, json=link).status_code == 201


def content(records: Records) -> tuple[dict[str, Any], list[str]]:
    """The header and the lines but the versions, ignoring their order."""
    return records[0], sorted(
        json.dumps(r, sort_keys=True) for r in records[1:] if r["kind"] != "version"
    )


def versions(records: Records) -> set[str]:
    """The version lines (the history), as comparable text."""
    return {json.dumps(r, sort_keys=True) for r in records[1:] if r["kind"] == "version"}


def updated_ats(stack: Stack, tenant: Tenant) -> dict[str, datetime]:
    return {m.coord: m.updated_at for m, _own in stack.postgres.memories_page(tenant.id, 0, 1000)}


def lines_of(records: Records) -> list[str]:
    return [dump_line(r) for r in records]


def search_finds(client: TestClient, auth: Headers, text: str, coord: str) -> None:
    """A vector search for the exact text ranks ``coord`` first. Polled briefly: the import
    wrote through another Milvus client, whose writes this one sees after a time tick."""
    deadline = time.monotonic() + 15
    while True:
        hits = client.post(
            "/memories/search", headers=auth, json={"query": text, "mode": "vector", "top_k": 3}
        ).json()["results"]
        if hits and hits[0]["coord"] == coord:
            assert hits[0]["score"] > 0.99
            return
        assert time.monotonic() < deadline, hits
        time.sleep(0.5)


def test_round_trip_and_second_import_changes_nothing(
    client: TestClient, make_key: Callable[..., Headers], stack: Stack
) -> None:
    source, source_auth = new_tenant(make_key, stack)
    populate(client, source_auth, stack.embedder.dimension)
    plain = list(export_records(stack.memories, source))
    full = list(export_records(stack.memories, source, with_vectors=True))
    assert plain[0] == {
        "format": FORMAT,
        "version": 3,
        "embedding_model": stack.embedder.model_name,
        "dimension": stack.embedder.dimension,
        "with_vectors": False,
    }
    assert [r["kind"] for r in plain[1:]] == ["memory"] * 9 + ["link"] * 4 + ["version"] * 9
    assert all("vector" not in r for r in plain[1:])
    assert all(len(r["vector"]) == stack.embedder.dimension for r in full[1:10])
    assert {r["coord"] for r in plain[1:10]} >= {"0,2.5,-1", "9,9", "7,7"}
    assert list(export_records(stack.memories, source, True, page_size=2)) == full  # keyset

    for records, with_vectors in ((plain, False), (full, True)):
        target, target_auth = new_tenant(make_key, stack)
        report = import_lines(stack.memories, target, lines_of(records))
        assert (report.created, report.replaced, report.unchanged) == (9, 0, 0)
        assert (report.links_created, report.error_count) == (4, 0)

        exported = list(export_records(stack.memories, target, with_vectors=with_vectors))
        assert content(exported) == content(records)  # payloads, created_at, vectors, links
        # The source's history came along; the import's own writes added a version each.
        assert report.versions_imported == 9
        assert versions(records) < versions(exported)
        assert len(versions(exported)) == 18

        before = updated_ats(stack, target)
        again = import_lines(stack.memories, target, lines_of(records))
        assert (again.created, again.replaced, again.unchanged) == (0, 0, 9)
        assert (again.versions_imported, again.versions_unchanged) == (0, 9)
        assert (again.links_created, again.links_updated, again.links_unchanged) == (0, 0, 4)
        assert updated_ats(stack, target) == before
        assert content(list(export_records(stack.memories, target, with_vectors))) == content(
            records
        )
        search_finds(client, target_auth, TEXTS[3], "3,2.5,-1")
        neighbors = client.get(
            "/graph/neighbors", headers=target_auth, params={"coord": "0,2.5,-1"}
        ).json()["neighbors"]
        assert {n["coord"] for n in neighbors} == {"1,2.5,-1", "7,7"}

    # Re-importing the vector-less export into the source keeps its own vectors.
    back = import_lines(stack.memories, source, lines_of(plain))
    assert (back.unchanged, back.links_unchanged) == (9, 4)
    assert content(list(export_records(stack.memories, source, with_vectors=True))) == content(full)


def test_import_restores_changed_content_and_created_at(
    client: TestClient, make_key: Callable[..., Headers], stack: Stack
) -> None:
    source, auth = new_tenant(make_key, stack)
    populate(client, auth, stack.embedder.dimension)
    records = list(export_records(stack.memories, source, with_vectors=True))
    client.post("/memories", headers=auth, json={"coord": "1,2.5,-1", "payload": {"text": "new"}})
    client.delete("/memories/9,9", headers=auth)  # its link goes with it
    link = {"from_coord": "0,2.5,-1", "to_coord": "1,2.5,-1", "strength": 0.1}
    assert client.post("/graph/link", headers=auth, json=link).status_code == 201

    report = import_lines(stack.memories, source, lines_of(records))
    assert (report.created, report.replaced, report.unchanged) == (1, 1, 7)
    assert (report.links_created, report.links_updated, report.links_unchanged) == (1, 1, 2)
    assert content(list(export_records(stack.memories, source, True))) == content(records)


def test_bad_lines_are_reported_by_number_and_good_ones_land(
    client: TestClient, make_key: Callable[..., Headers], stack: Stack, settings: Settings
) -> None:
    target, auth = new_tenant(make_key, stack)
    header = dump_line(next(export_records(stack.memories, target))).rstrip("\n")
    good = {"kind": "memory", "coord": "1,1", "payload": {"text": "a good memory"}}
    lines = [
        header,  # 1
        json.dumps(good),  # 2
        '{"kind": "memory", "coord": ',  # 3 invalid JSON
        json.dumps({"kind": "tree", "coord": "1,2"}),  # 4 unknown kind
        json.dumps({**good, "coord": "1,banana"}),  # 5 bad coord
        json.dumps({**good, "coord": "2,2", "vector": [0.5, 0.5]}),  # 6 wrong dimension
        "",  # 7 blank lines are skipped
        json.dumps({**good, "coord": "3,3", "payload": {"text": "another good one"}}),  # 8
        json.dumps({"kind": "link", "from_coord": "1,1", "to_coord": "3,3"}),  # 9
        json.dumps({"kind": "link", "from_coord": "1,1", "to_coord": "4,4"}),  # 10 missing end
        "[1, 2]",  # 11 not an object
        json.dumps({**good, "coord": "5,5", "importance": 7}),  # 12 out of range
        json.dumps({**good, "coord": "6,6", "created_at": "2024-01-01T00:00:00"}),  # 13 naive
    ]
    done = run_cli(settings, "import", "-", "--tenant", target.name, stdin="\n".join(lines))
    assert done.returncode == 1, done.stderr
    errors = sorted(
        (line for line in done.stderr.splitlines() if line.startswith("line ")),
        key=lambda line: int(line.split(":")[0].split()[1]),
    )
    assert [e.split(":")[0] for e in errors] == [
        f"line {n}" for n in (3, 4, 5, 6, 10, 11, 12, 13)
    ], done.stderr
    assert "invalid JSON: Expecting value at column 28" in errors[0]
    assert "unknown kind 'tree'" in errors[1]
    assert "'banana' is not a number" in errors[2]
    assert f"must have {stack.embedder.dimension} numbers, got 2" in errors[3]
    assert "to_coord: no memory at coord '4,4'" in errors[4]
    assert "memories: 2 created, 0 replaced, 0 unchanged; links: 1 created" in done.stdout
    assert "errors: 8" in done.stdout
    assert client.get("/memories/1,1", headers=auth).status_code == 200
    assert client.get("/memories/3,3", headers=auth).status_code == 200
    assert client.get("/memories/2,2", headers=auth).status_code == 404


def test_a_wrong_header_is_refused(
    make_key: Callable[..., Headers], stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    target, _auth = new_tenant(make_key, stack)
    memory = json.dumps({"kind": "memory", "coord": "1,1", "payload": {"text": "x"}})
    ours = next(export_records(stack.memories, target, with_vectors=True))
    other_model = {**ours, "embedding_model": "another-model", "dimension": 768}
    for header, expected in (
        ("not json", "not JSON"),
        (json.dumps({"hello": "world"}), "not a SomaFractalMemory export"),
        (json.dumps({**ours, "version": 4}), "version 4 is not supported"),
        (json.dumps({**ours, "dimension": "384"}), re.escape("dimension (an integer)")),
        (json.dumps(other_model), "--reembed"),
    ):
        with pytest.raises(InvalidInputError, match=expected):
            import_lines(stack.memories, target, [header, memory])
    with pytest.raises(InvalidInputError, match="empty"):
        import_lines(stack.memories, target, [])
    assert stack.postgres.memories_page(target.id, 0, 10) == []

    path = tmp_path / "other.jsonl"
    path.write_text(json.dumps(other_model) + "\n" + memory + "\n")
    refused = run_cli(settings, "import", str(path), "--tenant", target.name)
    assert refused.returncode == 2
    assert "refused: header: the file's vectors come from model 'another-model'" in refused.stderr
    assert stack.postgres.memories_page(target.id, 0, 10) == []

    # --reembed: the other model's vectors are ignored and the text is embedded here.
    wrong_vector = json.dumps(
        {"kind": "memory", "coord": "2,2", "payload": {"text": "y"}, "vector": [1.0] * 768}
    )
    report = import_lines(
        stack.memories, target, [json.dumps(other_model), memory, wrong_vector], reembed=True
    )
    assert (report.created, report.error_count, report.vectors_used) == (2, 0, False)
    # A file without vectors from another model needs nothing re-decided.
    plain = json.dumps({**other_model, "with_vectors": False})
    assert import_lines(stack.memories, target, [plain, memory]).unchanged == 1


def test_get_export_streams_what_the_cli_writes(
    client: TestClient, stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    key, _info = stack.keys.create(name)
    auth = {"Authorization": f"Bearer {key}"}
    populate(client, auth, stack.embedder.dimension)

    response = client.get("/export", headers=auth, params={"with_vectors": "true"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    path = tmp_path / "export.jsonl"
    done = run_cli(settings, "export", str(path), "--tenant", name, "--with-vectors")
    assert done.returncode == 0, done.stderr
    assert "exported 9 memories and 4 links" in done.stderr
    assert response.text == path.read_text(encoding="utf-8")
    assert not (tmp_path / "export.jsonl.partial").exists()

    tenant = stack.postgres.tenant_by_name(name)
    assert tenant is not None
    plain = client.get("/export", headers=auth)
    assert plain.text == "".join(export_lines(stack.memories, tenant))
    assert client.get("/export").status_code == 401


def test_import_creates_the_tenant_and_isolates_a_value_postgres_refuses(stack: Stack) -> None:
    name = f"t-{uuid.uuid4().hex[:12]}"
    tenant = tenant_for_import(stack.memories, name)
    assert tenant_for_import(stack.memories, name) == tenant
    header = dump_line(next(export_records(stack.memories, tenant)))
    dimension = stack.embedder.dimension

    def memory(coord: str, vector: list[float] | None = None) -> str:
        line = {"kind": "memory", "coord": coord, "payload": {"text": f"memory {coord}"}}
        return json.dumps(line if vector is None else {**line, "vector": vector})

    # 1e39 is finite, but beyond float32: PostgreSQL refuses it, which fails its whole batch;
    # the import then finds the line by writing the batch one memory at a time.
    too_big = [1e39] + [0.5] * (dimension - 1)
    report = import_lines(
        stack.memories, tenant, [header, memory("1,1"), memory("2,2", too_big), memory("3,3")]
    )
    assert (report.created, report.error_count) == (2, 1)
    assert report.errors[0].line == 3
    assert "PostgreSQL refused a value" in report.errors[0].message
    assert sorted(m.coord for m, _own in stack.postgres.memories_page(tenant.id, 0, 10)) == [
        "1,1",
        "3,3",
    ]


def test_items_round_trip_with_memories_and_links(
    client: TestClient, make_key: Callable[..., Headers], stack: Stack
) -> None:
    """Version 2: spaces and items follow the links; an import into another tenant gives
    the same export back (the client's vectors of a registered space included), and a second
    import changes nothing. A version 1 file (no items) still imports."""
    source, auth = new_tenant(make_key, stack)
    populate(client, auth, stack.embedder.dimension)
    space = {"name": "own", "dimension": 3, "metric": "l2"}
    assert client.post("/spaces", headers=auth, json=space).status_code == 201
    puts = [
        {"namespace": ["users", "ann"], "key": "prefs", "value": {"text": "likes green tea"}},
        {"namespace": ["users", "ann"], "key": "trip", "value": {"a": "Oslo", "b": "Rome"}},
        {"namespace": ["docs"], "key": "x", "value": {"tags": ["p", "q"]}, "index": ["tags[*]"]},
        {"namespace": ["docs"], "key": "plain", "value": {"n": 1}, "index": False},
        {"namespace": ["tmp"], "key": "lease", "value": {"text": "short"}, "ttl_minutes": 30},
        {"namespace": ["own"], "key": "v", "value": {"t": 1}, "space": "own"},
    ]
    puts[1]["index"] = ["a", "b"]
    puts[5]["vectors"] = [{"path": "$", "vector": [0.5, 0.25, 1.0]}]
    for body in puts:
        assert client.put("/items", headers=auth, json=body).status_code == 201, body
    records = list(export_records(stack.memories, source, True, items=stack.items))
    kinds = [r["kind"] for r in records[1:]]
    assert kinds == ["memory"] * 9 + ["link"] * 4 + ["space"] + ["item"] * 6 + ["version"] * 15

    target, target_auth = new_tenant(make_key, stack)
    report = import_lines(stack.memories, target, lines_of(records), items=stack.items)
    assert (report.created, report.links_created, report.error_count) == (9, 4, 0)
    assert (report.spaces_created, report.items_created, report.items_unchanged) == (1, 6, 0)
    exported = list(export_records(stack.memories, target, True, items=stack.items))

    def timeless(lines: Records) -> tuple[dict[str, Any], list[str]]:
        # An imported item is stored anew: its created_at is the import's.
        return content(
            [
                {k: v for k, v in r.items() if r.get("kind") != "item" or k != "created_at"}
                for r in lines
            ]
        )

    assert timeless(exported) == timeless(records)
    again = import_lines(stack.memories, target, lines_of(records), items=stack.items)
    assert (again.items_created, again.items_replaced, again.items_unchanged) == (0, 0, 6)
    assert again.spaces_created == 0
    found = client.post(
        "/items/search",
        headers=target_auth,
        json={"namespace_prefix": ["users"], "query": "which city in Italy?"},
    ).json()["items"]
    assert found[0]["key"] == "trip"
    own = client.post(
        "/items/search",
        headers=target_auth,
        json={"namespace_prefix": ["own"], "space": "own", "vector": [0.5, 0.25, 1.0]},
    ).json()["items"]
    assert [(i["key"], i["score"]) for i in own] == [("v", pytest.approx(0.0, abs=1e-6))]

    # A version 1 file: the same memories and links, no items.
    old = [
        {**records[0], "version": 1},
        *[r for r in records[1:] if r["kind"] in ("memory", "link")],
    ]
    third, _auth = new_tenant(make_key, stack)
    report = import_lines(stack.memories, third, lines_of(old), items=stack.items)
    assert (report.created, report.links_created, report.items_created) == (9, 4, 0)
