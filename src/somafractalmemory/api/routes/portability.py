"""Export: the caller's tenant as a JSON Lines stream (the format of ``somafractalmemory
export``, see docs/export-import.md)."""

from __future__ import annotations

from itertools import chain

from fastapi.responses import StreamingResponse

from somafractalmemory.api.deps import ServiceDep, StackDep, TenantDep
from somafractalmemory.api.strict import api_router
from somafractalmemory.core.portability import export_lines

router = api_router("portability", (401, 422, 503))
NDJSON = "application/x-ndjson"


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {NDJSON: {"schema": {"type": "string"}}},
            "description": "A header line, then one memory, link, space or item a line",
        }
    },
)
def export(
    tenant: TenantDep, service: ServiceDep, stack: StackDep, with_vectors: bool = False
) -> StreamingResponse:
    """Stream the tenant's memories, links, spaces and items as JSON Lines (the export
    format, version 2)."""
    lines = export_lines(service, tenant, with_vectors, items=stack.items)
    # Read the header and the first page now: a store that is down is a 503 here, before
    # the 200 is sent. Later pages are read one query at a time as the client takes them,
    # so no connection is held across the stream (a client that goes away costs a page).
    header = next(lines)
    first = next(lines, None)
    head = [header] if first is None else [header, first]
    return StreamingResponse(
        chain(head, lines),
        media_type=NDJSON,
        headers={"Content-Disposition": 'attachment; filename="somafractalmemory-export.jsonl"'},
    )
