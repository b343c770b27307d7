"""Milvus killed while serving, then started again on the same ports and data.

The server is the real one (uvicorn subprocess) on a private Milvus standalone; PostgreSQL
and Redis are the test stack's. While Milvus is down, every request that needs it answers
503 naming it within a bounded time, /healthz says so, ``api_milvus_up`` is 0, /stats does
not make up zeros, and a failed store leaves no row in PostgreSQL. After Milvus is back, the
same server process recovers by itself.

The requests of the outage run in parallel, each with its own deadline, so one that hangs
costs its deadline once and does not hold up the others (the server is killed at the end).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.server import ApiServer, wait_until
from testkit.stores import new_tenant, private_stack, scalar
from tests.faults.support import PrivateMilvus, metric

pytestmark = pytest.mark.slow

ANSWER_WITHIN = 15.0  # seconds: a 503 must come in bounded time, not after driver retries
RECOVERY = 60.0  # seconds Milvus may take to answer and reload the collection
BEFORE = ("1,0,0", "the ferry leaves the island at six")
DURING = ("2,0,0", "a compass that always points home")
AFTER = ("3,0,0", "lanterns drifting down the canal")


@dataclass
class Answer:
    status: int | None  # None: no answer within ANSWER_WITHIN
    seconds: float
    body: Any = None

    def describe(self) -> str:
        if self.status is None:
            return f"no answer within {self.seconds:.1f} s"
        return f"{self.status} after {self.seconds:.1f} s: {self.body}"


@dataclass
class Outage:
    server: ApiServer
    milvus: PrivateMilvus
    settings: Settings
    headers: dict[str, str]
    tenant_id: int
    answers: dict[str, Answer] = field(default_factory=dict)
    milvus_up_gauge: float | None = None
    rows_for_failed_store: int | None = None


def ask(server: ApiServer, method: str, path: str, **kwargs: Any) -> Answer:
    started = time.monotonic()
    try:
        response = httpx.request(method, f"{server.url}{path}", timeout=ANSWER_WITHIN, **kwargs)
    except httpx.TimeoutException:
        return Answer(None, time.monotonic() - started)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Answer(response.status_code, time.monotonic() - started, body)


def names_milvus(answer: Answer) -> bool:
    return isinstance(answer.body, dict) and "milvus" in str(answer.body.get("detail", ""))


@pytest.fixture(scope="module")
def outage(
    private_milvus: PrivateMilvus, test_settings: Settings, stack: Stack, tmp_path_factory: Any
) -> Iterator[Outage]:
    """Serve on the private Milvus, kill it, and ask everything at once."""
    # A database of its own: spaces other tests register in the shared one have no
    # collection on this private Milvus, and start-up would rightly refuse them.
    with private_stack(test_settings, "_milvus_outage", milvus_uri=private_milvus.uri) as settings:
        tenant, headers = new_tenant(settings, "milvus-outage")
        log = Path(tmp_path_factory.mktemp("milvus-outage")) / "server.log"
        server = ApiServer(settings, log)
        server.start()
        try:
            stored = ask(
                server,
                "POST",
                "/memories",
                headers=headers,
                json={"coord": BEFORE[0], "payload": {"text": BEFORE[1]}},
            )
            assert stored.status == 201, stored.describe()
            found = ask(
                server,
                "POST",
                "/memories/search",
                headers=headers,
                json={"query": BEFORE[1], "top_k": 1},
            )
            assert found.status == 200, found.describe()
            assert found.body["results"][0]["coord"] == BEFORE[0]

            private_milvus.stop()
            state = Outage(server, private_milvus, settings, headers, tenant.id)
            requests = {
                "store": (
                    "POST",
                    "/memories",
                    {"json": {"coord": DURING[0], "payload": {"text": DURING[1]}}},
                ),
                "search": ("POST", "/memories/search", {"json": {"query": BEFORE[1]}}),
                "stats": ("GET", "/stats", {}),
                "get": ("GET", f"/memories/{BEFORE[0]}", {}),
                "healthz": ("GET", "/healthz", {}),
            }
            with ThreadPoolExecutor(max_workers=len(requests)) as pool:
                futures = {
                    name: pool.submit(ask, server, method, path, headers=headers, **kwargs)
                    for name, (method, path, kwargs) in requests.items()
                }
                state.answers = {name: future.result() for name, future in futures.items()}
            state.milvus_up_gauge = metric(httpx.get(f"{server.url}/metrics").text, "api_milvus_up")
            state.rows_for_failed_store = scalar(
                settings.postgres_dsn.get_secret_value(),
                "SELECT count(*) FROM records WHERE tenant_id = %s AND key = %s",
                tenant.id,
                DURING[0],
            )
            yield state
        finally:
            server.kill()
            if private_milvus.proc is None:
                private_milvus.start()


def test_store_answers_503_naming_milvus_in_bounded_time(outage: Outage) -> None:
    answer = outage.answers["store"]
    assert answer.status == 503, answer.describe()
    assert answer.seconds < ANSWER_WITHIN
    assert answer.body["error"] == "MilvusUnavailableError", answer.body
    assert names_milvus(answer)


def test_a_failed_store_leaves_no_row_in_postgres(outage: Outage) -> None:
    assert outage.rows_for_failed_store == 0


def test_search_answers_503_naming_milvus(outage: Outage) -> None:
    answer = outage.answers["search"]
    assert answer.status == 503, answer.describe()
    assert names_milvus(answer)


def test_stats_answers_503_not_zeros(outage: Outage) -> None:
    answer = outage.answers["stats"]
    assert answer.status == 503, answer.describe()
    assert names_milvus(answer)


def test_reads_by_coordinate_do_not_need_milvus(outage: Outage) -> None:
    answer = outage.answers["get"]
    assert answer.status == 200, answer.describe()
    assert answer.body["payload"]["text"] == BEFORE[1]


def test_healthz_names_milvus_and_the_gauge_is_0(outage: Outage) -> None:
    answer = outage.answers["healthz"]
    assert answer.status == 503, answer.describe()
    assert answer.body["milvus"] == "down"
    assert f"127.0.0.1:{outage.milvus.port}" in answer.body["errors"]["milvus"]
    assert answer.body["postgres"] == "up"
    assert outage.milvus_up_gauge == 0


def test_the_same_server_recovers_when_milvus_is_back(outage: Outage) -> None:
    server = outage.server
    outage.milvus.start()
    started = time.monotonic()
    wait_until(
        "/healthz 200 after Milvus restarted",
        lambda: httpx.get(f"{server.url}/healthz", timeout=ANSWER_WITHIN).status_code == 200,
        RECOVERY,
        1.0,
    )
    recovered = time.monotonic() - started
    stored = ask(
        server,
        "POST",
        "/memories",
        headers=outage.headers,
        json={"coord": AFTER[0], "payload": {"text": AFTER[1]}},
    )
    assert stored.status == 201, stored.describe()
    found = ask(
        server,
        "POST",
        "/memories/search",
        headers=outage.headers,
        json={"query": AFTER[1], "top_k": 2},
    )
    assert found.status == 200, found.describe()
    assert found.body["results"][0]["coord"] == AFTER[0]
    stats = ask(server, "GET", "/stats", headers=outage.headers)
    assert stats.status == 200, stats.describe()
    assert metric(httpx.get(f"{server.url}/metrics").text, "api_milvus_up") == 1
    assert recovered < RECOVERY
