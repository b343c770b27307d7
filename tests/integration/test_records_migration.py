"""Migration 0007 to one records table, on a database filled as the previous release left it.

The previous release's layout is written as it wrote it: memories, links, items with several
vectors, a registered space, a TTL, an item outbox entry of an item deleted mid-write, in
PostgreSQL at the revision before the records migration, and each vector in Milvus (memories
by memory id; item vectors by vector id, naming their item by its old id, the ids of items
and memories overlapping as they did). Then ``alembic upgrade head`` and bootstrap: the same
counts, the same search results, nothing re-embedded, no drift, the stale vector gone.
"""

from __future__ import annotations

import math
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from somafractalmemory.bootstrap import alembic_config, bootstrap
from somafractalmemory.core.reconcile import reconcile
from somafractalmemory.errors import InfrastructureError
from somafractalmemory.models import (
    ItemSearch,
    SearchQuery,
    SearchScope,
    Space,
    Tenant,
    VectorRecord,
)
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack, create_stack
from somafractalmemory.stores.items_milvus import ItemVectorIndex
from somafractalmemory.stores.ownership import read_identity
from testkit.item_collections_v1 import V1Row, create_v1_collection, insert_v1
from testkit.server import python_module, stack_env
from testkit.stores import (
    drop_collections,
    drop_database,
    migrate,
    own_connection,
    recreate_database,
    sibling_dsn,
    with_updates,
)

RECORDS_REVISION = "0007"
MEMORIES = {1: ("1,1", "I like green tea"), 2: ("2,2", "the kite is red"), 3: ("3,3", "ok")}
# Old item ids overlap the memory ids, as they did: two sequences.
ITEMS = {
    1: (["users", "ann"], "prefs", {"text": "prefers window seats", "tags": ["travel"]}),
    2: (["users", "ann"], "notes", {"a": "loves sailing", "b": "fears heights"}),
    3: (["users", "bob"], "plain", {"n": 1}),
}
DELETED_ITEM = 4  # an item deleted by a write that died: its outbox entry and vector remain


def unit(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


@pytest.fixture
def old_stack(settings: Settings) -> Iterator[Settings]:
    """A private database at the revision before the records migration, collections ready."""
    dsn = sibling_dsn(settings.postgres_dsn.get_secret_value(), f"_records_{uuid.uuid4().hex[:6]}")
    base = f"{settings.milvus_collection}_rec_{uuid.uuid4().hex[:6]}"
    private = with_updates(
        settings,
        postgres_dsn=dsn,
        milvus_collection=base,
        milvus_uri=own_connection(settings.milvus_uri),
        store_timeout=30.0,
    )
    recreate_database(dsn)
    script = ScriptDirectory.from_config(alembic_config())
    previous = script.get_revision(RECORDS_REVISION).down_revision
    assert isinstance(previous, str)
    command.upgrade(alembic_config(dsn.replace("postgresql://", "postgresql+psycopg://")), previous)
    try:
        yield private
    finally:
        drop_collections(settings.milvus_uri, base)
        drop_database(dsn)


def fill_previous_release(settings: Settings, stack: Stack) -> dict[str, list[float]]:
    """Rows and vectors as the previous release stored them; returns the item vectors by
    '<item>:<path>' (what search must find)."""
    dsn = settings.postgres_dsn.get_secret_value()
    embed = stack.embedder.embed
    index = ItemVectorIndex(stack.milvus)
    owner = read_identity(stack.postgres)
    stack.milvus.ensure_collection(stack.embedder.dimension, owner)
    # The item collections as that release made them: schema v1 (no namespace_path, attrs).
    own = Space("own", 3, "cosine", index.space_collection(1, "own"), 1)
    create_v1_collection(stack.milvus.client, stack.items.default_space, owner)
    create_v1_collection(stack.milvus.client, own, owner)
    vectors: dict[str, list[float]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (1, 'acme')")
        for memory_id, (coord, text) in MEMORIES.items():
            conn.execute(
                "INSERT INTO memories (id, tenant_id, coord, memory_type, payload, text, "
                "importance) OVERRIDING SYSTEM VALUE VALUES (%s, 1, %s, 'episodic', %s, %s, 0.5)",
                (memory_id, coord, psycopg.types.json.Jsonb({"text": text}), text),
            )
        conn.execute("SELECT setval(pg_get_serial_sequence('memories', 'id'), 3)")
        conn.execute(
            "INSERT INTO links (tenant_id, from_id, to_id, link_type, strength) "
            "VALUES (1, 1, 2, 'related', 1.0), (1, 2, 3, 'related', 0.5)"
        )
        conn.execute(
            "INSERT INTO embedding_spaces (tenant_id, name, dimension, metric, collection) "
            "VALUES (1, 'own', 3, 'cosine', %s)",
            (own.collection,),
        )
        now = datetime.now(UTC)
        for item_id, (namespace, key, value) in ITEMS.items():
            space = None if item_id == 3 else "default"
            ttl = 60.0 if item_id == 2 else None
            conn.execute(
                "INSERT INTO items (id, tenant_id, namespace, namespace_path, key, value, space, "
                "ttl_minutes, expires_at) OVERRIDING SYSTEM VALUE VALUES "
                "(%s, 1, %s, %s, %s, %s, %s, %s, %s)",
                (
                    item_id,
                    namespace,
                    ".".join(namespace),
                    key,
                    psycopg.types.json.Jsonb(value),
                    space,
                    ttl,
                    now.replace(year=now.year + 1) if ttl else None,
                ),
            )
        texts = {
            (1, "text"): ITEMS[1][2]["text"],
            (2, "a"): "loves sailing",
            (2, "b"): "fears heights",
        }
        embedded = embed(list(texts.values()))
        records: list[V1Row] = []
        for vector_id, ((item_id, path), vector) in enumerate(
            zip(texts, embedded, strict=True), start=1
        ):
            conn.execute(
                "INSERT INTO item_vectors (id, item_id, path, vector) VALUES (%s, %s, %s, %s)",
                (vector_id, item_id, path, vector),
            )
            records.append((vector_id, item_id, 1, vector))
            vectors[f"{item_id}:{path}"] = vector
        conn.execute("SELECT setval('item_vectors_id_seq', 10)")
        # A fifth item in the registered space, with the client's vector.
        conn.execute(
            "INSERT INTO items (id, tenant_id, namespace, namespace_path, key, value, space) "
            "OVERRIDING SYSTEM VALUE VALUES (5, 1, '{own}', 'own', 'v', '{\"t\": 1}', 'own')"
        )
        conn.execute(
            "INSERT INTO item_vectors (id, item_id, path, vector) VALUES (11, 5, '$', %s)",
            ([1.0, 0.0, 0.0],),
        )
        conn.execute(
            "INSERT INTO item_outbox (tenant_id, item_id, collections) VALUES (1, %s, %s)",
            (DELETED_ITEM, [index.default_collection]),
        )
    memory_vectors = embed([text for _coord, text in MEMORIES.values()])
    stack.milvus.upsert(
        [
            VectorRecord(memory_id, 1, "episodic", 0, {"text": text}, vector)
            for (memory_id, (_coord, text)), vector in zip(
                MEMORIES.items(), memory_vectors, strict=True
            )
        ]
    )
    client = stack.milvus.client
    insert_v1(client, index.default_collection, records)
    insert_v1(client, own.collection, [(11, 5, 1, [1.0, 0.0, 0.0])])
    insert_v1(
        client, index.default_collection, [(12, DELETED_ITEM, 1, embed(["a deleted note"])[0])]
    )
    return vectors


def test_previous_release_database_migrates_without_reembedding(old_stack: Settings) -> None:
    stack = create_stack(old_stack)
    try:
        vectors = fill_previous_release(old_stack, stack)
    finally:
        stack.close()
    migrate(old_stack.postgres_dsn.get_secret_value())

    # Until the Milvus steps have run, the service refuses to start, and says why: the moves
    # pending, and each item collection still v1.
    with pytest.raises(InfrastructureError, match="move-items") as refused:
        bootstrap(old_stack, dry_run=True).close()
    assert "migrate-item-collections" in str(refused.value)
    # The documented commands do the steps: the two item collections to v2 (then nothing),
    # the five moves (four items and the deleted one; then nothing); bootstrap then finds
    # nothing pending and validates.
    env = stack_env(old_stack)
    for command_name, expected in (
        ("migrate-item-collections", "migrated 2 item collection(s)"),
        ("migrate-item-collections", "migrated 0 item collection(s)"),
        ("move-items", "moved 5 item(s)"),
        ("move-items", "moved 0 item(s)"),
    ):
        done = subprocess.run(
            python_module("somafractalmemory.cli", command_name),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout
    stack = bootstrap(old_stack, dry_run=False)
    try:
        tenant = Tenant(1, "acme")
        stats = stack.memories.stats(tenant)
        assert (stats.memories, stats.links, stats.vectors) == (3, 2, 3)
        assert stack.items.stats(tenant) == (4, 4)  # items: 4 rows; vectors: 3 default + 1 own
        # Memories: the same recall as before, the links still between the same coordinates.
        hits = stack.memories.search(
            tenant, SearchQuery("what drink do I like?", None, "hybrid", 3, SearchScope())
        )
        assert hits[0].memory.coord == "1,1"
        assert [n.coord for n in stack.memories.graph.neighbors(tenant, "1,1", 2, 10, None)] == [
            "2,2",
            "3,3",
        ]
        # Items: vector search ranks by the stored vectors, found under the new ids.
        query = stack.embedder.embed_one("sailing boats")
        found = stack.items.search(
            tenant, ItemSearch(namespace_prefix=("users",), vector=query, limit=3)
        )
        best = {}
        for name, vector in vectors.items():
            item = int(name.split(":")[0])
            score = sum(a * b for a, b in zip(query, vector, strict=True))
            best[item] = max(best.get(item, -1.0), score)
        expected = [ITEMS[i][1] for i in sorted(best, key=lambda i: -best[i])]
        assert [h.item.key for h in found][: len(expected)] == expected
        assert found[0].score == pytest.approx(max(best.values()), abs=1e-4)
        own = stack.items.search(
            tenant, ItemSearch(namespace_prefix=("own",), space="own", vector=[1.0, 0.0, 0.0])
        )
        assert [(h.item.key, round(h.score or 0, 4)) for h in own] == [("v", 1.0)]
        leased = stack.items.get(tenant, ["users", "ann"], "notes", refresh_ttl=False)
        assert leased.ttl_minutes == 60.0
        # The moved items' keyword text is what their vectors' paths select.
        with psycopg.connect(old_stack.postgres_dsn.get_secret_value()) as conn:
            text = conn.execute("SELECT text FROM records WHERE key = 'notes'").fetchone()
        assert text == ("loves sailing\nfears heights",)
        # No drift anywhere; the deleted item's stale vector is gone.
        reports = reconcile(stack.memories, stack.items)
        assert [
            (r.collection, r.missing, r.orphans) for r in reports if r.missing or r.orphans
        ] == []
        assert 12 not in {
            v for v, _ in stack.items.index.entities(stack.items.index.default_collection, 1)
        }
        stack.items.drain_outbox(grace_seconds=0)
        assert stack.postgres.outbox_size() == 0
    finally:
        stack.close()
