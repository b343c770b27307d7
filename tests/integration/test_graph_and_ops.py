"""Graph links, statistics, health and metrics on the real stack."""

from __future__ import annotations

from fastapi.testclient import TestClient

Headers = dict[str, str]


def _store(client: TestClient, auth: Headers, coord: str) -> None:
    response = client.post(
        "/memories", headers=auth, json={"coord": coord, "payload": {"text": f"memory {coord}"}}
    )
    assert response.status_code == 201


def test_links_neighbors_and_paths(client: TestClient, auth: Headers) -> None:
    for coord in ("1,1", "2,2", "3,3", "4,4", "5,5"):
        _store(client, auth, coord)
    for a, b, kind, strength in (
        ("1,1", "2,2", "related", 0.9),
        ("2,2", "3,3", "related", 0.5),
        ("3,3", "4,4", "caused", 0.7),
        ("1,1", "5,5", "caused", 0.3),
    ):
        response = client.post(
            "/graph/link",
            headers=auth,
            json={
                "from_coord": a,
                "to_coord": b,
                "link_type": kind,
                "strength": strength,
                "metadata": {"why": "test"},
            },
        )
        assert response.status_code == 201
        assert response.json()["metadata"] == {"why": "test"}

    one = client.get("/graph/neighbors", headers=auth, params={"coord": "1,1"}).json()
    assert one["neighbors"] == [
        {"coord": "2,2", "link_type": "related", "strength": 0.9, "depth": 1},
        {"coord": "5,5", "link_type": "caused", "strength": 0.3, "depth": 1},
    ]
    two = client.get("/graph/neighbors", headers=auth, params={"coord": "1.0,1", "k_hop": 2})
    assert [(n["coord"], n["depth"]) for n in two.json()["neighbors"]] == [
        ("2,2", 1),
        ("5,5", 1),
        ("3,3", 2),
    ]
    typed = client.get(
        "/graph/neighbors",
        headers=auth,
        params={"coord": "1,1", "k_hop": 3, "link_type": "related"},
    ).json()["neighbors"]
    assert [n["coord"] for n in typed] == ["2,2", "3,3"]
    backwards = client.get(
        "/graph/neighbors", headers=auth, params={"coord": "2,2", "direction": "in"}
    ).json()["neighbors"]
    assert [n["coord"] for n in backwards] == ["1,1"]

    path = client.get("/graph/path", headers=auth, params={"from_coord": "1,1", "to_coord": "4,4"})
    assert path.json() == {"path": ["1,1", "2,2", "3,3", "4,4"]}
    short = client.get(
        "/graph/path",
        headers=auth,
        params={"from_coord": "1,1", "to_coord": "4,4", "max_length": 2},
    )
    assert short.status_code == 404
    none = client.get("/graph/path", headers=auth, params={"from_coord": "4,4", "to_coord": "1,1"})
    assert none.status_code == 404
    both = client.get(
        "/graph/path",
        headers=auth,
        params={"from_coord": "4,4", "to_coord": "1,1", "direction": "both"},
    )
    assert both.json()["path"] == ["4,4", "3,3", "2,2", "1,1"]

    missing = client.post(
        "/graph/link", headers=auth, json={"from_coord": "1,1", "to_coord": "9,9"}
    )
    assert missing.status_code == 404
    assert "to_coord" in missing.json()["detail"]

    stats = client.get("/stats", headers=auth).json()
    assert stats == {
        "memories": 5,
        "by_type": {"episodic": 5, "semantic": 0},
        "links": 4,
        "vectors": 5,
        "items": 0,
        "item_vectors": 0,
    }
    # Items are counted beside memories, their vectors over every item collection.
    for key, extra in (("k1", {}), ("k2", {"index": False})):
        body = {"namespace": ["n"], "key": key, "value": {"text": "an item"}, **extra}
        assert client.put("/items", headers=auth, json=body).status_code == 201
    stats = client.get("/stats", headers=auth).json()
    assert (stats["memories"], stats["items"], stats["item_vectors"]) == (5, 2, 1)
    # Deleting a memory takes its links with it.
    assert client.delete("/memories/2,2", headers=auth).status_code == 200
    assert client.get("/stats", headers=auth).json()["links"] == 2


def test_health_probes(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "postgres": "up",
        "milvus": "up",
        "redis": "up",
        "errors": {},
    }
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").json() == {"status": "alive"}


def test_metrics_are_labelled_by_route_template(client: TestClient, auth: Headers) -> None:
    _store(client, auth, "7,7")
    client.get("/memories/7,7", headers=auth)
    client.get("/memories/7.0,7", headers=auth)
    client.delete("/memories/7,7", headers=auth)
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'api_requests_total{method="GET",route="/memories/{coord}"}' in text
    assert 'api_responses_total{method="POST",route="/memories",status="201"}' in text
    assert 'route="/memories/7,7"' not in text
    assert 'route="/healthz"' not in text
    assert "api_request_duration_seconds_bucket" in text
    assert "api_delete_success_total" in text
    for gauge in ("api_postgres_up 1.0", "api_milvus_up 1.0", "api_redis_up 1.0"):
        assert gauge in text


def test_openapi_documents_every_contract_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/memories",
        "/memories/batch",
        "/memories/{coord}",
        "/memories/search",
        "/graph/link",
        "/graph/neighbors",
        "/graph/path",
        "/stats",
        "/healthz",
        "/readyz",
        "/livez",
        "/metrics",
    ):
        assert path in paths
