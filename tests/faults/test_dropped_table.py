"""A table dropped while serving: every request that needs it answers 503 naming PostgreSQL
and the table, never a 500 or a traceback; the health check and start-up validation say so.

The database is this module's own (created and migrated here), and so are the collections
and the Redis key prefix, because its ids and tenant ids repeat the session database's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from somafractalmemory.api.app import create_app
from somafractalmemory.bootstrap import validate_infrastructure
from somafractalmemory.errors import InfrastructureError
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.stores import new_tenant, own_connection, private_stack

STORED = "1,2,3"


@dataclass
class Served:
    client: TestClient
    headers: dict[str, str]
    settings: Settings


@pytest.fixture(scope="module")
def dropped(test_settings: Settings) -> Iterator[Served]:
    """An app serving a database whose ``records`` table was dropped under it."""
    with private_stack(
        test_settings, "_dropped", milvus_uri=own_connection(test_settings.milvus_uri)
    ) as settings:
        _tenant, headers = new_tenant(settings, "dropped-table")
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            stored = client.post(
                "/memories",
                json={"coord": STORED, "payload": {"text": "a memory whose table will go"}},
                headers=headers,
            )
            assert stored.status_code == 201, stored.text
            dsn = settings.postgres_dsn.get_secret_value()
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP TABLE records CASCADE")
            yield Served(client, headers, settings)


REQUESTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("store", "POST", "/memories", {"coord": "4,5,6", "payload": {"text": "new"}}),
    (
        "store-batch",
        "POST",
        "/memories/batch",
        {"memories": [{"coord": "7,8", "payload": {"a": 1}}]},
    ),
    ("get", "GET", f"/memories/{STORED}", None),
    ("search", "POST", "/memories/search", {"query": "a memory whose table will go"}),
    ("list", "GET", "/memories", None),
    ("delete", "DELETE", f"/memories/{STORED}", None),
    ("stats", "GET", "/stats", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body"), [r[1:] for r in REQUESTS], ids=[r[0] for r in REQUESTS]
)
def test_requests_answer_503_naming_postgres_and_the_table(
    dropped: Served, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = dropped.client.request(method, path, json=body, headers=dropped.headers)
    assert response.status_code == 503, response.text
    assert "Traceback" not in response.text
    error = response.json()
    assert error["error"] == "SchemaError", error
    assert "postgres" in error["detail"]
    assert "records" in error["detail"]


@pytest.mark.parametrize("probe", ["/healthz", "/readyz"])
def test_health_names_postgres_and_the_table(dropped: Served, probe: str) -> None:
    response = dropped.client.get(probe)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["postgres"] == "down", body
    assert "records" in body["errors"]["postgres"]
    assert body["milvus"] == "up"


def test_validate_infrastructure_names_postgres_and_the_table(dropped: Served) -> None:
    stack: Stack = dropped.client.app_state["stack"]
    with pytest.raises(InfrastructureError) as raised:
        validate_infrastructure(stack)
    failures = {f.part: f for f in raised.value.failures}
    assert list(failures) == ["postgres"], raised.value.failures
    assert "records" in failures["postgres"].reason
    assert failures["postgres"].address == dropped.settings.postgres_address
