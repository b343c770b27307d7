"""A statement PostgreSQL refuses is SFM's defect: a 500, never a 503 that calls it down.

A 503 tells a client to retry and the operator that PostgreSQL is down; for a statement the
server answered and refused (a syntax error, a missing privilege, a wrong type in SFM's own
SQL) both would be false, and the fault tests, which allow 503 while a store is down, would
let such a bug pass. The refusal here is real: a trigger of the test's own makes PostgreSQL
raise ``syntax_error`` (SQLSTATE 42601, a ``ProgrammingError``) for one tenant's inserts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from somafractalmemory.errors import StatementRejectedError
from somafractalmemory.observability.metrics import POSTGRES_UP
from somafractalmemory.stack import Stack


def postgres_up() -> float:
    return POSTGRES_UP._value.get()  # the gauge's current value


def test_a_refused_statement_is_a_statement_error_and_postgres_stays_up(stack: Stack) -> None:
    store = stack.postgres
    with pytest.raises(StatementRejectedError) as raised, store.reading("bad_sql") as conn:
        conn.execute(sa.text("SELEC 1"))
    assert raised.value.status_code == 500
    assert "syntax error" in raised.value.detail
    assert postgres_up() == 1.0
    store.ping()  # and it really is up


@pytest.fixture
def refusing_tenant(stack: Stack) -> Iterator[str]:
    """A tenant whose record inserts PostgreSQL refuses with a syntax_error."""
    tenant = f"refused-{uuid.uuid4().hex[:8]}"
    name = f"sfm_test_refuse_{uuid.uuid4().hex[:8]}"
    with stack.postgres.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.tenant_id = (SELECT id FROM tenants WHERE name = '{tenant}') THEN "
                "RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'syntax_error'; "
                "END IF; RETURN NEW; END $$"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TRIGGER {name} BEFORE INSERT ON records "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        )
    try:
        yield tenant
    finally:
        with stack.postgres.engine.begin() as conn:
            conn.execute(sa.text(f"DROP TRIGGER {name} ON records"))
            conn.execute(sa.text(f"DROP FUNCTION {name}()"))


def test_the_api_answers_500_and_stays_healthy(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    refusing_tenant: str,
) -> None:
    headers = make_key(refusing_tenant)
    answer = client.post(
        "/memories", json={"coord": "1,2", "payload": {"text": "refused"}}, headers=headers
    )
    assert answer.status_code == 500, answer.text
    assert answer.json()["error"] == "StatementRejectedError"
    assert "Retry-After" not in answer.headers
    assert postgres_up() == 1.0
    assert client.get("/healthz").status_code == 200
    # Another tenant's write goes through: nothing was marked down.
    other = make_key(f"other-{uuid.uuid4().hex[:8]}")
    stored = client.post(
        "/memories", json={"coord": "1,2", "payload": {"text": "fine"}}, headers=other
    )
    assert stored.status_code in (200, 201), stored.text
