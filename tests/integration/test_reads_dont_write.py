"""Reads commit nothing: item reads and searches write only a TTL refresh that is due.

Checked on the real database two ways: the row's ``xmin`` (the id of the transaction that
last wrote it, which any UPDATE changes), and every statement the request threads send
(SQLAlchemy engine events, recorded for the duration of the requests).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from fastapi.testclient import TestClient

from somafractalmemory.stack import Stack
from testkit.stores import tenant_of

Headers = dict[str, str]
BACKGROUND = ("sfm-maintenance", "sfm-key-events", "sfm-rate-sync")


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every statement and COMMIT the request threads send to PostgreSQL inside the block."""
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, text: str, *_rest: Any) -> None:
        if not threading.current_thread().name.startswith(BACKGROUND):
            seen.append(text.split(None, 1)[0].upper())

    def commit(_conn: Any) -> None:
        if not threading.current_thread().name.startswith(BACKGROUND):
            seen.append("COMMIT")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", statement)
    sa.event.listen(sa.engine.Engine, "commit", commit)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", statement)
        sa.event.remove(sa.engine.Engine, "commit", commit)


def xmin(stack: Stack, auth: Headers, key: str) -> str:
    dsn = stack.settings.postgres_dsn.get_secret_value()
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT xmin::text FROM records WHERE key = %s AND namespace_path = 'reads' "
            "AND tenant_id = %s",
            (key, tenant_of(stack, auth).id),
        ).fetchone()
    assert row is not None
    return str(row[0])


def put(client: TestClient, auth: Headers, key: str, **extra: object) -> None:
    body = {"namespace": ["reads"], "key": key, "value": {"text": f"note {key}"}, **extra}
    response = client.put("/items", headers=auth, json=body)
    assert response.status_code == 201, response.text


def read_and_search(client: TestClient, auth: Headers, key: str) -> None:
    params: dict[str, Any] = {"namespace": ["reads"], "key": key}
    assert client.get("/items", headers=auth, params=params).status_code == 200
    for body in ({"namespace_prefix": ["reads"]}, {"namespace_prefix": ["reads"], "query": "note"}):
        response = client.post("/items/search", headers=auth, json=body)
        assert response.status_code == 200, response.text
        assert key in [item["key"] for item in response.json()["items"]]


def test_reads_of_items_without_ttl_write_nothing(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    put(client, auth, "plain")
    before = xmin(stack, auth, "plain")
    with statements() as seen:
        read_and_search(client, auth, "plain")
    assert xmin(stack, auth, "plain") == before
    writes = [s for s in seen if s in ("INSERT", "UPDATE", "DELETE", "COMMIT", "BEGIN")]
    assert seen
    assert not writes, seen


def test_a_due_ttl_refresh_is_one_statement(
    client: TestClient, auth: Headers, stack: Stack
) -> None:
    put(client, auth, "leased", ttl_minutes=5)
    before = xmin(stack, auth, "leased")
    with statements() as seen:
        params: dict[str, Any] = {"namespace": ["reads"], "key": "leased"}
        assert client.get("/items", headers=auth, params=params).status_code == 200
    assert xmin(stack, auth, "leased") != before  # the TTL was extended
    assert seen.count("UPDATE") == 1, seen
    assert "COMMIT" not in seen, seen
    refreshed = xmin(stack, auth, "leased")
    with statements() as seen:
        params["refresh_ttl"] = "false"
        assert client.get("/items", headers=auth, params=params).status_code == 200
    assert xmin(stack, auth, "leased") == refreshed
    assert "UPDATE" not in seen, seen
