"""Every foreseeable caller mistake gets a 4xx JSON error naming the field, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

Headers = dict[str, str]


@pytest.mark.parametrize(
    ("path", "body", "status", "names"),
    [
        ("/memories", {"coord": "1,x", "payload": {"text": "a"}}, 422, "coord"),
        ("/memories", {"coord": "1", "payload": {"text": "a"}}, 422, "coord"),
        ("/memories", {"coord": "1,nan", "payload": {"text": "a"}}, 422, "coord"),
        ("/memories", {"coord": "1,2", "payload": [1, 2]}, 422, "payload"),
        ("/memories", {"coord": "1,2", "payload": "text"}, 422, "payload"),
        ("/memories", {"coord": "1,2", "payload": {"text": ""}}, 422, "payload.text"),
        ("/memories", {"coord": "1,2", "payload": {}}, 422, "payload"),
        ("/memories", {"coord": "1,2"}, 422, "payload"),
        ("/memories", {"coord": "1,2", "payload": {"text": "a\u0000b"}}, 422, "payload"),
        (
            "/memories",
            {"coord": "1,2", "payload": {"text": "a"}, "importance": 2},
            422,
            "importance",
        ),
        (
            "/memories",
            {"coord": "1,2", "payload": {"text": "a"}, "memory_type": "dream"},
            422,
            "memory_type",
        ),
        ("/memories", {"coord": "1,2", "payload": {"text": "a"}, "colour": "red"}, 422, "colour"),
        ("/memories", [1, 2], 400, "body"),
        ("/memories/batch", {"memories": []}, 422, "memories"),
        ("/memories/search", {"query": "x", "top_k": 0}, 422, "top_k"),
        ("/memories/search", {"query": "x", "top_k": 101}, 422, "top_k"),
        ("/memories/search", {"query": ""}, 422, "query"),
        ("/memories/search", {"query": "   "}, 422, "query"),
        ("/memories/search", {"query": "x", "filters": {"a": [1]}}, 422, "filters"),
        ("/memories/search", {"query": "x", "filters": {"a": "v" * 300}}, 422, "filters.a"),
        ("/graph/link", {"from_coord": "1,2", "to_coord": "x"}, 422, "to_coord"),
        ("/graph/link", {"from_coord": "1,2", "to_coord": "3,4", "strength": 3}, 422, "strength"),
    ],
)
def test_bad_bodies(
    client: TestClient, auth: Headers, path: str, body: object, status: int, names: str
) -> None:
    response = client.post(path, headers=auth, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error", "detail"}
    assert names in error["detail"]


def test_body_that_is_not_json(client: TestClient, auth: Headers) -> None:
    response = client.post(
        "/memories", headers={**auth, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequestError"


def test_oversized_body_is_413_declared_or_streamed(client: TestClient, auth: Headers) -> None:
    big = {"coord": "1,2", "payload": {"text": "a" * 1_100_000}}
    response = client.post("/memories", headers=auth, json=big)
    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLargeError"

    def chunks():  # no Content-Length: the limit is enforced on the stream
        for _ in range(20):
            yield b"a" * 100_000

    streamed = client.post(
        "/memories", headers={**auth, "Content-Type": "application/json"}, content=chunks()
    )
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/memories/1,x", None, 422),
        ("/memories", {"limit": 0}, 422),
        ("/memories", {"cursor": "garbage"}, 422),
        ("/memories", {"memory_type": "dream"}, 422),
        ("/graph/neighbors", {"coord": "1,2", "k_hop": 9}, 422),
        ("/graph/neighbors", {}, 422),
        ("/graph/path", {"from_coord": "1,2"}, 422),
        ("/graph/neighbors", {"coord": "1,2", "direction": "sideways"}, 422),
        ("/nowhere", None, 404),
    ],
)
def test_bad_queries(
    client: TestClient, auth: Headers, path: str, params: dict | None, status: int
) -> None:
    response = client.get(path, headers=auth, params=params)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "detail"}


def test_deep_payload_is_refused(client: TestClient, auth: Headers) -> None:
    payload: dict = {"text": "deep"}
    node = payload
    for _ in range(40):
        node["child"] = {}
        node = node["child"]
    response = client.post("/memories", headers=auth, json={"coord": "1,2", "payload": payload})
    assert response.status_code == 422
    assert "nesting" in response.json()["detail"]


def test_an_unknown_query_parameter_is_named(client: TestClient, auth: dict[str, str]) -> None:
    """A misspelt option is refused, not silently ignored."""
    for path in ("/memories?include_superseeded=true", "/changes?aftr=x", "/stats?x=1"):
        response = client.get(path, headers=auth)
        assert response.status_code == 422, path
        name = path.split("?")[1].split("=")[0]
        assert response.json()["detail"].startswith(f"{name}: unknown query parameter"), path
    listed = client.get("/memories?include_superseded=true&limit=5", headers=auth)
    assert listed.status_code == 200


def test_a_boolean_is_not_a_number(client: TestClient, auth: dict[str, str]) -> None:
    """pydantic would read ``false`` as 0: found by the contract test's invalid inputs."""
    for path, body, field in (
        ("/items/search", {"offset": False}, "offset"),
        ("/memories/search", {"query": "x", "top_k": True}, "top_k"),
        ("/memories", {"coord": "1,2", "payload": {"t": 1}, "importance": True}, "importance"),
    ):
        response = client.post(path, headers=auth, json=body)
        assert response.status_code == 422, (path, response.text)
        assert field in response.json()["detail"], response.text


def test_a_one_value_query_parameter_given_twice_is_named(
    client: TestClient, auth: dict[str, str]
) -> None:
    """FastAPI would read the last value; the API refuses the ambiguity instead."""
    for path in ("/export?user_id=a&user_id=b", "/memories?limit=5&limit=6"):
        response = client.get(path, headers=auth)
        assert response.status_code == 422, path
        name = path.split("?")[1].split("=")[0]
        assert response.json()["detail"].startswith(f"{name}: takes one value"), path
    once = client.get("/memories?limit=5", headers=auth)
    assert once.status_code == 200
