"""After a load: the stores checked against the clients' records (:mod:`testkit.loadgen`).

:func:`drain_and_reconcile` settles the outbox and runs ``reconcile`` through the real CLI;
:func:`verify` then reads PostgreSQL and Milvus (Strong consistency): every coordinate's row
against the states its client allows, PostgreSQL's ids against Milvus's (one vector per
row, no vector without a row), each unacknowledged batch all there or all absent, and the
vectors against the texts (the client's own vector exactly, an embedded text by its
embedding).
"""

from __future__ import annotations

import logging
import random
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg

from somafractalmemory.stores.milvus import VECTOR_FIELD
from testkit.loadgen import ABSENT, Loader, State
from testkit.server import ROOT, VENV_BIN
from testkit.stores import milvus_client


# -- the CLI -------------------------------------------------------------------------------------
def run_cli(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``somafractalmemory ARGS`` as a subprocess on the stack ``env`` names."""
    return subprocess.run(
        [str(VENV_BIN / "somafractalmemory"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def drain_and_reconcile(env: dict[str, str]) -> tuple[str, str]:
    """``drain-outbox --grace 0`` (no writer may be running), then ``reconcile``; both must
    exit 0, and reconcile must report drift 0. Returns their outputs."""
    drained = run_cli(env, "drain-outbox", "--grace", "0")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    reconciled = run_cli(env, "reconcile")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert "drift found: 0 " in reconciled.stdout, reconciled.stdout
    return drained.stdout.strip(), reconciled.stdout.strip()


# -- the verdict ---------------------------------------------------------------------------------
@dataclass
class Verdict:
    """What :func:`verify` found; ``problems`` must be empty."""

    coords: int = 0
    acknowledged_present: int = 0
    acknowledged_absent: int = 0
    uncertain: int = 0
    uncertain_present: int = 0
    rows: int = 0
    vectors: int = 0
    own_vectors_checked: int = 0
    embedded_checked: int = 0
    unacknowledged_batches: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.coords} coordinates: {self.acknowledged_present} acknowledged present, "
            f"{self.acknowledged_absent} acknowledged deleted, {self.uncertain} uncertain "
            f"({self.uncertain_present} of them present); {self.rows} rows, {self.vectors} "
            f"vectors; vectors checked: {self.own_vectors_checked} own, "
            f"{self.embedded_checked} embedded; {self.unacknowledged_batches} "
            "unacknowledged batches all-or-none"
        )


def _rows(dsn: str, tenant_id: int) -> dict[str, tuple[int, str, list[float] | None]]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        found = conn.execute(
            "SELECT key AS coord, id, text, client_vector FROM records "
            "WHERE tenant_id = %s AND namespace_path = ''",
            (tenant_id,),
        ).fetchall()
    return {coord: (int(id_), text, vector) for coord, id_, text, vector in found}


def milvus_ids(uri: str, collection: str, tenant_id: int) -> Counter[int]:
    # Milvus 2.3.5 has no MVCC timestamp for iterators; pymilvus logs a warning and then
    # reads at the client's time, which Strong consistency makes current anyway.
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    client = milvus_client(uri, timeout=30)
    try:
        iterator = client.query_iterator(
            collection,
            batch_size=1000,
            filter=f"tenant_id == {int(tenant_id)}",
            output_fields=["id"],
            consistency_level="Strong",
            timeout=30,
        )
        found: Counter[int] = Counter()
        try:
            while batch := iterator.next():
                found.update(int(r["id"]) for r in batch)
        finally:
            iterator.close()
    finally:
        client.close()
    return found


def milvus_vectors(uri: str, collection: str, ids: Sequence[int]) -> dict[int, np.ndarray]:
    client = milvus_client(uri, timeout=30)
    found: dict[int, np.ndarray] = {}
    try:
        for start in range(0, len(ids), 256):
            chunk = ", ".join(str(int(i)) for i in ids[start : start + 256])
            rows = client.query(
                collection,
                filter=f"id in [{chunk}]",
                output_fields=["id", VECTOR_FIELD],
                consistency_level="Strong",
                timeout=30,
            )
            found.update(
                (int(r["id"]), np.asarray(r[VECTOR_FIELD], dtype=np.float64)) for r in rows
            )
    finally:
        client.close()
    return found


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def verify(
    loaders: Sequence[Loader],
    dsn: str,
    milvus_uri: str,
    collection: str,
    tenant_id: int,
    embed: Callable[[list[str]], list[list[float]]],
    embedded_sample: int = 200,
) -> Verdict:
    """Check the stores against the loaders' records (see the module docstring)."""
    verdict = Verdict()
    problems = verdict.problems
    rows = _rows(dsn, tenant_id)
    in_milvus = milvus_ids(milvus_uri, collection, tenant_id)
    verdict.rows, verdict.vectors = len(rows), sum(in_milvus.values())
    sent_vectors: dict[str, list[float]] = {}
    uncertain_coords: set[str] = set()
    written: set[str] = set()
    for loader in loaders:
        problems.extend(loader.violations)
        sent_vectors.update(loader.sent_vectors)
        for coord, states in loader.states.items():
            written.add(coord)
            row = rows.get(coord)
            final: State = row[1] if row else ABSENT
            if len(states) > 1:
                verdict.uncertain += 1
                verdict.uncertain_present += final is not ABSENT
                uncertain_coords.add(coord)
            elif ABSENT in states:
                verdict.acknowledged_absent += 1
            else:
                verdict.acknowledged_present += 1
            if final not in states:
                if len(states) == 1 and ABSENT in states:
                    what = "acknowledged delete resurrected"
                elif len(states) == 1:
                    what = "acknowledged store lost or stale"
                else:
                    what = "unacknowledged write neither wholly there nor wholly absent"
                problems.append(f"{what} at {coord}: stored {final!r}, possible {states}")
        problems.extend(_batch_problems(loader, rows))
        verdict.unacknowledged_batches += sum(
            1 for r in loader.requests if r.kind == "batch" and not r.acknowledged
        )
    verdict.coords = len(written)
    problems.extend(f"a row nobody wrote at {coord}" for coord in sorted(set(rows) - written))
    row_ids = {row[0] for row in rows.values()}
    problems.extend(
        f"memory {coord} (id {row[0]}) has {in_milvus.get(row[0], 0)} vectors in milvus"
        for coord, row in sorted(rows.items())
        if in_milvus.get(row[0], 0) != 1
    )
    problems.extend(f"orphan vector {i} in milvus" for i in sorted(set(in_milvus) - row_ids))

    # vectors against texts: every client vector, every uncertain coordinate, a sample
    own = [(c, r) for c, r in rows.items() if r[1] in sent_vectors]
    embedded = [(c, r) for c, r in rows.items() if r[1] not in sent_vectors]
    rng = random.Random(tenant_id)
    chosen = [x for x in embedded if x[0] in uncertain_coords]
    rest = [x for x in embedded if x[0] not in uncertain_coords]
    chosen += rng.sample(rest, min(len(rest), max(0, embedded_sample - len(chosen))))
    vectors = milvus_vectors(milvus_uri, collection, [r[0] for _c, r in own + chosen])
    for coord, (id_, text, client_vector) in own:
        sent = np.asarray(sent_vectors[text], dtype=np.float64)
        if client_vector is None or not np.allclose(client_vector, sent, rtol=1e-5, atol=1e-6):
            problems.append(f"{coord}: PostgreSQL's client vector is not the one sent")
        if id_ in vectors and not np.allclose(vectors[id_], sent, rtol=1e-5, atol=1e-6):
            problems.append(f"{coord}: milvus holds another vector than the one sent")
    verdict.own_vectors_checked = len(own)
    if chosen:
        expected = embed([r[1] for _c, r in chosen])
        for (coord, (id_, _text, client_vector)), vector in zip(chosen, expected, strict=True):
            if client_vector is not None:
                problems.append(f"{coord}: a client vector on a memory sent without one")
            if id_ in vectors:
                similarity = _cosine(vectors[id_], np.asarray(vector, dtype=np.float64))
                if similarity < 0.999:
                    problems.append(
                        f"{coord}: milvus vector is not the text's embedding ({similarity:.3f})"
                    )
    verdict.embedded_checked = len(chosen)
    return verdict


def _batch_problems(
    loader: Loader, rows: dict[str, tuple[int, str, list[float] | None]]
) -> list[str]:
    """An unacknowledged batch is stored as one unit: of its memories no later request
    touched, either all hold the batch's text or none does."""
    last_write: dict[str, int] = {}
    for position, request in enumerate(loader.requests):
        if request.is_write:
            for coord in request.coords():
                last_write[coord] = position
    problems: list[str] = []
    for position, request in enumerate(loader.requests):
        if request.kind != "batch" or request.acknowledged:
            continue
        untouched = [w for w in request.writes if last_write[w.coord] == position]
        there = [w.coord for w in untouched if w.coord in rows and rows[w.coord][1] == w.text]
        if there and len(there) != len(untouched):
            problems.append(
                f"unacknowledged batch half stored: {len(there)} of {len(untouched)} "
                f"({request.describe()})"
            )
    return problems
