"""The outbox and reconciliation on the real stores.

A process dying mid-write is reproduced by doing the protocol's steps by hand and stopping
where a crash would: the outbox entry is committed, the rest is abandoned (rolled back).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

from somafractalmemory.core.reconcile import find_drift, reconcile
from somafractalmemory.models import MemoryType, NewMemory, Tenant
from somafractalmemory.stack import Stack
from somafractalmemory.stores.tables import outbox
from testkit.stores import tenant_of, vector_ids

Headers = dict[str, str]


def crash_after_milvus_write(stack: Stack, tenant: Tenant, coord: str, text: str) -> int:
    """Steps 1-3 of a write, killed before the PostgreSQL commit of step 3."""
    memory = NewMemory(coord, {"text": text}, MemoryType.EPISODIC, 0.5, text)
    with stack.postgres.unit_of_work() as intent:
        ids = intent.reserve_ids(tenant.id, [coord])
        intent.add_outbox(tenant.id, [(coord, ids[coord])])
        intent.commit()
    with stack.postgres.unit_of_work() as uow:
        uow.lock_memories(tenant.id, [coord])
        stored = uow.upsert_memories(tenant.id, [memory], ids)
        vector = stack.embedder.embed_one(text)
        stack.memories.milvus.upsert([stack.memories._record(tenant.id, stored[coord], vector)])
        # no commit: the process "dies" here and PostgreSQL rolls the transaction back
    return ids[coord]


def test_crash_before_commit_of_a_new_memory_leaves_no_trace(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    memory_id = crash_after_milvus_write(stack, tenant, "1,1", "a write that never committed")
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == {memory_id}  # an orphan vector
    assert client.get("/memories/1,1", headers=auth).status_code == 404
    hits = client.post(
        "/memories/search", headers=auth, json={"query": "a write that never committed"}
    ).json()["results"]
    assert hits == []  # search never returns a hit without a row

    assert stack.memories.drain_outbox(grace_seconds=0) >= 1
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == set()
    assert find_drift(stack.memories, tenant).orphans == []


def test_crash_before_commit_of_a_replace_restores_the_old_vector(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    old = "the dentist appointment is on Tuesday morning"
    new = "the quarterly board meeting moved to Thursday"
    assert (
        client.post("/memories", headers=auth, json={"coord": "2,2", "payload": {"text": old}})
    ).status_code == 201
    crash_after_milvus_write(stack, tenant, "2,2", new)
    # Milvus now holds the vector of a text PostgreSQL never committed.
    stale = client.post(
        "/memories/search", headers=auth, json={"query": new, "mode": "vector"}
    ).json()["results"]
    assert stale[0]["payload"]["text"] == old
    assert stale[0]["score"] > 0.95

    stack.memories.drain_outbox(grace_seconds=0)
    fixed = client.post(
        "/memories/search", headers=auth, json={"query": old, "mode": "vector"}
    ).json()["results"]
    assert fixed[0]["coord"] == "2,2"
    assert fixed[0]["score"] > 0.95
    assert stack.postgres.outbox_size() == 0


def outbox_of(stack: Stack, tenant: Tenant) -> list[tuple[str | None, int]]:
    """The tenant's outbox entries, (coord, record id), read from the table itself."""
    query = sa.select(outbox.c.coord, outbox.c.record_id).where(outbox.c.tenant_id == tenant.id)
    with stack.postgres.engine.connect() as conn:
        return [(row.coord, row.record_id) for row in conn.execute(query.order_by(outbox.c.id))]


def test_acknowledged_writes_leave_no_outbox_entries(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    batch = [{"coord": f"3,{i}", "payload": {"text": f"note {i}"}} for i in range(20)]
    assert client.post("/memories/batch", headers=auth, json={"memories": batch}).status_code == 201
    replaced = {"coord": "3,1", "payload": {"text": "note one, replaced"}}
    assert client.post("/memories", headers=auth, json=replaced).status_code == 200
    assert client.delete("/memories/3,0", headers=auth).status_code == 200
    item = {"namespace": ["notes"], "key": "k", "value": {"text": "an item"}}
    assert client.put("/items", headers=auth, json=item).status_code == 201
    params = {"namespace": ["notes"], "key": "k"}
    assert client.delete("/items", headers=auth, params=params).status_code == 200
    # Every write above was settled before it was acknowledged: nothing of ours waits.
    assert outbox_of(stack, tenant) == []
    report = find_drift(stack.memories, tenant)
    assert (report.missing, report.orphans) == ([], [])
    assert client.get("/stats", headers=auth).json()["vectors"] == 19

    # The same read sees an entry a write left unsettled (a crash before its commit) ...
    record_id = crash_after_milvus_write(stack, tenant, "3,99", "never committed")
    assert outbox_of(stack, tenant) == [("3,99", record_id)]
    # ... until the drain settles it.
    stack.memories.drain_outbox(grace_seconds=0)
    assert outbox_of(stack, tenant) == []


def test_reconcile_finds_and_repairs_drift(
    client: TestClient, make_key: Callable[[], Headers], stack: Stack
) -> None:
    auth = make_key()
    tenant = tenant_of(stack, auth)
    batch = [{"coord": f"4,{i}", "payload": {"text": f"fact number {i}"}} for i in range(10)]
    client.post("/memories/batch", headers=auth, json={"memories": batch})
    ids = stack.postgres.memory_ids(tenant.id, [f"4,{i}" for i in range(10)])
    lost = [ids["4,0"], ids["4,1"]]
    stack.milvus.delete(lost)  # vectors lost behind the service's back
    vector = stack.embedder.embed_one("orphan")
    orphan_id = 9_000_000_000 + tenant.id
    stack.milvus.upsert([stack.memories._record(tenant.id, _fake_memory(orphan_id), vector)])

    reports = reconcile(stack.memories, stack.items, tenant.name, fix=False)
    assert reports[0].missing == sorted(lost)
    assert reports[0].orphans == [orphan_id]
    assert stack.postgres.last_reconcile_drift() == 3

    reconcile(stack.memories, stack.items, tenant.name, fix=True)
    after = find_drift(stack.memories, tenant)
    assert (after.missing, after.orphans) == ([], [])
    hits = client.post("/memories/search", headers=auth, json={"query": "fact number 0"}).json()[
        "results"
    ]
    assert hits[0]["coord"] == "4,0"
    assert reconcile(stack.memories, stack.items, tenant.name)[0].missing == []
    assert stack.postgres.last_reconcile_drift() == 0


def test_reconcile_never_deletes_a_vector_an_outbox_entry_claims(
    make_key: Callable[[], Headers], stack: Stack
) -> None:
    tenant = tenant_of(stack, make_key())
    memory_id = crash_after_milvus_write(stack, tenant, "5,5", "in flight")
    reconcile(stack.memories, stack.items, tenant.name, fix=True)
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == {memory_id}
    stack.memories.drain_outbox(grace_seconds=0)
    assert vector_ids(stack.milvus, tenant.id, [memory_id]) == set()


def test_reconcile_command_reports_and_exits_nonzero_on_drift(
    make_key: Callable[[], Headers], stack: Stack
) -> None:
    tenant = tenant_of(stack, make_key())
    stack.milvus.upsert(
        [
            stack.memories._record(
                tenant.id, _fake_memory(9_100_000_000 + tenant.id), stack.embedder.embed_one("x")
            )
        ]
    )
    command = [sys.executable, "-m", "somafractalmemory.cli", "reconcile", "--tenant", tenant.name]
    found = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert found.returncode == 1, found.stderr
    assert "1 orphans in milvus" in found.stdout
    fixed = subprocess.run(
        [*command, "--repair"], capture_output=True, text=True, timeout=120, check=False
    )
    assert fixed.returncode == 0, fixed.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0
    assert "drift found: 0" in again.stdout


def _fake_memory(memory_id: int):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from somafractalmemory.models import Memory

    now = datetime.now(UTC)
    return Memory(memory_id, "0,0", {}, MemoryType.EPISODIC, 0.5, "x", now, now)


def test_reconcile_covers_item_collections(
    client: TestClient, make_key: Callable[[], Headers], stack: Stack
) -> None:
    """Item vectors lost from Milvus are rewritten from PostgreSQL (not re-embedded), an
    orphan of a deleted item is deleted, and a space's collection is checked too."""
    from somafractalmemory.stores.items_milvus import ItemVectorRecord

    auth = make_key()
    tenant = tenant_of(stack, auth)
    index = stack.items.index
    for key in ("a", "b"):
        body = {"namespace": ["docs"], "key": key, "value": {"text": f"item {key} about kites"}}
        assert client.put("/items", headers=auth, json=body).status_code == 201
    space = {"name": "own", "dimension": 3, "metric": "cosine"}
    assert client.post("/spaces", headers=auth, json=space).status_code == 201
    body = {"namespace": ["own"], "key": "v", "value": {"t": 1}, "space": "own"}
    body["vectors"] = [{"path": "$", "vector": [1.0, 0.0, 0.0]}]
    assert client.put("/items", headers=auth, json=body).status_code == 201
    default = index.default_collection
    stored = stack.items.repo.vector_ids(tenant.id, "default")
    lost = min(stored)
    index.delete(default, [lost])
    own = stack.items.space(tenant, "own")
    index.delete(own.collection, list(stack.items.repo.vector_ids(tenant.id, "own")))
    orphan = ItemVectorRecord(
        8_000_000_000 + tenant.id, 7_000_000_000, tenant.id, [0.1] * 384, "docs"
    )
    index.write(default, [orphan])

    reports = {r.collection: r for r in reconcile(stack.memories, stack.items, tenant.name)}
    assert reports[default].missing == [lost]
    assert reports[default].orphans == [orphan.id]
    assert len(reports[own.collection].missing) == 1
    assert stack.postgres.last_reconcile_drift() == 3

    reconcile(stack.memories, stack.items, tenant.name, fix=True)
    again = reconcile(stack.memories, stack.items, tenant.name)
    assert [(r.missing, r.orphans) for r in again] == [([], [])] * len(again)
    assert stack.postgres.last_reconcile_drift() == 0
    found = client.post(
        "/items/search", headers=auth, json={"namespace_prefix": ["docs"], "query": "kites"}
    ).json()["items"]
    assert sorted(item["key"] for item in found) == ["a", "b"]
    assert all(item["score"] is not None for item in found)
