"""Concurrent deletes of one item over the real server: exactly one answers ``deleted``, the
others 404 (a delete beaten between its two transactions by another used to answer
``deleted`` too, so two pops of a session both claimed the same message)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from somafractalmemory.stack import Stack
from testkit.server import ServerProcess

DELETERS = 6


def test_concurrent_deletes_of_one_item_report_one_deletion(
    sfm_server: ServerProcess, stack: Stack
) -> None:
    key, _info = stack.keys.create(f"delete-race-{uuid.uuid4().hex[:10]}")
    headers = {"Authorization": f"Bearer {key}"}
    namespace = ["race"]
    with httpx.Client(base_url=sfm_server.url, headers=headers, timeout=60) as http:
        for round_ in range(3):
            name = f"k{round_}"
            put = http.put(
                "/items", json={"namespace": namespace, "key": name, "value": {"text": name}}
            )
            assert put.status_code in (200, 201), put.text
            params = {"namespace": namespace, "key": name}
            with ThreadPoolExecutor(DELETERS) as pool:
                answers = [
                    pool.submit(http.delete, "/items", params=params) for _ in range(DELETERS)
                ]
                codes = sorted(a.result().status_code for a in answers)
            assert codes == [200] + [404] * (DELETERS - 1), (name, codes)
            assert http.get("/items", params=params).status_code == 404
