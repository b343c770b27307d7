"""Export: the caller's tenant as a JSON Lines stream (the format of ``somafractalmemory
export``, see docs/export-import.md)."""

from __future__ import annotations

from itertools import chain

from fastapi.responses import StreamingResponse

from somafractalmemory.api.deps import ScopeQuery, ServiceDep, StackDep, TenantDep
from somafractalmemory.api.strict import api_router
from somafractalmemory.core.portability import export_lines
from somafractalmemory.models import Scopes

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
    tenant: TenantDep,
    service: ServiceDep,
    stack: StackDep,
    with_vectors: bool = False,
    user_id: ScopeQuery = None,
    agent_id: ScopeQuery = None,
    session_id: ScopeQuery = None,
) -> StreamingResponse:
    """Stream the tenant's memories, links, spaces, items and history as JSON Lines (the
    export format, version 3); with ``user_id``, ``agent_id`` or ``session_id`` only the
    records of those scopes (their memories, items, messages and versions, the links
    between two of them; every space)."""
    scopes = Scopes(user_id, agent_id, session_id)
    lines = export_lines(service, tenant, with_vectors, items=stack.items, scopes=scopes)
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
