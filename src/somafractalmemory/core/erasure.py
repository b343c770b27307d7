"""Erasing one end user: every record of the tenant that carries the ``user_id`` (memories,
conversation messages, items), their vectors, their cached copies and every version of them
in the history, also of records deleted before.

Memories go through :meth:`MemoryService.delete_many` with ``purge``; namespaced records
through :meth:`MessageService.delete_records`, which also purges every history row tagged
with the user (migration 0010 copies the scopes into each version). A write for the user
that commits while the erasure runs may survive it: run it again once the user's clients
have stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from somafractalmemory.core.messages import MessageService
from somafractalmemory.core.service import MemoryService
from somafractalmemory.models import Tenant
from somafractalmemory.stores.messages_postgres import CONVERSATIONS


@dataclass(frozen=True)
class Erased:
    """What erasing a user removed."""

    memories: int
    messages: int
    items: int
    versions: int


def erase_user(
    memories: MemoryService, messages: MessageService, tenant: Tenant, user_id: str
) -> Erased:
    """Erase everything of ``user_id`` in the tenant; answers the counts."""
    coords = messages.queries.memory_coords(tenant.id, user_id)
    removed, purged = memories.delete_many(tenant, coords, purge=True) if coords else ([], 0)
    rows = [r for r in messages.queries.records_of(tenant.id, user_id=user_id) if r[1] != ""]
    purged += messages.delete_records(tenant, rows, purge=True, user_id=user_id)
    conversation = sum(1 for r in rows if r[3][:1] == (CONVERSATIONS,))
    return Erased(len(removed), conversation, len(rows) - conversation, purged)
