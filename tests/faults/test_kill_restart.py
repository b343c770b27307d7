"""The real server killed with SIGKILL after acknowledging 1,000 memories loses none of them.

A uvicorn subprocess on a database and a collection of this module's own stores 1,000
distinct memories through ``POST /memories/batch`` (ten batches of 100), is killed with
SIGKILL (no shutdown, no lifespan exit, nothing flushed on the way out), and is started
again. Every acknowledged memory must then be in PostgreSQL, in Milvus (counted by the API
and by pymilvus directly) and findable: searching the exact text of a sample ranks it first.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from somafractalmemory.settings import Settings
from testkit.server import ApiServer
from testkit.stores import new_tenant, private_stack, scalar, tenant_vector_count

pytestmark = pytest.mark.slow

COUNT = 1000
BATCH = 100
SAMPLE = 20

WHO = [
    "the baker",
    "a pilot",
    "my sister",
    "the old sailor",
    "a student",
    "the mayor",
    "our neighbour",
    "the violinist",
    "a child",
    "the gardener",
]
DID = [
    "painted",
    "lost",
    "repaired",
    "photographed",
    "sold",
    "buried",
    "found",
    "carried",
    "described",
    "forgot",
]
WHAT = [
    "a red bicycle",
    "the silver key",
    "an umbrella",
    "a wooden boat",
    "the telescope",
    "a jar of honey",
    "the map of Lisbon",
    "a broken clock",
    "the wedding dress",
    "a box of letters",
]
WHERE = [
    "near the harbour",
    "in the attic",
    "behind the station",
    "at the market",
    "under the bridge",
    "in the library",
    "on the mountain",
    "by the river",
    "in the greenhouse",
    "at the airport",
]
WHEN = [
    "at dawn",
    "last winter",
    "during the storm",
    "on a Sunday",
    "after the concert",
    "before the election",
    "in 1987",
    "at midnight",
    "during lunch",
    "on her birthday",
]


def memories() -> list[dict[str, Any]]:
    """1,000 memories with distinct texts (every two differ in at least one phrase)."""
    rng = random.Random(4)
    texts: set[str] = set()
    while len(texts) < COUNT:
        texts.add(" ".join(rng.choice(words) for words in (WHO, DID, WHAT, WHERE, WHEN)))
    return [
        {"coord": f"{i},{i % 7},{i % 11}", "payload": {"text": text, "n": i}}
        for i, text in enumerate(sorted(texts))
    ]


@pytest.fixture(scope="module")
def served(test_settings: Settings, tmp_path_factory: Any) -> Iterator[tuple[ApiServer, Settings]]:
    """A migrated database and ensured collections of this module's own; the server on them
    (not started)."""
    with private_stack(test_settings, "_killrestart") as settings:
        log = Path(tmp_path_factory.mktemp("kill-restart")) / "server.log"
        server = ApiServer(settings, log, SOMA_REDIS_PREFIX=settings.redis_key_prefix)
        try:
            yield server, settings
        finally:
            server.kill()


def test_acknowledged_memories_survive_a_sigkill(served: tuple[ApiServer, Settings]) -> None:
    server, settings = served
    tenant, headers = new_tenant(settings, "kill-restart")
    items = memories()

    server.start()
    with httpx.Client(base_url=server.url, headers=headers, timeout=120) as http:
        for start in range(0, COUNT, BATCH):
            response = http.post("/memories/batch", json={"memories": items[start : start + BATCH]})
            assert response.status_code == 201, response.text
            statuses = [r["status"] for r in response.json()["results"]]
            assert statuses == ["created"] * BATCH
    server.kill()

    server.start()
    dsn = settings.postgres_dsn.get_secret_value()
    assert (
        scalar(
            dsn,
            "SELECT count(*) FROM records WHERE tenant_id = %s AND namespace_path = ''",
            tenant.id,
        )
        == COUNT
    )
    assert tenant_vector_count(settings.milvus_uri, settings.milvus_collection, tenant.id) == COUNT
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        stats = http.get("/stats")
        assert stats.status_code == 200, stats.text
        assert stats.json()["memories"] == COUNT
        assert stats.json()["vectors"] == COUNT
        for item in random.Random(7).sample(items, SAMPLE):
            found = http.post(
                "/memories/search", json={"query": item["payload"]["text"], "top_k": 5}
            )
            assert found.status_code == 200, found.text
            results = found.json()["results"]
            assert results, f"nothing found for {item['payload']['text']!r}"
            assert results[0]["coord"] == item["coord"], (item, results[:2])
