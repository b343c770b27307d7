"""After a load with items (:mod:`testkit.loadgen`): the stores checked against the clients'
records of their ``PUT /items`` and ``DELETE /items`` answers.

:func:`verify_items` reads PostgreSQL and every item collection of the tenant (Strong
consistency): each key's row against the states its client allows, then, for every row, its
``record_vectors`` against the write that stored it (one vector per indexed path or element,
none for ``index: false``, in the space it named), Milvus's entities against
``record_vectors`` in each collection (each vector id exactly once, no entity without one),
Milvus's vectors against PostgreSQL's, and those against the write (the client's own vector
exactly, a default-space text by its embedding). Run it after
:func:`testkit.verdict.drain_and_reconcile`: no outbox entry of the tenant may be left.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import numpy as np
import psycopg

from testkit.loadgen import ABSENT, ItemWrite, State
from testkit.verdict import milvus_ids, milvus_vectors

DEFAULT_SPACE = "default"


def spaces_of(base_url: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The tenant's spaces (the default one included) and their collections, from
    ``GET /spaces``."""
    answer = httpx.get(f"{base_url}/spaces", headers=dict(headers), timeout=30)
    answer.raise_for_status()
    return {s["name"]: s["collection"] for s in answer.json()["spaces"]}


class ItemHistory(Protocol):
    """What a client wrote (a :class:`testkit.loadgen.Loader` is one): its namespace, the
    states each key may end in, the writes by text, and what it caught as it went."""

    namespace: list[str]
    item_states: dict[str, set[State]]
    item_writes: dict[str, ItemWrite]
    violations: list[str]


@dataclass
class ItemVerdict:
    """What :func:`verify_items` found; ``problems`` must be empty."""

    keys: int = 0
    acknowledged_present: int = 0
    acknowledged_absent: int = 0
    uncertain: int = 0
    rows: int = 0
    forms: Counter[str] = field(default_factory=Counter)  # rows by the form that stored them
    vectors: int = 0  # entities in Milvus over the tenant's item collections
    own_vectors_checked: int = 0
    embedded_checked: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.keys} item keys: {self.acknowledged_present} acknowledged present, "
            f"{self.acknowledged_absent} acknowledged deleted, {self.uncertain} uncertain; "
            f"{self.rows} rows ({dict(sorted(self.forms.items()))}), {self.vectors} vectors; "
            f"vectors checked: {self.own_vectors_checked} own, {self.embedded_checked} embedded"
        )


Row = tuple[int, str, str | None]  # id, text, space
Vector = tuple[int, str, list[float]]  # vector id, path, vector


def _read(
    dsn: str, tenant_id: int
) -> tuple[dict[tuple[str, str], Row], dict[int, list[Vector]], int]:
    """The tenant's load items, their vectors by item id (by vector id, the order a write
    reserved them in), and the tenant's outbox entries left."""
    where = "r.tenant_id = %s AND r.namespace_path LIKE 'load.%%'"
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        rows = {
            (ns, key): (int(id_), text, space)
            for id_, ns, key, text, space in conn.execute(
                f"SELECT id, namespace_path, key, payload->>'text', space FROM records r "
                f"WHERE {where}",
                (tenant_id,),
            )
        }
        vectors: dict[int, list[Vector]] = {}
        for vid, record_id, path, vector in conn.execute(
            "SELECT v.id, v.record_id, v.path, v.vector FROM record_vectors v "
            f"JOIN records r ON r.id = v.record_id WHERE {where} ORDER BY v.id",
            (tenant_id,),
        ):
            vectors.setdefault(int(record_id), []).append((int(vid), path, list(vector)))
        found = conn.execute("SELECT count(*) FROM outbox WHERE tenant_id = %s", (tenant_id,))
        pending = int(found.fetchone()[0])  # type: ignore[index]
    return rows, vectors, pending


def _space_of(write: ItemWrite) -> str | None:
    if write.form == "plain":
        return None
    return write.space if write.form == "space" else DEFAULT_SPACE


def verify_items(
    loaders: Sequence[ItemHistory],
    dsn: str,
    milvus_uri: str,
    collections: Mapping[str, str],
    tenant_id: int,
    embed: Callable[[list[str]], list[list[float]]],
    embedded_sample: int = 200,
) -> ItemVerdict:
    """Check the stores against the clients' item records (see the module docstring; the
    namespaces must start with ``load``); ``collections``: the tenant's spaces and their
    collections (:func:`spaces_of`)."""
    verdict = ItemVerdict()
    problems = verdict.problems
    rows, stored, pending = _read(dsn, tenant_id)
    verdict.rows = len(rows)
    if pending:
        problems.append(f"{pending} outbox entries of the tenant left after draining")
    writes: dict[str, ItemWrite] = {}
    written: set[tuple[str, str]] = set()
    for loader in loaders:
        problems.extend(loader.violations)
        writes.update(loader.item_writes)
        path = ".".join(loader.namespace)
        for key, states in loader.item_states.items():
            written.add((path, key))
            row = rows.get((path, key))
            final: State = row[1] if row else ABSENT
            if len(states) > 1:
                verdict.uncertain += 1
            elif ABSENT in states:
                verdict.acknowledged_absent += 1
            else:
                verdict.acknowledged_present += 1
            if final not in states:
                problems.append(f"item {path}/{key}: stored {final!r}, possible {states}")
    verdict.keys = len(written)
    problems.extend(f"an item nobody wrote: {k}" for k in sorted(set(rows) - written))

    # each row's vectors against the write that stored it
    expected_in: dict[str, Counter[int]] = {name: Counter() for name in collections}
    embedded: list[tuple[str, list[float], str]] = []
    for (path, key), (item_id, text, space) in sorted(rows.items()):
        where = f"item {path}/{key}"
        write = writes.get(text)
        if write is None:
            problems.append(f"{where}: holds {text!r}, which no write sent")
            continue
        verdict.forms[write.form] += 1
        have = stored.get(item_id, [])
        want = write.expected_vectors()
        if space != _space_of(write):
            problems.append(f"{where}: space {space!r}, the {write.form} write named another")
        if [p for _v, p, _x in have] != [p for p, _x in want]:
            problems.append(
                f"{where}: vectors at {[p for _v, p, _x in have]}, the write indexed "
                f"{[p for p, _x in want]}"
            )
            continue
        if space is not None:
            if space not in expected_in:
                problems.append(f"{where}: space {space!r} is not one of the tenant's")
                continue
            expected_in[space].update(vid for vid, _p, _x in have)
        for (_vid, _p, vector), (_path, source) in zip(have, want, strict=True):
            if isinstance(source, str):
                embedded.append((where, vector, source))
            else:
                verdict.own_vectors_checked += 1
                if not np.allclose(vector, source, rtol=1e-5, atol=1e-6):
                    problems.append(f"{where}: PostgreSQL holds another vector than the one sent")

    # Milvus against PostgreSQL, collection by collection
    for name, collection in collections.items():
        in_milvus = milvus_ids(milvus_uri, collection, tenant_id)
        verdict.vectors += sum(in_milvus.values())
        expected = expected_in[name]
        problems.extend(
            f"vector {vid} is in {collection} {in_milvus.get(vid, 0)} times"
            for vid in sorted(expected)
            if in_milvus.get(vid, 0) != 1
        )
        problems.extend(
            f"orphan vector {vid} in {collection}" for vid in sorted(set(in_milvus) - set(expected))
        )
        held = milvus_vectors(milvus_uri, collection, sorted(expected))
        by_id = {vid: vector for vectors in stored.values() for vid, _p, vector in vectors}
        problems.extend(
            f"vector {vid} in {collection} is not PostgreSQL's"
            for vid, vector in held.items()
            if not np.allclose(vector, by_id[vid], rtol=1e-5, atol=1e-6)
        )

    # a default-space vector is its text's embedding (a sample)
    chosen = random.Random(tenant_id).sample(embedded, min(len(embedded), embedded_sample))
    if chosen:
        expected_vectors = embed([text for _w, _v, text in chosen])
        for (where, vector, text), want_vector in zip(chosen, expected_vectors, strict=True):
            a, b = np.asarray(vector), np.asarray(want_vector)
            if float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) < 0.999:
                problems.append(f"{where}: the vector of {text!r} is not its embedding")
    verdict.embedded_checked = len(chosen)
    return verdict
