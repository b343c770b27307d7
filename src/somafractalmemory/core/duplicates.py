"""Duplicates, reported and not dropped: exact ones (the same text once normalised, found by
PostgreSQL's ``text_hash``) and near ones (cosine similarity at least
:data:`SIMILAR_THRESHOLD`, found with one batched Milvus search per request and end user),
among the memories of the write's ``user_id`` when it has one: another user's memory is never
reported.

``on_duplicate`` decides what a write does about exact duplicates: ``store`` (default), ``skip``
(store nothing when one exists) or ``supersede`` (the new memory supersedes them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from somafractalmemory.core.memory_input import PreparedWrite
from somafractalmemory.models import Memory, Scopes, SearchScope, Tenant, VectorHit, WriteResult
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.postgres import PostgresStore

# Chosen on all-MiniLM-L6-v2: paraphrases of one fact score about 0.85-0.95, different facts
# about one subject 0.5-0.8 (docs/history.md, "Duplicates").
SIMILAR_THRESHOLD = 0.9
SIMILAR_LIMIT = 3


@dataclass(frozen=True)
class DuplicatePlan:
    """What a request's writes do about duplicates: the exact duplicates of each (other
    coordinates), what each supersedes (named and by ``on_duplicate``), and the writes
    skipped with the memory that made them skip."""

    duplicate_of: dict[str, tuple[str, ...]]
    supersedes: dict[str, tuple[str, ...]]
    skipped: dict[str, Memory] = field(default_factory=dict)
    # The end user of each write: duplicates are looked for among that user's memories only
    # (a write without a user_id: among the tenant's).
    users: dict[str, str | None] = field(default_factory=dict)


class Duplicates:
    """Finds a request's duplicates before it is written."""

    def __init__(self, postgres: PostgresStore, milvus: MilvusStore) -> None:
        self.postgres = postgres
        self.milvus = milvus

    def plan(self, tenant: Tenant, writes: Sequence[PreparedWrite]) -> DuplicatePlan:
        """One PostgreSQL query for the exact duplicates of every write."""
        found = self.postgres.exact_duplicates(
            tenant.id, "", [w.memory.text for w in writes], [w.memory.user_id for w in writes]
        )
        written = {w.memory.coord for w in writes}
        duplicate_of: dict[str, tuple[str, ...]] = {}
        supersedes: dict[str, tuple[str, ...]] = {}
        skip: dict[str, str] = {}
        for write, keys in zip(writes, found, strict=True):
            coord = write.memory.coord
            others = tuple(k for k in keys if k != coord)
            duplicate_of[coord] = others
            extra: tuple[str, ...] = ()
            if write.on_duplicate == "skip" and others:
                skip[coord] = others[0]
            elif write.on_duplicate == "supersede":
                extra = tuple(k for k in others if k not in written)
            supersedes[coord] = tuple(dict.fromkeys((*write.supersedes, *extra)))
        existing = self.postgres.memories_at(tenant.id, sorted(set(skip.values())))
        skipped = {c: existing[d][0] for c, d in skip.items() if d in existing}
        users = {w.memory.coord: w.memory.user_id for w in writes}
        return DuplicatePlan(duplicate_of, supersedes, skipped, users)

    def similar(
        self, tenant: Tenant, vectors: dict[str, list[float]], plan: DuplicatePlan
    ) -> dict[str, tuple[tuple[str, float], ...]]:
        """Near duplicates of each write among the tenant's current memories (itself and its
        exact duplicates left out), best first, in one Milvus search."""
        if not vectors:
            return {}
        by_user: dict[str | None, list[str]] = {}
        for coord in vectors:
            by_user.setdefault(plan.users.get(coord), []).append(coord)
        coords: list[str] = []
        hits: list[list[VectorHit]] = []
        for user, group in by_user.items():  # one Milvus search per end user of the request
            coords.extend(group)
            hits.extend(
                self.milvus.search_many(
                    tenant.id,
                    [vectors[c] for c in group],
                    SIMILAR_LIMIT + 1 + max(len(plan.duplicate_of.get(c, ())) for c in group),
                    SearchScope(scopes=Scopes(user_id=user)),
                )
            )
        close = {hit.id for row in hits for hit in row if hit.score >= SIMILAR_THRESHOLD}
        names = self.postgres.coords_for_ids(tenant.id, sorted(close))
        similar: dict[str, tuple[tuple[str, float], ...]] = {}
        for coord, row in zip(coords, hits, strict=True):
            exact = set(plan.duplicate_of.get(coord, ()))
            similar[coord] = tuple(
                (names[hit.id], round(hit.score, 4))
                for hit in row
                if hit.id in names
                and hit.score >= SIMILAR_THRESHOLD
                and names[hit.id] != coord
                and names[hit.id] not in exact
            )[:SIMILAR_LIMIT]
        return similar

    @staticmethod
    def result(
        coord: str,
        plan: DuplicatePlan,
        similar: dict[str, tuple[tuple[str, float], ...]],
        stored: dict[str, Memory],
        before: dict[str, tuple[Memory, list[float] | None]],
    ) -> WriteResult:
        """The answer for one write of the request."""
        duplicate_of = plan.duplicate_of.get(coord, ())
        if coord in plan.skipped:
            return WriteResult(plan.skipped[coord], "skipped", duplicate_of)
        near = similar.get(coord, ())
        if coord not in stored:
            return WriteResult(before[coord][0], "unchanged", duplicate_of, near)
        if coord in before:
            return WriteResult(stored[coord], "replaced", duplicate_of, near)
        return WriteResult(stored[coord], "created", duplicate_of, near)
