"""The cache never serves a record after its delete or replace was acknowledged.

Over real HTTP (the shared uvicorn server, ``sfm_server``) on the real stores: reader threads
hammer ``GET`` on one key while one writer replaces or deletes it, for many rounds. A reader
whose request started after the writer's answer arrived must see the write (404 after a
delete, that version or a newer one after a replace), and once the round is over a last GET
must too. A GET that read PostgreSQL before the write committed, and filled the cache after
the write's invalidation, would otherwise keep the old copy for ``SOMA_CACHE_TTL_SECONDS``.

The records carry a large inert field (``blob``), so that a read spends some milliseconds
between its PostgreSQL snapshot and its cache fill, as a busy server does: the window the
race needs, made wide enough to be hit within a few dozen rounds.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from somafractalmemory.stack import Stack
from testkit.server import ServerProcess
from testkit.stores import tenant_of

Headers = dict[str, str]
READERS = 6
ROUNDS = 40
BLOB = "x" * 400_000  # inert: neither embedded nor searched (not under `text`)
VERSION = re.compile(rb'"v": ?(\d+)')
DIMENSION = 384  # the default model's; memories carry their own vector (no embedding wait)


@dataclass
class Round:
    """One round's shared state: its key, the newest acknowledged version (-1: deleted), and
    what the readers saw that they must not have."""

    target: Target
    acknowledged: int = 1
    deleting: bool = False  # the delete was sent: a 404 may come before its answer
    done: threading.Event = field(default_factory=threading.Event)
    violations: list[str] = field(default_factory=list)
    reads: int = 0


def _version(answer: httpx.Response) -> int:
    """The record's ``v``, found without parsing the whole answer: the readers' parsing of
    the blob would hold the test process's GIL, and the evictor would fall behind."""
    assert answer.status_code == 200, answer.text
    found = VERSION.search(answer.content)
    assert found, answer.text[:200]
    return int(found.group(1))


class Target:
    """One key over HTTP: write a version, delete, read (the version, or None for 404);
    ``record`` is its (namespace path, key) in the ``records`` table."""

    record: tuple[str, str]

    def cache_key(self, stack: Stack, tenant_id: int) -> str:
        raise NotImplementedError

    def write(self, http: httpx.Client, version: int) -> int:
        raise NotImplementedError

    def delete(self, http: httpx.Client) -> int:
        raise NotImplementedError

    def read(self, http: httpx.Client) -> int | None:
        raise NotImplementedError


class MemoryTarget(Target):
    def __init__(self, coord: str) -> None:
        self.coord = coord
        self.record = ("", coord)

    def cache_key(self, stack: Stack, tenant_id: int) -> str:
        return stack.cache.memory_key(tenant_id, self.coord)

    def write(self, http: httpx.Client, version: int) -> int:
        vector = [0.0] * DIMENSION
        vector[version % DIMENSION] = 1.0
        body = {
            "coord": self.coord,
            "payload": {"text": f"version {version}", "v": version, "blob": BLOB},
            "vector": vector,
        }
        return http.post("/memories", json=body).status_code

    def delete(self, http: httpx.Client) -> int:
        return http.delete(f"/memories/{self.coord}").status_code

    def read(self, http: httpx.Client) -> int | None:
        answer = http.get(f"/memories/{self.coord}")
        if answer.status_code == 404:
            return None
        return _version(answer)


class ItemTarget(Target):
    def __init__(self, key: str) -> None:
        self.key = key
        self.params = {"namespace": ["races"], "key": key}
        self.record = ("races", key)

    def cache_key(self, stack: Stack, tenant_id: int) -> str:
        return stack.cache.item_key(tenant_id, ["races"], self.key)

    def write(self, http: httpx.Client, version: int) -> int:
        body = {
            "namespace": ["races"],
            "key": self.key,
            "value": {"text": f"version {version}", "v": version, "blob": BLOB},
            "index": ["text"],
        }
        return http.put("/items", json=body).status_code

    def delete(self, http: httpx.Client) -> int:
        return http.delete("/items", params=self.params).status_code

    def read(self, http: httpx.Client) -> int | None:
        answer = http.get("/items", params=self.params)
        if answer.status_code == 404:
            return None
        return _version(answer)


class Readers:
    """Threads that GET the current round's key over and over, each on a keep-alive
    connection of its own, and check each answer against what was acknowledged before the
    request was sent."""

    def __init__(self, url: str, auth: Headers) -> None:
        self.url, self.auth = url, auth
        self.round: Round | None = None
        self.closing = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(READERS)]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.auth, timeout=30) as http:
            while not self.closing.is_set():
                state = self.round
                if state is None or state.done.is_set():
                    time.sleep(0.001)
                    continue
                floor = state.acknowledged  # read before the request is sent
                try:
                    seen = state.target.read(http)
                except (AssertionError, httpx.HTTPError) as exc:
                    state.violations.append(f"a read failed: {exc!r}")
                    continue
                state.reads += 1
                if floor < 0 and seen is not None:
                    state.violations.append(f"version {seen} served after the delete's answer")
                elif seen is None and not state.deleting:
                    state.violations.append(f"404 after version {floor} was answered")
                elif seen is not None and seen < floor:
                    state.violations.append(f"saw {seen} after version {floor} was answered")

    def close(self) -> None:
        self.closing.set()
        for thread in self.threads:
            thread.join(timeout=30)


def _evictor(stack: Stack, tenant_id: int, state: Round) -> None:
    """Evict the cached copy (as TTL expiry or memory pressure may) for as long as
    PostgreSQL holds version 1, so that every read is a miss, reading PostgreSQL and filling
    the cache, up to the moment the write commits; then stop, leaving whatever the reads
    fill after the commit for the readers to find."""
    target = state.target
    name = target.cache_key(stack, tenant_id)
    with psycopg.connect(stack.settings.postgres_libpq_dsn, autocommit=True) as conn:
        while not state.done.is_set():
            stack.cache.client.delete(name)
            row = conn.execute(
                "SELECT payload->>'v' FROM records "
                "WHERE tenant_id = %s AND namespace_path = %s AND key = %s",
                (tenant_id, *target.record),
            ).fetchone()
            if row is None or row[0] != "1":
                return


def _run_round(
    readers: Readers,
    http: httpx.Client,
    stack: Stack,
    tenant_id: int,
    target: Target,
    writer: Callable[[httpx.Client, Round], None],
    rng: random.Random,
) -> Round:
    assert target.write(http, 1) == 201
    state = Round(target)
    readers.round = state
    evictor = threading.Thread(target=_evictor, args=(stack, tenant_id, state))
    evictor.start()
    try:
        deadline = time.monotonic() + 10
        while state.reads < READERS and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.random() * 0.01)  # the write lands at a random moment of the reads
        writer(http, state)
        time.sleep(0.03)  # the readers go on a while after the answer
    finally:
        state.done.set()
        evictor.join(timeout=30)
    last = target.read(http)
    expected = None if state.acknowledged < 0 else state.acknowledged
    if last != expected:
        state.violations.append(f"the last read saw {last}, not {expected}")
    return state


def _rounds(
    url: str,
    auth: Headers,
    stack: Stack,
    make_target: Callable[[int], Target],
    make_writer: Callable[[Target], Callable[[httpx.Client, Round], None]],
) -> list[Round]:
    rng = random.Random(23)
    tenant_id = tenant_of(stack, auth).id
    readers = Readers(url, auth)
    try:
        with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
            return [
                _run_round(readers, http, stack, tenant_id, t, make_writer(t), rng)
                for t in map(make_target, range(ROUNDS))
            ]
    finally:
        readers.close()


def _delete(target: Target) -> Callable[[httpx.Client, Round], None]:
    def write(http: httpx.Client, state: Round) -> None:
        state.deleting = True
        assert target.delete(http) == 200
        state.acknowledged = -1

    return write


def _replace(target: Target) -> Callable[[httpx.Client, Round], None]:
    def write(http: httpx.Client, state: Round) -> None:
        assert target.write(http, 2) == 200
        state.acknowledged = 2

    return write


def _target(kind: str, name: str, i: int) -> Target:
    if kind == "memory":
        return MemoryTarget(f"{i},{len(name)},23")
    return ItemTarget(f"{name}-{i}")


def _check(rounds: list[Round]) -> None:
    violations = [f"round {i}: {v}" for i, r in enumerate(rounds) for v in r.violations]
    reads = sum(r.reads for r in rounds)
    assert not violations, f"{len(violations)} stale reads in {reads}:\n" + "\n".join(
        violations[:20]
    )


@pytest.mark.parametrize("kind", ["memory", "item"])
def test_no_read_after_an_acknowledged_delete_serves_the_deleted_record(
    sfm_server: ServerProcess, auth: Headers, stack: Stack, kind: str
) -> None:
    _check(_rounds(sfm_server.url, auth, stack, lambda i: _target(kind, "del", i), _delete))


@pytest.mark.parametrize("kind", ["memory", "item"])
def test_no_read_after_an_acknowledged_replace_serves_the_older_version(
    sfm_server: ServerProcess, auth: Headers, stack: Stack, kind: str
) -> None:
    _check(_rounds(sfm_server.url, auth, stack, lambda i: _target(kind, "repl", i), _replace))
