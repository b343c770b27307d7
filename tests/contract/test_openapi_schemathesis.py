"""Property-based contract test: schemathesis generates requests from /openapi.json.

Every response must be documented, match its schema, and never be a 500, for valid and
invalid inputs alike. Runs against the real stack through the in-process app.

One check is left out: ``positive_data_acceptance`` (every schema-valid request gets a
2xx). Some refusals cannot be said in OpenAPI: NUL characters anywhere in a payload
(PostgreSQL's JSONB cannot store them), nesting deeper than 32 levels, a cursor this server
did not issue, a search without a query in a mode that needs one. Those answer 422 naming the
field, and the other checks still hold them to the documented responses and schemas.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings

from somafractalmemory.api.app import create_app

OPERATIONS = [
    (path, method.upper())
    for path, methods in create_app().openapi()["paths"].items()
    for method in methods
]
EXAMPLES = 25
# Each space that POST /spaces accepts is a Milvus collection created, indexed and loaded
# (about 2.5 s here): 25 examples took a minute of the suite, 10 still cover its refusals.
EXAMPLES_BY_OPERATION = {("/spaces", "POST"): 10}


@pytest.fixture(scope="module")
def api_schema(client: TestClient) -> schemathesis.BaseSchema:
    """The app's own schema; the app's lifespan already runs (the `client` fixture)."""
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


@pytest.fixture(scope="module")
def contract_seed() -> int | None:
    """``SFM_CONTRACT_SEED``: a seed for a randomized run (``make test-contract`` picks one
    and prints it); unset, as in CI, the examples are fixed (derandomized)."""
    value = os.environ.get("SFM_CONTRACT_SEED")
    return int(value) if value else None


@pytest.fixture(scope="module")
def contract_auth(client: TestClient) -> dict[str, str]:
    key, _ = client.app_state["stack"].keys.create("schemathesis")
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_operation_conforms_to_its_schema(
    api_schema: schemathesis.BaseSchema, contract_auth: dict[str, str], path: str, method: str
) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_BY_OPERATION.get((path, method), EXAMPLES),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers=contract_auth,
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )

    check()


NEGATIVE_EXAMPLES = 15
# Operations that take input (parameters or a body): the others have nothing to break.
_PATHS = create_app().openapi()["paths"]
TAKING_INPUT = [
    (path, method)
    for path, method in OPERATIONS
    if _PATHS[path][method.lower()].get("parameters")
    or _PATHS[path][method.lower()].get("requestBody")
]


# A query parameter that is a list (``namespace=a&namespace=b``) given once is a list of one
# and a plain string alike: "a string where an array belongs" is not invalid in a query, so
# these operations are held to every check but negative_data_rejection.
LIST_IN_QUERY = {
    (path, method)
    for path, method in TAKING_INPUT
    if any(
        p.get("in") == "query" and p.get("schema", {}).get("type") == "array"
        for p in _PATHS[path][method.lower()].get("parameters", [])
    )
}


@pytest.mark.parametrize(
    ("path", "method"), TAKING_INPUT, ids=[f"{m} {p}" for p, m in TAKING_INPUT]
)
def test_operation_refuses_invalid_input(
    api_schema: schemathesis.BaseSchema,
    contract_auth: dict[str, str],
    path: str,
    method: str,
    contract_seed: int | None,
) -> None:
    """Requests that break the schema (negative generation): never a 5xx, never accepted
    (a 4xx), and the refusal is documented and matches its schema."""
    operation = api_schema[path][method]
    checks = [
        schemathesis.checks.not_a_server_error,
        schemathesis.checks.status_code_conformance,
        schemathesis.checks.response_schema_conformance,
    ]
    if (path, method) not in LIST_IN_QUERY:
        checks.append(schemathesis.checks.negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE))
    @settings(
        max_examples=NEGATIVE_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=contract_seed is None,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers=contract_auth,
            checks=checks,
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )

    if contract_seed is not None:
        check = seed(contract_seed)(check)
    check()
