"""Many writers on one key at once: PostgreSQL and Milvus end up holding the same write.

Over real HTTP (the shared uvicorn server, ``sfm_server``): ``WRITERS`` threads, released
together, write distinct values to one memory coordinate, or one item key, for several
rounds. Each write carries a vector of its own (memories: a client vector; items: a
registered space's client vectors, or the default space's embedding of a text of its own),
so the vector Milvus holds names the write it came from. Afterwards the row PostgreSQL
holds, the last committed write, must be an acknowledged one, and Milvus must hold exactly
its vectors: one entity per stored vector, none from a losing write, no orphans.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
import numpy as np
import psycopg
import pytest

from somafractalmemory.stack import Stack
from testkit.item_verdict import spaces_of, verify_items
from testkit.loadgen import ABSENT, ITEM_FORMS, ItemWrite, State
from testkit.server import ServerProcess
from testkit.stores import tenant_of
from testkit.verdict import milvus_ids, milvus_vectors

Headers = dict[str, str]
T = TypeVar("T")
WRITERS = 8
ROUNDS = 5
DIMENSION = 384
SPACE_DIMENSION = 8


def _one_hot(index: int, dimension: int) -> list[float]:
    vector = [0.01] * dimension
    vector[index % dimension] = 1.0
    return vector


def _together(
    url: str, auth: Headers, send: Callable[[httpx.Client, int], T], writers: int = WRITERS
) -> list[T]:
    """Run ``send(http, writer)`` for every writer at once; what each returned (its status
    codes)."""
    start = threading.Barrier(writers)
    results: list[T | None] = [None] * writers

    def run(writer: int) -> None:
        with httpx.Client(base_url=url, headers=auth, timeout=60) as http:
            http.get("/livez")  # connected before the barrier
            start.wait(timeout=30)
            results[writer] = send(http, writer)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r is not None for r in results), "a writer did not finish"
    return [r for r in results if r is not None]


def _rows(stack: Stack, tenant_id: int, namespace: str) -> dict[str, tuple[int, str, object]]:
    with psycopg.connect(stack.settings.postgres_libpq_dsn, autocommit=True) as conn:
        found = conn.execute(
            "SELECT key, id, payload->>'text', client_vector FROM records "
            "WHERE tenant_id = %s AND namespace_path = %s",
            (tenant_id, namespace),
        ).fetchall()
    return {key: (int(id_), text, vector) for key, id_, text, vector in found}


def _writer_of(text: str) -> int:
    return int(text.split()[1])


def test_concurrent_writers_on_one_coordinate_leave_one_write_in_both_stores(
    sfm_server: ServerProcess, auth: Headers, stack: Stack
) -> None:
    tenant = tenant_of(stack, auth)
    statuses: dict[str, list[int]] = {}
    for round_ in range(ROUNDS):
        coord = f"{round_},23,3"

        def send(http: httpx.Client, writer: int, coord: str = coord) -> int:
            body = {
                "coord": coord,
                "payload": {"text": f"writer {writer} of {coord}"},
                "vector": _one_hot(writer, DIMENSION),
            }
            return http.post("/memories", json=body).status_code

        statuses[coord] = _together(sfm_server.url, auth, send)

    for coord, codes in statuses.items():
        # One write created the memory, every other one replaced it; no conflict.
        assert sorted(codes) == [200] * (WRITERS - 1) + [201], (coord, codes)
    rows = _rows(stack, tenant.id, "")
    assert sorted(rows) == sorted(statuses)
    in_milvus = milvus_ids(stack.settings.milvus_uri, stack.milvus.collection, tenant.id)
    assert in_milvus == Counter({id_: 1 for id_, _text, _vector in rows.values()})
    vectors = milvus_vectors(
        stack.settings.milvus_uri, stack.milvus.collection, [r[0] for r in rows.values()]
    )
    for coord, (id_, text, client_vector) in rows.items():
        sent = np.asarray(_one_hot(_writer_of(text), DIMENSION))
        assert np.allclose(np.asarray(client_vector, dtype=float), sent, atol=1e-6), coord
        assert np.allclose(vectors[id_], sent, atol=1e-6), f"{coord}: milvus holds another write"
    assert _no_outbox_of(stack, tenant.id)  # every acknowledged write settled


def _no_outbox_of(stack: Stack, tenant_id: int) -> bool:
    with psycopg.connect(stack.settings.postgres_libpq_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE tenant_id = %s", (tenant_id,))
        return int(row.fetchone()[0]) == 0  # type: ignore[index]


@pytest.mark.parametrize("space", ["default", "race"])
def test_concurrent_writers_on_one_item_leave_one_write_in_both_stores(
    sfm_server: ServerProcess, auth: Headers, stack: Stack, space: str
) -> None:
    tenant = tenant_of(stack, auth)
    if space != "default":
        body = {"name": space, "dimension": SPACE_DIMENSION, "metric": "cosine"}
        created = httpx.post(f"{sfm_server.url}/spaces", headers=auth, json=body, timeout=60)
        assert created.status_code == 201, created.text  # a collection made, indexed, loaded
    statuses: dict[str, list[int]] = {}
    for round_ in range(ROUNDS):
        key = f"key-{round_}"

        def send(http: httpx.Client, writer: int, key: str = key) -> int:
            text = f"writer {writer} wrote {key}: {['tea', 'kites', 'ships', 'rain'][writer % 4]}"
            body: dict[str, object] = {"namespace": ["race"], "key": key, "value": {"text": text}}
            if space != "default":
                body["space"] = space
                body["vectors"] = [{"path": "text", "vector": _one_hot(writer, SPACE_DIMENSION)}]
            return http.put("/items", json=body).status_code

        statuses[key] = _together(sfm_server.url, auth, send)

    rows = _rows(stack, tenant.id, "race")
    assert sorted(rows) == sorted(statuses)
    collection = stack.items.space(tenant, space).collection
    stored = stack.items.repo.vectors_of([r[0] for r in rows.values()])
    expected_ids: Counter[int] = Counter()
    for key, codes in statuses.items():
        # One write created the item, every other one replaced it: no 409 (writers of one
        # space never change the item's collection under each other).
        assert sorted(codes) == [200] * (WRITERS - 1) + [201], (key, codes)
        item_id, text, _ = rows[key]
        winner = _writer_of(text)
        assert codes[winner] in (200, 201), f"{key}: the stored write was not acknowledged"
        [(vector_id, vector)] = stored[item_id]
        expected_ids[vector_id] += 1
        if space != "default":
            assert np.allclose(vector.vector, _one_hot(winner, SPACE_DIMENSION), atol=1e-6)
    in_milvus = milvus_ids(stack.settings.milvus_uri, collection, tenant.id)
    assert in_milvus == expected_ids, "milvus holds other entities than the stored vectors"
    held = milvus_vectors(stack.settings.milvus_uri, collection, list(expected_ids))
    texts = {rows[k][0]: rows[k][1] for k in rows}
    for key in rows:
        item_id = rows[key][0]
        [(vector_id, vector)] = stored[item_id]
        assert np.allclose(held[vector_id], vector.vector, atol=1e-5), f"{key}: milvus differs"
        if space == "default":
            embedded = np.asarray(stack.embedder.embed_one(texts[item_id]))
            cosine = held[vector_id] @ embedded / np.linalg.norm(held[vector_id])
            assert cosine / np.linalg.norm(embedded) > 0.999, f"{key}: not the row's text"
    assert _no_outbox_of(stack, tenant.id)


@dataclass
class Written:
    """The writes of one round set, as :func:`testkit.item_verdict.verify_items` reads them."""

    namespace: list[str]
    item_states: dict[str, set[State]] = field(default_factory=dict)
    item_writes: dict[str, ItemWrite] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


SHAPE_PUTS = 3  # puts each writer sends in a row, turning through the shapes
DELETERS = 2  # writers that delete the item instead, SHAPE_PUTS times each


def _shaped(writer: int, put: int, key: str, space: str) -> ItemWrite:
    """Writer ``writer``'s ``put``-th item at ``key``: one of the four shapes
    (:data:`ITEM_FORMS`) by turns, each with a text of its own."""
    form = ITEM_FORMS[(writer + put) % len(ITEM_FORMS)]
    tags = (f"tag {put} of writer {writer}",) if form in ("paths", "space") else ()
    vectors = tuple(
        (path, tuple(_one_hot(writer + put + i, SPACE_DIMENSION)))
        for i, path in enumerate(["text", "tags[*]"])
    )
    return ItemWrite(
        key,
        f"writer {writer} wrote {key} ({put})",
        None,
        form,
        tags,
        space,
        vectors if form == "space" else (),
    )


def test_concurrent_writers_of_every_shape_and_deleters_on_one_item(
    sfm_server: ServerProcess, auth: Headers, stack: Stack
) -> None:
    """Writers on one key that change its shape under each other (no vector, the default
    space's embeddings of one or two paths, a registered space's own vectors) while others
    delete it. A write or delete that finds the item moved between its two transactions
    retries (a write up to three times, then 409, having changed nothing). Afterwards the row
    is an acknowledged write's (or none, when a delete may have come last), both collections
    hold exactly its vectors, once each, and no outbox entry is left."""
    tenant = tenant_of(stack, auth)
    space = "shapes"
    body = {"name": space, "dimension": SPACE_DIMENSION, "metric": "cosine"}
    created = httpx.post(f"{sfm_server.url}/spaces", headers=auth, json=body, timeout=60)
    assert created.status_code == 201, created.text  # a collection made, indexed, loaded
    written = Written(["load", "shapes"])
    answers: dict[str, list[list[int]]] = {}
    conflicts: list[str] = []  # the error class of each 409
    params = {"namespace": written.namespace}
    for round_ in range(ROUNDS):
        key = f"key-{round_}"
        writes = [[_shaped(w, p, key, space) for p in range(SHAPE_PUTS)] for w in range(WRITERS)]
        written.item_writes.update((w.text, w) for mine in writes for w in mine)

        def send(
            http: httpx.Client, writer: int, key: str = key, writes: list[list[ItemWrite]] = writes
        ) -> list[int]:
            codes = []
            for put in range(SHAPE_PUTS):
                if writer >= WRITERS:
                    answer = http.delete("/items", params={**params, "key": key})
                else:
                    answer = http.put(
                        "/items", json=writes[writer][put].item_body(params["namespace"])
                    )
                if answer.status_code == 409:
                    conflicts.append(answer.json()["error"])
                codes.append(answer.status_code)
            return codes

        codes = _together(sfm_server.url, auth, send, WRITERS + DELETERS)
        answers[key] = codes
        puts, deletes = (
            [c for w in codes[:WRITERS] for c in w],
            [c for w in codes[WRITERS:] for c in w],
        )
        assert set(puts) <= {200, 201, 409}, (key, codes)
        assert set(deletes) <= {200, 404}, (key, codes)
        states: set[State] = {
            w.text
            for mine, got in zip(writes, codes, strict=False)
            for w, c in zip(mine, got, strict=True)
            if c < 300
        }
        written.item_states[key] = states | ({ABSENT} if 200 in deletes else set())
    verdict = verify_items(
        [written],
        stack.settings.postgres_libpq_dsn,
        stack.settings.milvus_uri,
        spaces_of(sfm_server.url, auth),
        tenant.id,
        stack.embedder.embed,
    )
    print(f"\n{answers}\n{verdict.line()}")
    assert set(conflicts) <= {"ConflictError"}, conflicts
    assert verdict.problems == [], "\n".join(verdict.problems[:30])
