"""After a load of replaces, supersessions and deletes: ``record_history`` and the current
state checked against the clients' records (:mod:`testkit.loadgen`) and against each other.

The clients' requests give each key a sequence of operations: a write (its text), a
supersede (by the coordinate the request wrote) and a delete. A request sent again at once
after no acknowledgement (``Mix.retry``) is the same operation, so consecutive copies of one
operation at a key count once: each can leave at most one version, and an acknowledged one
exactly one. :func:`verify_history` then requires, for every key:

- its versions (oldest first) are a subsequence of its operations, each version what its
  operation wrote (a write's payload, the successor of a supersede, the last version's
  payload on a delete): nothing recorded that no request asked for, nothing out of order,
  no deleted version that comes back without a write;
- every acknowledged operation has its version (no acknowledged version lost);
- an unacknowledged request left a version at each key it wrote, or at none;
- the current row is its newest version, field by field, and that version is no deletion;
  a key with versions and no row ends with a deletion;
- a superseded row's Milvus entity carries ``attrs["sfm-superseded"] == true``, and a
  current row's does not;
- what the Redis cache holds for a key (read through :class:`MemoryCache`, as the server
  does) is its row: a version served from the cache after the crash is a version come back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from somafractalmemory.stores.milvus_filters import SUPERSEDED
from somafractalmemory.stores.redis import MemoryCache
from testkit.loadgen import Loader
from testkit.stores import milvus_client

# The fields a version copies from its row (migration 0008's VERSION_FIELDS).
VERSION_FIELDS = (
    "payload",
    "memory_type",
    "importance",
    "text",
    "valid_from",
    "valid_to",
    "superseded_by",
)


@dataclass
class Op:
    """One operation at a key: ``kind`` write (``text``), supersede (by ``successor``) or
    delete; ``unit`` names the request (the first of its copies), ``acked`` whether any
    copy was acknowledged."""

    kind: str
    unit: tuple[int, int]  # (loader index, position of the first copy in its requests)
    text: str = ""
    successor: str = ""
    acked: bool = False
    last: int = 0  # position of the latest copy
    matched: bool = False

    def same(self, other: Op) -> bool:
        return (self.kind, self.text, self.successor) == (other.kind, other.text, other.successor)


@dataclass
class HistoryVerdict:
    """What :func:`verify_history` found; ``problems`` must be empty."""

    keys: int = 0
    versions: int = 0
    by_change: dict[str, int] = field(default_factory=dict)
    acknowledged_ops: int = 0
    unacknowledged_kept: int = 0
    unacknowledged_dropped: int = 0
    superseded_rows: int = 0
    entities_checked: int = 0
    cached: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        changes = ", ".join(f"{k} {v}" for k, v in sorted(self.by_change.items()))
        return (
            f"history: {self.keys} keys, {self.versions} versions ({changes}); "
            f"{self.acknowledged_ops} acknowledged operations all recorded; unacknowledged: "
            f"{self.unacknowledged_kept} kept, {self.unacknowledged_dropped} not; "
            f"{self.superseded_rows} superseded rows; {self.entities_checked} Milvus "
            f"entities' state checked; {self.cached} cached memories checked"
        )


def key_operations(loaders: Sequence[Loader]) -> dict[str, list[Op]]:
    """Every key's operations in the order its client sent them, copies merged."""
    ops: dict[str, list[Op]] = {}

    def add(key: str, op: Op, position: int) -> None:
        seen = ops.setdefault(key, [])
        if seen and seen[-1].same(op) and seen[-1].last == position - 1:
            seen[-1].acked |= op.acked
            seen[-1].last = position
        else:
            seen.append(op)

    for loader in loaders:
        for position, request in enumerate(loader.requests):
            unit = (loader.index, position)
            acked = request.acknowledged
            if request.kind in ("store", "batch", "supersede"):
                for write in request.writes:
                    add(
                        write.coord,
                        Op("write", unit, write.text, acked=acked, last=position),
                        position,
                    )
                if request.kind == "supersede":
                    successor = request.writes[0].coord
                    op = Op("supersede", unit, successor=successor, acked=acked, last=position)
                    add(request.coord, op, position)
            elif request.kind == "delete":
                add(request.coord, Op("delete", unit, acked=acked, last=position), position)
    # A merged copy belongs to the first copy's request (a retry is the same request).
    return ops


def _fetch(dsn: str, tenant_id: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    columns = ", ".join(VERSION_FIELDS)
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10, row_factory=dict_row) as conn:
        history: dict[str, list[dict[str, Any]]] = {}
        for row in conn.execute(
            f"SELECT id, key, change, {columns} FROM record_history "
            "WHERE tenant_id = %s AND namespace_path = '' ORDER BY id",
            (tenant_id,),
        ):
            history.setdefault(row["key"], []).append(row)
        rows = {
            row["key"]: row
            for row in conn.execute(
                f"SELECT id, key, {columns} FROM records "
                "WHERE tenant_id = %s AND namespace_path = ''",
                (tenant_id,),
            )
        }
    return history, rows


def _milvus_superseded(uri: str, collection: str, tenant_id: int) -> dict[int, bool]:
    """Each of the tenant's entities: whether its attrs mark it superseded."""
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    client = milvus_client(uri, timeout=30)
    found: dict[int, bool] = {}
    try:
        iterator = client.query_iterator(
            collection,
            batch_size=1000,
            filter=f"tenant_id == {int(tenant_id)}",
            output_fields=["id", "attrs"],
            consistency_level="Strong",
            timeout=30,
        )
        try:
            while batch := iterator.next():
                found.update((int(r["id"]), r["attrs"].get(SUPERSEDED) is True) for r in batch)
        finally:
            iterator.close()
    finally:
        client.close()
    return found


def _match(op: Op, version: dict[str, Any], before: dict[str, Any] | None) -> bool:
    """Whether ``version`` is what ``op`` writes over the version ``before``."""
    if op.kind == "write":
        return (
            version["change"] in ("created", "replaced")
            and version["payload"] == {"text": op.text}
            and version["text"] == op.text
            and version["superseded_by"] is None
        )
    if before is None or version["payload"] != before["payload"]:
        return False
    if op.kind == "supersede":
        return bool(version["change"] == "superseded" and version["superseded_by"] == op.successor)
    return bool(
        version["change"] == "deleted" and version["superseded_by"] == before["superseded_by"]
    )


def _check_key(
    key: str, ops: list[Op], versions: list[dict[str, Any]], problems: list[str]
) -> None:
    """Match the key's versions to its operations in order (see the module docstring)."""
    at = 0
    before: dict[str, Any] | None = None
    for version in versions:
        while at < len(ops) and not _match(ops[at], version, before):
            at += 1
        if at == len(ops):
            problems.append(
                f"{key}: version {version['id']} ({version['change']} "
                f"{version['text']!r}, superseded_by {version['superseded_by']!r}) matches no "
                f"request in order; operations {[(o.kind, o.text or o.successor) for o in ops]}"
            )
            return
        ops[at].matched = True
        before = version
        at += 1
    for op in ops:
        if op.acked and not op.matched:
            problems.append(f"{key}: acknowledged {op.kind} {op.text or op.successor!r} lost")


def _check_current(
    key: str, versions: list[dict[str, Any]], row: dict[str, Any] | None, problems: list[str]
) -> None:
    newest = versions[-1] if versions else None
    if row is None:
        if newest is not None and newest["change"] != "deleted":
            problems.append(f"{key}: no row, but its newest version is {newest['change']}")
        return
    if newest is None or newest["change"] == "deleted":
        what = "no version" if newest is None else "a deletion as its newest version"
        problems.append(f"{key}: a row (id {row['id']}) with {what}")
        return
    differ = [f for f in VERSION_FIELDS if row[f] != newest[f]]
    if differ:
        problems.append(f"{key}: the row differs from its newest version in {differ}")


def _cache_problems(
    cache: MemoryCache, tenant_id: int, keys: Sequence[str], rows: dict[str, Any]
) -> tuple[int, list[str]]:
    """How many keys the cache holds, and those it holds otherwise than their rows."""
    held = 0
    problems: list[str] = []
    for key in keys:
        cached = cache.get(tenant_id, key)
        if cached is None:
            continue
        held += 1
        row = rows.get(key)
        if row is None:
            problems.append(f"{key}: deleted, but the cache serves {cached.text!r}")
        elif (cached.payload, cached.superseded_by) != (row["payload"], row["superseded_by"]):
            problems.append(
                f"{key}: the cache serves {cached.text!r} superseded_by "
                f"{cached.superseded_by!r}; the row holds {row['text']!r} superseded_by "
                f"{row['superseded_by']!r}"
            )
    return held, problems


def verify_history(
    loaders: Sequence[Loader],
    dsn: str,
    milvus_uri: str,
    collection: str,
    tenant_id: int,
    cache: MemoryCache,
) -> HistoryVerdict:
    """Check the tenant's history, rows and entities' state (see the module docstring)."""
    verdict = HistoryVerdict()
    problems = verdict.problems
    history, rows = _fetch(dsn, tenant_id)
    operations = key_operations(loaders)
    verdict.keys = len(operations)
    for versions in history.values():
        verdict.versions += len(versions)
        for version in versions:
            verdict.by_change[version["change"]] = verdict.by_change.get(version["change"], 0) + 1
    problems.extend(
        f"{key}: versions nobody wrote" for key in sorted(set(history) - set(operations))
    )
    problems.extend(f"{key}: a row nobody wrote" for key in sorted(set(rows) - set(operations)))
    units: dict[tuple[int, int], set[bool]] = {}
    for key, ops in operations.items():
        _check_key(key, ops, history.get(key, []), problems)
        _check_current(key, history.get(key, []), rows.get(key), problems)
        for op in ops:
            verdict.acknowledged_ops += op.acked
            if not op.acked:
                units.setdefault(op.unit, set()).add(op.matched)
    for unit, outcomes in sorted(units.items()):
        if len(outcomes) > 1:
            problems.append(f"unacknowledged request {unit} left versions at some keys only")
        elif True in outcomes:
            verdict.unacknowledged_kept += 1
        else:
            verdict.unacknowledged_dropped += 1
    marked = _milvus_superseded(milvus_uri, collection, tenant_id)
    for key, row in sorted(rows.items()):
        superseded = row["superseded_by"] is not None
        verdict.superseded_rows += superseded
        if row["id"] not in marked:
            continue  # a missing vector is verify()'s and reconcile's finding
        verdict.entities_checked += 1
        if marked[row["id"]] != superseded:
            problems.append(
                f"{key}: row superseded_by {row['superseded_by']!r}, but its Milvus entity "
                f"says superseded={marked[row['id']]}"
            )
    verdict.cached, stale = _cache_problems(cache, tenant_id, sorted(operations), rows)
    problems.extend(stale)
    return verdict
