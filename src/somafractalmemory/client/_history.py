"""History calls: a memory's versions and the tenant's change feed; one function per
client method, as in :mod:`._calls` (an item's versions: ``_items.item_history``)."""

from __future__ import annotations

from typing import Any

from somafractalmemory.client._calls import Call, Retry, coord_path, parse
from somafractalmemory.history_schemas import ChangesResponse, HistoryResponse


def _page(**params: Any) -> dict[str, Any]:
    """The paging parameters that were given (an omitted one is not sent)."""
    return {k: v for k, v in params.items() if v is not None}


def history(coord: str, limit: int = 50, cursor: str | None = None) -> Call[HistoryResponse]:
    """The versions of the memory at ``coord``, newest first (also after a delete, until a
    purge); pass ``next_cursor`` back as ``cursor`` for older ones."""
    return Call(
        "GET",
        f"/memories/{coord_path(coord)}/history",
        lambda r: parse(HistoryResponse, r),
        Retry.READ,
        params=_page(limit=limit, cursor=cursor),
    )


def changes(after: str | None = None, limit: int = 100) -> Call[ChangesResponse]:
    """The tenant's next changes in transaction order after the cursor ``after`` (from the
    start without one); resume with the answer's ``next_cursor``."""
    return Call(
        "GET",
        "/changes",
        lambda r: parse(ChangesResponse, r),
        Retry.READ,
        params=_page(after=after, limit=limit),
    )
