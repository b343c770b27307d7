"""SQL expressions for item queries: namespace scope, expiry and payload filters.

Filters are compiled into JSONB expressions with bound parameters only: keys are values of
``jsonb_extract_path``, never SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from somafractalmemory.models import Scopes
from somafractalmemory.stores.tables import IS_ITEM, records, scope_clauses


def namespace_path(namespace: Sequence[str]) -> str:
    """The labels joined by ``.`` (labels never contain one)."""
    return ".".join(namespace)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def live() -> sa.ColumnElement[bool]:
    """Items that have not expired (read at the statement's transaction time)."""
    return sa.or_(records.c.expires_at.is_(None), records.c.expires_at > sa.func.now())


def in_prefix(prefix: Sequence[str]) -> sa.ColumnElement[bool]:
    """Items whose namespace starts with the whole labels of ``prefix`` (``a`` never
    matches ``ab``); the empty prefix matches every item (never a memory)."""
    if not prefix:
        return IS_ITEM
    path = namespace_path(prefix)
    return sa.or_(
        records.c.namespace_path == path,
        records.c.namespace_path.like(_like_escape(path) + ".%", escape="\\"),
    )


def _filter_clauses(conditions: dict[str, Any], path: tuple[str, ...] = ()) -> list[Any]:
    clauses: list[Any] = []
    for key, expected in conditions.items():
        at = (*path, key)
        target = sa.func.jsonb_extract_path(records.c.payload, *at)
        if isinstance(expected, dict) and any(str(k).startswith("$") for k in expected):
            for op, operand in expected.items():
                clauses.append(_comparison(at, target, op, operand))
        elif isinstance(expected, dict):
            clauses.extend(_filter_clauses(expected, at))
        else:
            clauses.append(target == sa.literal(expected, postgresql.JSONB))
    return clauses


def _comparison(at: tuple[str, ...], target: Any, op: str, operand: Any) -> Any:
    if op == "$eq":
        return target == sa.literal(operand, postgresql.JSONB)
    if op == "$ne":
        return sa.or_(target.is_(None), target != sa.literal(operand, postgresql.JSONB))
    text = sa.func.jsonb_extract_path_text(records.c.payload, *at)
    left: Any
    if isinstance(operand, str):
        kind, left, right = "string", text.collate("C"), sa.literal(operand, sa.Text)
    else:
        kind, left, right = "number", sa.cast(text, sa.Numeric), sa.literal(operand, sa.Numeric)
    compare = {
        "$gt": left > right,
        "$gte": left >= right,
        "$lt": left < right,
        "$lte": left <= right,
    }[op]
    return sa.case((sa.func.jsonb_typeof(target) == kind, compare), else_=sa.false())


def scope(
    tenant_id: int,
    prefix: Sequence[str],
    conditions: dict[str, Any],
    include_expired: bool,
    scopes: Scopes | None = None,
) -> list[Any]:
    """The WHERE clauses of a search: tenant, namespace prefix, filters, expiry, and the
    record scopes (user, agent, session) when given."""
    clauses = [records.c.tenant_id == tenant_id, in_prefix(prefix), *_filter_clauses(conditions)]
    if scopes is not None:
        clauses.extend(scope_clauses(scopes))
    if not include_expired:
        clauses.append(live())
    return clauses
