"""Namespaced items on the real stores: CRUD, search, filters, listing, spaces, TTL, tenants."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest
from fastapi.testclient import TestClient

from somafractalmemory.models import DatabaseIdentity, Space
from somafractalmemory.stack import Stack
from somafractalmemory.stores.items_milvus import ItemVectorIndex
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.ownership import read_identity
from testkit.stores import own_connection, tenant_of, with_updates

Headers = dict[str, str]


def put(
    client: TestClient, auth: Headers, namespace: list[str], key: str, value: dict, **extra: object
) -> dict:
    response = client.put(
        "/items", headers=auth, json={"namespace": namespace, "key": key, "value": value, **extra}
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def search(client: TestClient, auth: Headers, **body: object) -> list[dict]:
    response = client.post("/items/search", headers=auth, json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def get(client: TestClient, auth: Headers, namespace: list[str], key: str, **params: object):
    return client.get("/items", headers=auth, params={"namespace": namespace, "key": key, **params})


def test_put_get_replace_delete(client: TestClient, auth: Headers, stack: Stack) -> None:
    first = client.put(
        "/items",
        headers=auth,
        json={"namespace": ["users", "ann"], "key": "prefs", "value": {"text": "likes tea"}},
    )
    assert first.status_code == 201
    created = first.json()
    second = client.put(
        "/items",
        headers=auth,
        json={"namespace": ["users", "ann"], "key": "prefs", "value": {"text": "likes coffee"}},
    )
    assert second.status_code == 200
    replaced = second.json()
    assert replaced["created_at"] == created["created_at"]
    assert replaced["updated_at"] > created["updated_at"]  # microsecond timestamps
    read = get(client, auth, ["users", "ann"], "prefs").json()
    assert read["value"] == {"text": "likes coffee"}
    # The replace left exactly one vector, the new one, in PostgreSQL and Milvus.
    tenant = tenant_of(stack, auth)
    item_id = stack.items.repo.page(tenant.id, ("users",), {}, False, 10, 0)[0].id
    vectors = stack.items.repo.vectors_of([item_id])[item_id]
    assert len(vectors) == 1
    milvus_ids = stack.items.index.ids_of_items(
        stack.items.index.default_collection, tenant.id, [item_id]
    )
    assert milvus_ids == [vectors[0][0]]
    assert search(client, auth, query="coffee")[0]["key"] == "prefs"

    assert client.delete(
        "/items", headers=auth, params={"namespace": ["users", "ann"], "key": "prefs"}
    ).json() == {"deleted": True}
    assert get(client, auth, ["users", "ann"], "prefs").status_code == 404
    assert (
        stack.items.index.ids_of_items(stack.items.index.default_collection, tenant.id, [item_id])
        == []
    )
    assert (
        client.delete(
            "/items", headers=auth, params={"namespace": ["users", "ann"], "key": "prefs"}
        ).status_code
        == 404
    )


def _item(**fields: object) -> dict:
    return {"namespace": ["a"], "key": "k", "value": {"a": 1}, **fields}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (_item(namespace=[]), 422, "namespace"),
        (_item(namespace=["a.b"]), 422, "namespace"),
        (_item(namespace=["a", ""]), 422, "namespace"),
        (_item(namespace=[str(i) for i in range(11)]), 422, "namespace"),
        (_item(key="k" * 513), 422, "key"),
        (_item(key=""), 422, "key"),
        (_item(ttl_minutes=0), 422, "ttl_minutes"),
        # A space that does not exist is a reference to a missing resource, as a link to a
        # missing memory is (POST /graph/link: 404); the detail names it.
        (_item(space="nope"), 404, "'nope'"),
        (_item(vectors=[{"vector": [1.0]}]), 422, "vectors"),
    ],
)
def test_bad_items_are_refused(
    client: TestClient, auth: Headers, body: dict, status: int, field: str
) -> None:
    response = client.put("/items", headers=auth, json=body)
    assert response.status_code == status, response.text
    error = "NotFoundError" if status == 404 else "InvalidInputError"
    assert response.json()["error"] == error
    assert field in response.json()["detail"]


def test_prefix_matches_whole_labels_and_query_less_search_is_newest_first(
    client: TestClient, auth: Headers
) -> None:
    for namespace in (["a"], ["a", "b"], ["ab"], ["a", "c", "d"], ["a_%"]):
        put(client, auth, namespace, "k", {"n": 1}, index=False)
    found = search(client, auth, namespace_prefix=["a"], limit=100)
    assert [tuple(i["namespace"]) for i in found] == [("a", "c", "d"), ("a", "b"), ("a",)]
    assert [i["namespace"] for i in search(client, auth, namespace_prefix=["a_%"])] == [["a_%"]]
    assert len(search(client, auth, limit=100)) == 5
    assert search(client, auth, namespace_prefix=["a"], limit=1, offset=1)[0]["namespace"] == [
        "a",
        "b",
    ]


def test_filters_apply_before_the_limit(client: TestClient, auth: Headers) -> None:
    for i in range(12):
        put(
            client,
            auth,
            ["docs"],
            f"d{i}",
            {"i": i, "even": i % 2 == 0, "tag": f"t{i % 3}"},
            index=False,
        )
    put(client, auth, ["docs"], "nested", {"meta": {"lang": "en", "n": 5}, "i": "x"}, index=False)

    def keys(**body: object) -> list[str]:
        return [i["key"] for i in search(client, auth, namespace_prefix=["docs"], **body)]

    # Only two of the newest three are even: a filter after the limit would return fewer.
    assert keys(filter={"even": True}, limit=3) == ["d10", "d8", "d6"]
    assert keys(filter={"i": {"$gte": 9}}, limit=10) == ["d11", "d10", "d9"]
    assert keys(filter={"i": {"$gt": 2, "$lt": 5}}) == ["d4", "d3"]
    assert keys(filter={"i": {"$lte": 1}}) == ["d1", "d0"]
    assert keys(filter={"tag": {"$eq": "t1"}}) == ["d10", "d7", "d4", "d1"]
    assert len(keys(filter={"tag": {"$ne": "t1"}}, limit=100)) == 9  # includes "nested"
    assert keys(filter={"meta": {"lang": "en"}}) == ["nested"]
    assert keys(filter={"i": {"$gt": "w"}}) == ["nested"]  # strings compare with strings
    assert keys(filter={"even": True}, limit=2, offset=2) == ["d6", "d4"]
    bad = client.post("/items/search", headers=auth, json={"filter": {"i": {"$regex": "x"}}})
    assert bad.status_code == 422
    assert "$regex" in bad.json()["detail"]


def test_index_paths_one_vector_per_element_best_vector_wins(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    put(
        client,
        auth,
        ["trips"],
        "t1",
        {"legs": ["flight from Berlin to Tokyo", "train from Tokyo to Kyoto"], "note": "x"},
        index=["legs[*]"],
    )
    put(client, auth, ["trips"], "t2", {"text": "recipe for a lemon cake"})
    put(client, auth, ["trips"], "t3", {"text": "bullet train timetable"}, index=False)
    tenant = tenant_of(stack, auth)
    t1 = stack.items.repo.page(tenant.id, ("trips",), {"note": "x"}, False, 1, 0)[0]
    assert len(stack.items.repo.vectors_of([t1.id])[t1.id]) == 2
    hits = search(client, auth, namespace_prefix=["trips"], query="rail journey to Kyoto")
    assert [h["key"] for h in hits] == ["t1", "t2", "t3"]  # each item once; unindexed last
    assert hits[0]["score"] > hits[1]["score"]
    assert hits[2]["score"] is None
    # Re-indexing on the first element only: the second vector is gone.
    put(client, auth, ["trips"], "t1", {"legs": ["flight from Berlin to Tokyo"]}, index=["legs[0]"])
    assert len(stack.items.repo.vectors_of([t1.id])[t1.id]) == 1
    assert (
        len(
            stack.items.index.ids_of_items(stack.items.index.default_collection, tenant.id, [t1.id])
        )
        == 1
    )


def test_namespaces_listing(client: TestClient, auth: Headers) -> None:
    for namespace in (
        ["a", "b", "c"],
        ["a", "b", "d", "e"],
        ["a", "c", "f"],
        ["b", "a", "f"],
        ["users", "alice"],
        ["users", "malice"],
    ):
        put(client, auth, namespace, "k", {"v": 1}, index=False)

    def listed(**params: object) -> list[list[str]]:
        response = client.get("/namespaces", headers=auth, params=params)
        assert response.status_code == 200, response.text
        return list(response.json()["namespaces"])

    assert listed(prefix=["a", "b"]) == [["a", "b", "c"], ["a", "b", "d", "e"]]
    assert listed(suffix=["f"]) == [["a", "c", "f"], ["b", "a", "f"]]
    assert listed(prefix=["a", "*", "f"]) == [["a", "c", "f"]]
    assert listed(suffix=["alice"]) == [["users", "alice"]]
    assert listed(max_depth=1) == [["a"], ["b"], ["users"]]
    assert listed(prefix=["a"], max_depth=2) == [["a", "b"], ["a", "c"]]
    assert listed(limit=2, offset=1) == [["a", "b", "d", "e"], ["a", "c", "f"]]
    assert client.get("/namespaces", headers=auth, params={"prefix": ["a.b"]}).status_code == 422


def test_tenants_are_isolated(client: TestClient, make_key: Callable[[], Headers]) -> None:
    alice, bob = make_key(), make_key()
    put(client, alice, ["shared"], "k", {"text": "alice's secret plan"})
    put(client, bob, ["shared"], "k", {"text": "bob's grocery list"})
    assert get(client, alice, ["shared"], "k").json()["value"]["text"] == "alice's secret plan"
    assert [i["value"]["text"] for i in search(client, bob, query="secret plan")] == [
        "bob's grocery list"
    ]
    assert client.get("/namespaces", headers=bob).json()["namespaces"] == [["shared"]]
    client.delete("/items", headers=bob, params={"namespace": ["shared"], "key": "k"})
    assert get(client, alice, ["shared"], "k").status_code == 200
    space = client.post("/spaces", headers=alice, json={"name": "own", "dimension": 3})
    assert space.status_code == 201
    assert [s["name"] for s in client.get("/spaces", headers=bob).json()["spaces"]] == ["default"]
    refused = client.put(
        "/items",
        headers=bob,
        json={
            "namespace": ["x"],
            "key": "k",
            "value": {},
            "space": "own",
            "vectors": [{"vector": [1, 0, 0]}],
        },
    )
    assert refused.status_code == 404
    assert client.delete("/spaces/own", headers=alice).status_code == 200


def test_a_space_is_made_whole_when_its_load_outlasts_the_store_timeout(
    stack: Stack, owner: DatabaseIdentity
) -> None:
    """A collection load takes seconds here; the store timeout bounds each call (1 s in this
    test), not the load. Before, pymilvus loaded within that timeout: the space was refused
    with a 503, its collection left created but not loaded."""
    settings = with_updates(
        stack.settings, store_timeout=1.0, milvus_uri=own_connection(stack.settings.milvus_uri)
    )
    milvus = MilvusStore(settings)
    index = ItemVectorIndex(milvus)
    space = Space("slowload", 3, "l2", f"{settings.milvus_collection}_space_0_slowload", 0)
    began = time.monotonic()
    try:
        index.ensure_collection(space, owner)
        took = time.monotonic() - began
        index.check_collection(space, owner)  # exists, indexed with its metric, loaded, ours
    finally:
        index.drop_collection(space.collection)
        milvus.close()
    assert took > 1.0, f"the load took {took:.2f} s: no longer than the timeout, no test"


def test_registered_space_with_client_vectors(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    created = client.post(
        "/spaces", headers=auth, json={"name": "mine", "dimension": 3, "metric": "l2"}
    )
    assert created.status_code == 201
    again = client.post(
        "/spaces", headers=auth, json={"name": "mine", "dimension": 3, "metric": "l2"}
    )
    assert again.status_code == 200
    clash = client.post("/spaces", headers=auth, json={"name": "mine", "dimension": 4})
    assert clash.status_code == 409
    collection = created.json()["collection"]
    tenant = tenant_of(stack, auth)
    assert collection == f"{stack.settings.milvus_collection}_space_{tenant.id}_mine"

    def vec(*v: float) -> dict[str, object]:
        return {"path": "$", "vector": list(v)}

    put(client, auth, ["v"], "a", {"n": 1}, space="mine", vectors=[vec(1, 0, 0), vec(0, 0, 5)])
    put(client, auth, ["v"], "b", {"n": 2}, space="mine", vectors=[vec(0, 1, 0)])
    hits = search(client, auth, namespace_prefix=["v"], space="mine", vector=[0, 0, 4])
    assert [h["key"] for h in hits] == ["a", "b"]
    assert hits[0]["score"] == pytest.approx(-1.0)  # negative Euclidean distance
    filtered = search(client, auth, space="mine", vector=[0, 0, 4], filter={"n": {"$gt": 1}})
    assert [h["key"] for h in filtered] == ["b"]
    wrong = client.post("/items/search", headers=auth, json={"space": "mine", "vector": [1, 0]})
    assert wrong.status_code == 422
    needs_vector = client.post("/items/search", headers=auth, json={"space": "mine", "query": "x"})
    assert needs_vector.status_code == 422
    # Start-up validation checks registered spaces' collections too.
    stack.items.check_collections(read_identity(stack.postgres))
    dropped = client.delete("/spaces/mine", headers=auth)
    assert dropped.json() == {"deleted": True, "items_deleted": 2}
    assert get(client, auth, ["v"], "a").status_code == 404


def test_ttl_expiry_refresh_and_sweep(client: TestClient, auth: Headers, stack: Stack) -> None:
    """Deadlines are measured from the requests' own times, so a slow machine cannot make an
    item expire before the read that should refresh it."""
    ttl_seconds = 6.0

    def sleep_until(moment: float) -> None:
        time.sleep(max(0.0, moment - time.monotonic()))

    started = time.monotonic()
    put(client, auth, ["tmp"], "plain", {"n": 1}, index=False, ttl_minutes=ttl_seconds / 60)
    put(client, auth, ["tmp"], "vec", {"text": "short lived note"}, ttl_minutes=ttl_seconds / 60)
    vec_written = time.monotonic()  # "vec" expires by vec_written + ttl_seconds
    put(client, auth, ["tmp"], "kept", {"n": 3}, index=False)
    before = get(client, auth, ["tmp"], "plain").json()["expires_at"]
    sleep_until(started + ttl_seconds / 2)
    refreshing = time.monotonic()  # "plain" now lives until refreshing + ttl_seconds at least
    refreshed = get(client, auth, ["tmp"], "plain").json()["expires_at"]
    assert refreshed > before  # a read extends the TTL
    get(client, auth, ["tmp"], "vec", refresh_ttl="false")
    sleep_until(vec_written + ttl_seconds + 0.3)
    assert time.monotonic() < refreshing + ttl_seconds, "too slow to check the refreshed item"
    # "vec" was read without refresh: expired, never returned though not yet swept.
    assert get(client, auth, ["tmp"], "vec").status_code == 404
    assert get(client, auth, ["tmp"], "vec", include_expired="true").status_code == 200
    assert get(client, auth, ["tmp"], "plain").status_code == 200  # and refreshed again
    sleep_until(time.monotonic() + ttl_seconds + 0.3)
    assert [i["key"] for i in search(client, auth, namespace_prefix=["tmp"])] == ["kept"]
    assert client.get("/namespaces", headers=auth).json()["namespaces"] == [["tmp"]]
    tenant = tenant_of(stack, auth)
    vec_id = stack.items.repo.page(tenant.id, ("tmp",), {}, True, 10, 0)
    ids = [i.id for i in vec_id]
    assert client.post("/items/sweep", headers=auth).json() == {"deleted": 2}
    assert search(client, auth, namespace_prefix=["tmp"], include_expired=True)[0]["key"] == "kept"
    assert (
        stack.items.index.ids_of_items(stack.items.index.default_collection, tenant.id, ids) == []
    )


def test_a_tenants_sweep_deletes_only_that_tenants_expired_items(
    client: TestClient, make_key: Callable[[], Headers], stack: Stack
) -> None:
    """Two tenants with expired items (with and without vectors) under the same namespace and
    keys: ``POST /items/sweep`` of one deletes its own expired items, rows and vectors, and
    nothing of the other's, which its own sweep then deletes."""
    ttl = 0.01  # minutes: 0.6 s
    tenants = {name: make_key() for name in ("a", "b")}
    ids: dict[str, list[int]] = {}
    for name, auth in tenants.items():
        put(client, auth, ["ttl"], "plain", {"n": 1}, index=False, ttl_minutes=ttl)
        put(
            client, auth, ["ttl"], "vec", {"text": f"a short lived note of {name}"}, ttl_minutes=ttl
        )
        put(client, auth, ["ttl"], "kept", {"n": 2}, index=False)
        tenant = tenant_of(stack, auth)
        ids[name] = [i.id for i in stack.items.repo.page(tenant.id, ("ttl",), {}, True, 10, 0)]
    time.sleep(ttl * 60 + 0.3)

    def left(name: str) -> tuple[list[str], int]:
        """The tenant's item keys (expired ones included) and its vectors in Milvus."""
        auth = tenants[name]
        keys = sorted(i["key"] for i in search(client, auth, include_expired=True))
        tenant = tenant_of(stack, auth)
        collection = stack.items.index.default_collection
        return keys, len(stack.items.index.ids_of_items(collection, tenant.id, ids[name]))

    assert left("a") == left("b") == (["kept", "plain", "vec"], 1)
    assert client.post("/items/sweep", headers=tenants["a"]).json() == {"deleted": 2}
    assert left("a") == (["kept"], 0)
    assert left("b") == (["kept", "plain", "vec"], 1)
    assert get(client, tenants["b"], ["ttl"], "vec", include_expired="true").status_code == 200
    assert client.post("/items/sweep", headers=tenants["b"]).json() == {"deleted": 2}
    assert left("b") == (["kept"], 0)


def test_background_sweeper_deletes_expired_items(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    from somafractalmemory.core.maintenance import Maintainer

    put(client, auth, ["bg"], "k", {"text": "gone soon"}, ttl_minutes=1 / 60)
    maintainer = Maintainer(stack.memories, stack.items, 0.2, sweep_interval=0.2, grace=0.0)
    maintainer.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not search(
                client, auth, namespace_prefix=["bg"], include_expired=True, refresh_ttl=False
            ):
                break
            time.sleep(0.3)
    finally:
        maintainer.stop()
    assert search(client, auth, namespace_prefix=["bg"], include_expired=True) == []


def test_outbox_drain_repairs_a_write_that_died_after_milvus(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    """Steps 1-3 of an item write, killed before the commit: the drainer removes the
    vectors Milvus got for a row PostgreSQL never kept, and restores the old ones."""
    from somafractalmemory.models import ItemVector, ItemWrite
    from somafractalmemory.stores.items_milvus import ItemVectorRecord

    tenant = tenant_of(stack, auth)
    put(client, auth, ["crash"], "k", {"text": "the original text about gardening"})
    items = stack.items
    write: ItemWrite = items.prepare(
        tenant, ["crash"], "k", {"text": "a replacement about astronomy"}, None, None, None, None
    )
    collection = items.index.default_collection
    with stack.postgres.unit_of_work() as intent:
        existing = items.repo.lock(intent, tenant.id, write.namespace, write.key)
        assert existing is not None
        _, vector_ids = items.repo.reserve_ids(intent, 1)
        items.repo.add_outbox(intent, tenant.id, [(existing[0], [collection])])
        intent.commit()
    with stack.postgres.unit_of_work() as uow:
        items.repo.upsert(uow, tenant.id, write, existing[0])
        old = items.repo.replace_vectors(
            uow, existing[0], [(vector_ids[0], ItemVector("text", write.vectors[0].vector))]
        )
        items.index.delete(collection, old)
        items.index.write(
            collection,
            [
                ItemVectorRecord(
                    vector_ids[0], existing[0], tenant.id, write.vectors[0].vector, "crash"
                )
            ],
        )
        # no commit: the process "dies" here
    assert items.index.ids_of_items(collection, tenant.id, [existing[0]]) == vector_ids
    assert items.drain_outbox(grace_seconds=0) >= 1
    kept = items.repo.vectors_of([existing[0]])[existing[0]]
    assert items.index.ids_of_items(collection, tenant.id, [existing[0]]) == [kept[0][0]]
    hits = search(client, auth, namespace_prefix=["crash"], query="gardening")
    assert hits[0]["value"]["text"] == "the original text about gardening"
    assert hits[0]["score"] > 0.5


ALICE = ["users", "alice"]


def test_python_client_item_methods(stack: Stack, make_key: Callable[[], Headers]) -> None:
    """The typed client's item calls, in-process over the ASGI app."""
    from somafractalmemory.api.app import create_app
    from somafractalmemory.client import SFMClient

    key = make_key()["Authorization"].split()[1]
    with TestClient(create_app(stack.settings)) as app_client:
        sfm = SFMClient("http://testserver", key)
        app_client.headers.update(sfm._http.headers)
        sfm._http.close()
        sfm._http = app_client  # the TestClient is an httpx.Client bound to the app
        stored = sfm.put_item(ALICE, "k", {"text": "client stored"}, ttl_minutes=5)
        assert stored.ttl_minutes == 5
        assert sfm.get_item(ALICE, "k") is not None
        assert sfm.get_item(ALICE, "missing") is None
        assert sfm.search_items(["users"], query="stored").items[0].key == "k"
        assert sfm.list_namespaces(prefix=["users"]).namespaces == [ALICE]
        assert sfm.create_space("cs", 2).name == "cs"
        assert [s.name for s in sfm.list_spaces().spaces] == ["default", "cs"]
        assert sfm.delete_space("cs").deleted
        assert sfm.sweep_items() == 0
        assert sfm.delete_item(ALICE, "k") is True
        assert sfm.delete_item(ALICE, "k") is False


def test_keyword_and_hybrid_search_of_items(client: TestClient, auth: Headers) -> None:
    """Items get the memories' keyword signal and fusion: a rare word is found by keyword
    mode, hybrid ranks an item both signals find first, filters and prefixes still apply."""
    put(client, auth, ["kb", "a"], "tea", {"text": "Oolong is a partly oxidised tea", "n": 1})
    put(client, auth, ["kb", "a"], "kite", {"text": "the red kite flew over the hill", "n": 2})
    put(client, auth, ["kb", "b"], "boat", {"text": "we sailed the boat to the island", "n": 3})
    put(client, auth, ["other"], "tea2", {"text": "oolong elsewhere", "n": 4})
    found = search(client, auth, namespace_prefix=["kb"], query="oolong", mode="keyword")
    assert [item["key"] for item in found] == ["tea"]
    assert found[0]["score"] > 0
    hybrid = search(client, auth, namespace_prefix=["kb"], query="red kite", mode="hybrid")
    assert hybrid[0]["key"] == "kite"
    assert hybrid[0]["score"] > max(item["score"] for item in hybrid[1:])
    filtered = search(
        client, auth, namespace_prefix=["kb"], query="boat flew", mode="keyword", filter={"n": 3}
    )
    assert [item["key"] for item in filtered] == ["boat"]
    missing = client.post(
        "/items/search", headers=auth, json={"namespace_prefix": ["kb"], "mode": "keyword"}
    )
    assert missing.status_code == 422
    assert missing.json()["detail"].startswith("query")


def test_item_reads_are_cached_until_a_write(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    """A read of an item without a TTL fills the Redis cache and the next read is served
    from it; a replace or delete drops the copy; an item with a TTL is never cached."""
    tenant = tenant_of(stack, auth)
    redis = stack.cache.client
    name = stack.cache.item_key(tenant.id, ["c"], "k")
    put(client, auth, ["c"], "k", {"text": "first"})
    assert redis.get(name) is None
    assert get(client, auth, ["c"], "k").json()["value"] == {"text": "first"}
    assert redis.get(name) is not None  # filled by the read
    # Served from the cache: a change behind the service's back is not seen...
    with psycopg.connect(stack.settings.postgres_dsn.get_secret_value()) as conn:
        conn.execute("UPDATE records SET payload = '{\"text\": \"sneaky\"}' WHERE key = 'k'")
    assert get(client, auth, ["c"], "k").json()["value"] == {"text": "first"}
    # ...while a write through the service drops the copy.
    put(client, auth, ["c"], "k", {"text": "second"})
    assert redis.get(name) is None
    assert get(client, auth, ["c"], "k").json()["value"] == {"text": "second"}
    assert (
        client.delete("/items", headers=auth, params={"namespace": ["c"], "key": "k"}).status_code
        == 200
    )
    assert redis.get(name) is None
    assert get(client, auth, ["c"], "k").status_code == 404
    put(client, auth, ["c"], "leased", {"text": "x"}, ttl_minutes=5)
    assert get(client, auth, ["c"], "leased").status_code == 200
    assert redis.get(stack.cache.item_key(tenant.id, ["c"], "leased")) is None
