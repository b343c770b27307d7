"""Item collections v2 on the real stores: the namespace prefix filtered inside Milvus (labels
with ``%``, ``_``, ``\\``, quotes, controls and non-ASCII; whole labels only), before the
limit, with expiry still applied; ``attrs`` written and filtered; and the migration of a v1
collection (made the old way) by copy and rename: the same results and counts, stopped runs
finished, a second run a no-op, no drift."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest

from somafractalmemory.core.item_collections import migrate_collection, migrate_item_collections
from somafractalmemory.core.reconcile import reconcile
from somafractalmemory.errors import SchemaError
from somafractalmemory.health import check_milvus
from somafractalmemory.models import DatabaseIdentity, ItemSearch, ItemVector, Space, Tenant
from somafractalmemory.stack import Stack
from somafractalmemory.stores.item_collections import rename
from somafractalmemory.stores.item_vector_filters import MAX_NAMESPACE_PATH_BYTES, quoted
from somafractalmemory.stores.items_milvus import MIGRATION_SUFFIX, ItemVectorRecord
from somafractalmemory.stores.milvus_filters import state_filter
from testkit.item_collections_v1 import downgrade_to_v1
from testkit.stores import tenant_of

Headers = dict[str, str]
QUERY = [1.0, 0.0, 0.0, 0.0]


def at_angle(degrees: float) -> list[float]:
    """A unit vector whose cosine with QUERY falls as ``degrees`` grows (0 to 180)."""
    rad = math.radians(degrees)
    return [math.cos(rad), math.sin(rad), 0.0, 0.0]


def new_space(stack: Stack, make_key: Callable[[], Headers], name: str) -> tuple[Tenant, Space]:
    tenant = tenant_of(stack, make_key())
    space, _ = stack.items.create_space(tenant, name, 4, "cosine")
    return tenant, space


def put(
    stack: Stack,
    tenant: Tenant,
    namespace: tuple[str, ...],
    key: str,
    vectors: list[list[float]],
    space: str,
    **value: object,
) -> int:
    items = stack.items
    write = items.prepare(
        tenant,
        namespace,
        key,
        {"k": key, **value},
        ["k"],
        None,
        space,
        [ItemVector("k", v) for v in vectors],
    )
    return items.put(tenant, write)[0].id


def under(namespace: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
    return namespace[: len(prefix)] == prefix


LABELLED = [
    ("a",),
    ("a", "b"),
    ("a", "b", "c"),
    ("a", "bc"),
    ("ab",),
    ("a_b",),
    ("axb",),
    ("a%",),
    ("a%", "c"),
    ("a%b",),
    ("a\\",),
    ("a\\", "c"),
    ("a\\\\",),
    ('a"q',),
    ("a'q",),
    ("a\nb",),
    ("a\rb\tc",),
    ("a\x01\x1f\x7f\x85",),
    ("a/",),
    ("a-",),
    ("é",),
    ("é", "x"),
    ("😀", "%_\\"),
    ("%",),
    ("_",),
    ("\\",),
]


def test_prefix_is_filtered_inside_milvus_on_whole_labels(
    stack: Stack, make_key: Callable[[], Headers]
) -> None:
    tenant, space = new_space(stack, make_key, "labels")
    ids = {}
    for i, namespace in enumerate(LABELLED):
        ids[put(stack, tenant, namespace, f"k{i}", [at_angle(i * 3)], "labels")] = namespace
    prefixes = {p[:n] for p in LABELLED for n in range(1, len(p) + 1)}
    prefixes |= {("a", "b", "c", "d"), ("a_",), ("a%b", "c"), ("é", "y"), ("a\\\\", "c")}
    for prefix in sorted(prefixes):
        expected = {ns for ns in LABELLED if under(ns, prefix)}
        # Milvus alone (PostgreSQL checks the prefix again in the service and would hide a
        # filter that lets too much through).
        hits = stack.items.index.search(space, tenant.id, QUERY, 100, prefix)
        assert {ids[h.item_id] for h in hits} == expected, prefix
        assert len(hits) == len(expected), prefix
        found = stack.items.search(
            tenant,
            ItemSearch(prefix, space="labels", vector=QUERY, limit=100, refresh_ttl=False),
        )
        assert {h.item.namespace for h in found} == expected, prefix
        assert all(h.score is not None for h in found)
        scores = [h.score or 0.0 for h in found]
        assert scores == sorted(scores, reverse=True)
    everything = stack.items.index.search(space, tenant.id, QUERY, 100)
    assert len(everything) == len(LABELLED)


def test_string_literals_and_limits() -> None:
    assert quoted('a"b\\c') == '"a\\"b\\\\c"'
    assert quoted("a\nb\r\t\x01\x7f") == '"a\\nb\\r\t\x01\x7f"'
    assert quoted("é😀%_") == '"é😀%_"'
    from somafractalmemory.core.item_paths import MAX_LABEL_LENGTH, MAX_NAMESPACE_DEPTH

    longest = ".".join(["😀" * MAX_LABEL_LENGTH] * MAX_NAMESPACE_DEPTH)
    assert len(longest.encode()) == MAX_NAMESPACE_PATH_BYTES


def test_longest_namespace_is_stored_and_found(
    stack: Stack, make_key: Callable[[], Headers]
) -> None:
    tenant, _ = new_space(stack, make_key, "longest")
    namespace = tuple(["😀" * 256] * 10)
    put(stack, tenant, namespace, "deep", [QUERY], "longest")
    put(stack, tenant, namespace[:9], "shallow", [QUERY], "longest")
    found = stack.items.search(
        tenant, ItemSearch(namespace, space="longest", vector=QUERY, refresh_ttl=False)
    )
    assert [h.item.key for h in found] == ["deep"]


def test_prefix_applies_before_the_limit_and_expiry_too(
    stack: Stack, make_key: Callable[[], Headers]
) -> None:
    """1,000 items, the 10 live matches ranked below every other: each page is exactly
    them, in order; expired matches ranked above them never come back."""
    tenant, _ = new_space(stack, make_key, "many")
    noise = [("many", "x_y"), ("many", "xzy"), ("many", "x%yz"), ("manyx",), ("many",)]

    def put_noise(i: int) -> int:
        return put(stack, tenant, noise[i % len(noise)], f"n{i}", [at_angle(i / 100)], "many", n=i)

    with ThreadPoolExecutor(max_workers=4) as pool:  # the server's write path, concurrently
        assert len(list(pool.map(put_noise, range(980)))) == 980
    matches = []
    for j in range(10):
        namespace = ("many", "x%y") if j % 2 else ("many", "x%y", "deep")
        put(stack, tenant, namespace, f"m{j}", [at_angle(120 + j)], "many", n=j)
        matches.append(f"m{j}")
    expired = []
    for j in range(10):
        put(stack, tenant, ("many", "x%y"), f"e{j}", [at_angle(100 + j)], "many", n=j)
        expired.append(f"e{j}")
    with psycopg.connect(stack.settings.postgres_dsn.get_secret_value(), autocommit=True) as conn:
        conn.execute(
            "UPDATE records SET ttl_minutes = 1, expires_at = now() - interval '1 minute' "
            "WHERE tenant_id = %s AND key = ANY(%s)",
            (tenant.id, expired),
        )

    def keys(prefix: tuple[str, ...] = ("many", "x%y"), **extra: object) -> list[str]:
        search = ItemSearch(prefix, space="many", vector=QUERY, refresh_ttl=False)
        found = stack.items.search(tenant, replace(search, **extra))
        return [h.item.key for h in found]

    assert keys(limit=5) == matches[:5]
    assert keys(limit=5, offset=5) == matches[5:]
    assert keys(limit=50) == matches
    assert keys(limit=3, filter={"n": {"$gte": 7}}) == ["m7", "m8", "m9"]
    assert keys(limit=20, include_expired=True) == expired + matches
    assert keys(("many", "x%y", "deep"), limit=3) == ["m0", "m2", "m4"]
    # Under ("many",): 4 of every 5 noise items (not ("manyx",)) and the live matches.
    assert len(keys(("many",), limit=1_000)) == 980 * 4 // 5 + 10


def test_attrs_are_written_and_filter_inside_milvus(
    stack: Stack, make_key: Callable[[], Headers]
) -> None:
    tenant, space = new_space(stack, make_key, "flags")
    put(stack, tenant, ("f",), "plain", [at_angle(1)], "flags")
    write = stack.items.prepare(
        tenant, ("f",), "flagged", {"k": "x"}, ["k"], None, "flags", [ItemVector("k", QUERY)]
    )
    stack.items.put(tenant, write, attrs={"sfm-superseded": True, "sfm-valid_to": 5})

    def keys(where: str) -> list[str]:
        search = ItemSearch(("f",), space="flags", vector=QUERY, refresh_ttl=False)
        return [h.item.key for h in stack.items.search(tenant, search, vector_filter=where)]

    assert keys(state_filter(False, None)[0]) == ["plain"]  # the form memory searches use
    assert keys('attrs["sfm-superseded"] == true and attrs["sfm-valid_to"] < 10') == ["flagged"]
    rows = stack.milvus.client.query(
        space.collection,
        filter=f"tenant_id == {tenant.id}",
        output_fields=["item_id", "namespace_path", "attrs"],
        consistency_level="Strong",
    )
    assert sorted(((r["namespace_path"], r["attrs"]) for r in rows), key=lambda r: len(r[1])) == [
        ("f", {}),
        ("f", {"sfm-superseded": True, "sfm-valid_to": 5}),
    ]


def snapshot(stack: Stack, tenant: Tenant, space: Space) -> dict[str, object]:
    """What the migration must keep: searches under several prefixes, counts, entities."""
    out: dict[str, object] = {}
    for prefix in [("m",), ("m", "p0"), ("m", "p1"), ("m", "p1", "q"), ("mx",)]:
        found = stack.items.search(
            tenant,
            ItemSearch(prefix, space=space.name, vector=QUERY, limit=25, refresh_ttl=False),
        )
        out[".".join(prefix)] = [(h.item.key, round(h.score or 0.0, 5)) for h in found]
    out["stats"] = stack.items.stats(tenant)
    out["entities"] = sorted(stack.items.index.entities(space.collection, tenant.id))
    return out


def test_v1_collection_migrates_without_reembedding(
    stack: Stack, make_key: Callable[[], Headers], owner: DatabaseIdentity
) -> None:
    tenant, space = new_space(stack, make_key, "mig")
    namespaces = [("m", "p0"), ("m", "p1"), ("m", "p1", "q"), ("mx",), ("m",)]
    for i in range(300):
        vectors = [at_angle(i / 3)] + ([at_angle(90 + i / 3)] if i % 4 == 0 else [])
        put(stack, tenant, namespaces[i % len(namespaces)], f"i{i}", vectors, "mig")
    before = snapshot(stack, tenant, space)
    assert before["m.p1"]
    assert before["stats"] == (300, 375)
    entities = downgrade_to_v1(stack.milvus.client, space, owner)
    assert entities == 375

    # Until the migration has run, the checks say so (start-up, validate-infra, /healthz).
    with pytest.raises(SchemaError, match=r"v1 item schema.*migrate-item-collections"):
        stack.items.check_collections(owner)
    with pytest.raises(SchemaError, match=space.collection):
        check_milvus(stack)

    # A run stopped mid-copy left a partial copy: it is dropped and made again.
    copy = space.collection + MIGRATION_SUFFIX
    stack.items.index.create(copy, space, owner)
    stack.items.index.load(copy)
    stack.items.index.insert(copy, [ItemVectorRecord(1, 1, tenant.id, QUERY, "junk")])
    done = {r.collection: r for r in migrate_item_collections(stack.items)}
    assert (done[space.collection].outcome, done[space.collection].copied) == ("migrated", 375)
    assert done[stack.items.index.default_collection].outcome == "current"
    stack.items.check_collections(owner)  # v2, loaded, indexed, stamped with this database
    assert snapshot(stack, tenant, space) == before
    rows = stack.milvus.client.query(
        space.collection,
        filter=f"tenant_id == {tenant.id}",
        output_fields=["item_id", "namespace_path", "attrs"],
        consistency_level="Strong",
    )
    paths = {i.id: ".".join(i.namespace) for i in stack.items.repo.items_page(tenant.id, 0, 1000)}
    assert len(rows) == 375
    assert all(r["namespace_path"] == paths[r["item_id"]] and r["attrs"] == {} for r in rows)

    # A second run does nothing.
    again = migrate_item_collections(stack.items)
    assert {r.outcome for r in again} <= {"current", "absent"}
    assert snapshot(stack, tenant, space) == before

    # A run stopped between the drop and the rename: the checks name it, ensure refuses to
    # make an empty collection in its place, and the next run renames the copy.
    rename(stack.items.index, space.collection, copy)
    with pytest.raises(SchemaError, match="interrupted"):
        stack.items.check_collections(owner)
    with pytest.raises(SchemaError, match="interrupted"):
        stack.items.index.ensure_collection(space, owner)
    assert migrate_collection(stack.items, space, owner).outcome == "finished"
    assert snapshot(stack, tenant, space) == before

    reports = reconcile(stack.memories, stack.items, tenant.name)
    assert [(r.collection, r.missing, r.orphans) for r in reports if r.missing or r.orphans] == []
