"""Import: an export file into one tenant through the normal write path, idempotently."""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from somafractalmemory.core.coords import canonical_coord
from somafractalmemory.core.items import ItemService
from somafractalmemory.core.memory_input import MemoryInput, text_to_embed
from somafractalmemory.core.portability.export import FORMAT, VERSION
from somafractalmemory.core.portability.history import VersionImport, VersionLine
from somafractalmemory.core.portability.items import ItemLine, SpaceLine, store_item
from somafractalmemory.core.portability.lines import (
    MAX_KEPT_ERRORS,
    ImportReport,
    LineError,
    LinkLine,
    MemoryLine,
)
from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import ConflictError, InvalidInputError, NotFoundError
from somafractalmemory.models import Link, Memory, Tenant

IMPORT_BATCH = 200
READABLE_VERSIONS = (1, 2, VERSION)


@dataclass(frozen=True)
class _Pending:
    line: int
    item: MemoryInput


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _same_vector(given: list[float], stored: list[float] | None) -> bool:
    # Both stores keep float32, so compare at that precision: a file written by hand with
    # more digits is still "the same" once stored.
    return stored is not None and array("f", given) == array("f", stored)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


def tenant_for_import(service: MemoryService, name: str) -> Tenant:
    """The tenant called ``name``, created if it does not exist yet."""
    found = service.postgres.tenant_by_name(name)
    if found is not None:
        return found
    clean = name.strip()
    if not clean or len(clean) > 128:
        raise InvalidInputError("must be 1 to 128 characters", "tenant")
    with service.postgres.unit_of_work() as uow:
        tenant = uow.ensure_tenant(clean)
        uow.commit()
    return tenant


class Importer:
    """Imports an export file into one tenant, line by line.

    ``run`` raises :class:`InvalidInputError` (field ``header``) when the first line is not a
    version-1 header this service can use; nothing is imported then. A store outage
    propagates as its :class:`StoreUnavailableError`; ``report`` still says what was done
    until then. Any other bad line is recorded (and passed to ``on_error``) and skipped.

    Vectors: the file's vectors are stored as client vectors when the header names this
    service's embedding model and dimension. When it names another model and the file
    carries vectors, the import is refused unless ``reembed`` is set; with ``reembed`` the
    file's vectors are ignored and every memory is embedded from its text.
    """

    def __init__(
        self,
        service: MemoryService,
        tenant: Tenant,
        *,
        reembed: bool = False,
        batch_size: int = IMPORT_BATCH,
        on_error: Callable[[LineError], None] | None = None,
        items: ItemService | None = None,
    ) -> None:
        self.service = service
        self.items = items
        self.tenant = tenant
        self.reembed = reembed
        self.batch_size = batch_size
        self.on_error = on_error
        self.report = ImportReport()
        self._use_vectors = not reembed
        self._memories: list[_Pending] = []
        self._links: list[tuple[int, Link]] = []
        self._superseded: dict[str, list[str]] = {}
        self._versions = VersionImport(service.postgres, tenant)

    def run(self, lines: Iterable[str | bytes]) -> ImportReport:
        """Import ``lines`` (the file's lines, header first) and return the report."""
        numbered = enumerate(lines, start=1)
        first = next(numbered, None)
        if first is None:
            raise InvalidInputError("the file is empty", "header")
        self._check_header(first[1])
        for number, raw in numbered:
            self._take(number, raw)
        self._flush_memories()
        self._flush_links()
        for successor, coords in self._superseded.items():
            self.service.supersede(self.tenant, successor, coords)
        self._versions.flush()
        self.report.versions_imported = self._versions.imported
        self.report.versions_unchanged = self._versions.unchanged
        return self.report

    # -- lines ------------------------------------------------------------------------------
    def _error(self, line: int, message: str) -> None:
        error = LineError(line, message)
        self.report.error_count += 1
        if len(self.report.errors) < MAX_KEPT_ERRORS:
            self.report.errors.append(error)
        if self.on_error is not None:
            self.on_error(error)

    def _check_header(self, raw: str | bytes) -> None:
        try:
            header = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"line 1 is not JSON ({exc})", "header") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise InvalidInputError(
                f'line 1 must be the header {{"format": "{FORMAT}", ...}}: '
                "this is not a SomaFractalMemory export",
                "header",
            )
        version = header.get("version")
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise InvalidInputError(
                f"version {version!r} is not supported (this service reads versions "
                f"{', '.join(str(v) for v in READABLE_VERSIONS)})",
                "header",
            )
        model, dimension = header.get("embedding_model"), header.get("dimension")
        if (
            not isinstance(model, str)
            or not isinstance(dimension, int)
            or isinstance(dimension, bool)
        ):
            raise InvalidInputError(
                "must name the embedding_model (a string) and its dimension (an integer)",
                "header",
            )
        embedder = self.service.embedder
        if (model, dimension) != (embedder.model_name, embedder.dimension):
            # The file's vectors live in another embedding space: never mix them in.
            self._use_vectors = False
            if header.get("with_vectors") is not False and not self.reembed:
                raise InvalidInputError(
                    f"the file's vectors come from model {model!r} (dimension {dimension}); "
                    f"this service embeds with {embedder.model_name!r} (dimension "
                    f"{embedder.dimension}). Pass --reembed (reembed=True) to ignore them "
                    "and embed every memory from its text",
                    "header",
                )
        self.report.vectors_used = self._use_vectors

    def _take(self, number: int, raw: str | bytes) -> None:
        raw = raw.strip()
        if not raw:
            return
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            self._error(number, f"invalid JSON: {exc.msg} at column {exc.colno}")
            return
        except UnicodeDecodeError:
            self._error(number, "not UTF-8 text")
            return
        if not isinstance(record, dict):
            self._error(number, "not a JSON object")
            return
        kind = record.get("kind")
        if kind == "memory":
            self._take_memory(number, record)
        elif kind == "link":
            self._take_link(number, record)
        elif kind == "version":
            self._take_version(number, record)
        elif kind in ("item", "space") and self.items is not None:
            self._flush_memories()
            self._flush_links()
            self._take_item(number, record, self.items)
        else:
            expected = (
                "'memory', 'link', 'space', 'item' or 'version'"
                if self.items
                else "'memory', 'link' or 'version'"
            )
            self._error(number, f"unknown kind {kind!r} (expected {expected})")

    def _take_item(self, number: int, record: dict[str, Any], items: ItemService) -> None:
        """A space or an item line, written at once through the item service."""
        try:
            if record["kind"] == "space":
                space = SpaceLine.model_validate(record)
                _found, created = items.create_space(
                    self.tenant, space.name, space.dimension, space.metric
                )
                self.report.spaces_created += int(created)
                return
            outcome = store_item(items, self.tenant, ItemLine.model_validate(record))
        except ValidationError as exc:
            self._error(number, _validation_message(exc))
            return
        except (InvalidInputError, ConflictError, NotFoundError) as exc:
            self._error(number, exc.detail)
            return
        if outcome == "created":
            self.report.items_created += 1
        elif outcome == "replaced":
            self.report.items_replaced += 1
        else:
            self.report.items_unchanged += 1

    def _take_version(self, number: int, record: dict[str, Any]) -> None:
        try:
            self._versions.add(VersionLine.model_validate(record))
        except ValidationError as exc:
            self._error(number, _validation_message(exc))
        except InvalidInputError as exc:
            self._error(number, exc.detail)

    def _take_memory(self, number: int, record: dict[str, Any]) -> None:
        try:
            line = MemoryLine.model_validate(record)
        except ValidationError as exc:
            self._error(number, _validation_message(exc))
            return
        try:
            coord = canonical_coord(line.coord)
            text_to_embed(line.payload)
        except InvalidInputError as exc:
            self._error(number, exc.detail)
            return
        vector = line.vector if self._use_vectors else None
        dimension = self.service.embedder.dimension
        if vector is not None and len(vector) != dimension:
            self._error(number, f"vector: must have {dimension} numbers, got {len(vector)}")
            return
        if any(p.item.coord == coord for p in self._memories):
            self._flush_memories()  # the same coordinate again: the later line wins
        item = MemoryInput(
            coord,
            line.payload,
            line.memory_type,
            line.importance,
            vector,
            line.created_at,
            valid_from=line.valid_from,
            valid_to=line.valid_to,
            user_id=line.user_id,
            agent_id=line.agent_id,
            session_id=line.session_id,
        )
        if line.superseded_by is not None:
            try:
                successor = canonical_coord(line.superseded_by, "superseded_by")
            except InvalidInputError as exc:
                self._error(number, exc.detail)
                return
            self._superseded.setdefault(successor, []).append(coord)
        self._memories.append(_Pending(number, item))
        if len(self._memories) >= self.batch_size:
            self._flush_memories()

    def _take_link(self, number: int, record: dict[str, Any]) -> None:
        try:
            line = LinkLine.model_validate(record)
            from_coord = canonical_coord(line.from_coord, "from_coord")
            to_coord = canonical_coord(line.to_coord, "to_coord")
        except ValidationError as exc:
            self._error(number, _validation_message(exc))
            return
        except InvalidInputError as exc:
            self._error(number, exc.detail)
            return
        self._flush_memories()  # its ends may still be waiting in the batch
        self._links.append(
            (number, Link(from_coord, to_coord, line.link_type, line.strength, line.metadata))
        )
        if len(self._links) >= self.batch_size:
            self._flush_links()

    # -- memories ---------------------------------------------------------------------------
    def _flush_memories(self) -> None:
        batch, self._memories = self._memories, []
        if not batch:
            return
        stored = self.service.postgres.memories_at(self.tenant.id, [p.item.coord for p in batch])
        need = [
            stored[p.item.coord][0].id
            for p in batch
            if p.item.vector is not None
            and p.item.coord in stored
            and stored[p.item.coord][1] is None
        ]
        indexed = self.service.milvus.vectors(self.tenant.id, need) if need else {}
        changed = []
        for pending in batch:
            current = stored.get(pending.item.coord)
            if current is not None and self._unchanged(pending.item, *current, indexed):
                self.report.unchanged += 1
            else:
                changed.append(pending)
        self._write(changed)

    @staticmethod
    def _unchanged(
        item: MemoryInput, memory: Memory, own: list[float] | None, indexed: dict[int, list[float]]
    ) -> bool:
        """Whether storing ``item`` would change nothing: same payload, type, importance,
        creation time (when the file gives one) and vector (when the file gives one)."""
        return (
            memory.memory_type == item.memory_type
            and memory.importance == item.importance
            and (item.created_at is None or memory.created_at == item.created_at)
            and (memory.valid_from, memory.valid_to) == (item.valid_from, item.valid_to)
            and (memory.user_id, memory.agent_id, memory.session_id)
            == (item.user_id, item.agent_id, item.session_id)
            and _canonical_json(memory.payload) == _canonical_json(item.payload)
            and (
                item.vector is None
                or _same_vector(item.vector, own if own is not None else indexed.get(memory.id))
            )
        )

    def _write(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            results = self.service.store_batch(self.tenant, [p.item for p in batch])
        except (InvalidInputError, ConflictError) as exc:
            # A value PostgreSQL refused fails the whole batch (it is one unit): find the
            # line by writing them one at a time. Store outages propagate.
            if len(batch) == 1:
                self._error(batch[0].line, exc.detail)
                return
            for pending in batch:
                self._write([pending])
            return
        for result in results:
            if result.replaced:
                self.report.replaced += 1
            else:
                self.report.created += 1

    # -- links ------------------------------------------------------------------------------
    def _flush_links(self) -> None:
        batch, self._links = self._links, []
        if not batch:
            return
        coords = sorted({c for _n, link in batch for c in (link.from_coord, link.to_coord)})
        ids = self.service.postgres.memory_ids(self.tenant.id, coords)
        ready: list[tuple[int, Link, tuple[int, int, str]]] = []
        for number, link in batch:
            missing = [
                f"{name}: no memory at coord {coord!r}"
                for name, coord in (("from_coord", link.from_coord), ("to_coord", link.to_coord))
                if coord not in ids
            ]
            if missing:
                self._error(number, "; ".join(missing))
            else:
                ready.append(
                    (number, link, (ids[link.from_coord], ids[link.to_coord], link.link_type))
                )
        existing = self.service.postgres.links_among(self.tenant.id, [key for *_, key in ready])
        for number, link, key in ready:
            current = existing.get(key)
            if current is not None and (
                current[0] == link.strength
                and _canonical_json(current[1]) == _canonical_json(link.metadata)
            ):
                self.report.links_unchanged += 1
                continue
            try:
                self.service.link(self.tenant, link)
            except (NotFoundError, InvalidInputError, ConflictError) as exc:
                self._error(number, exc.detail)
                continue
            existing[key] = (link.strength, link.metadata)
            if current is None:
                self.report.links_created += 1
            else:
                self.report.links_updated += 1


def import_lines(
    service: MemoryService,
    tenant: Tenant,
    lines: Iterable[str | bytes],
    *,
    reembed: bool = False,
    on_error: Callable[[LineError], None] | None = None,
    items: ItemService | None = None,
) -> ImportReport:
    """Import an export file's lines into ``tenant``; see :class:`Importer`."""
    return Importer(service, tenant, reembed=reembed, on_error=on_error, items=items).run(lines)
