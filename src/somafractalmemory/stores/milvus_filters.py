"""Milvus filter expressions: the tenant and scope of a memory search, and the payload
fields a filter can match inside Milvus.

Keys are checked against an identifier pattern and values rendered as escaped literals, so a
caller cannot break out of an expression (no filter templating: Milvus 2.3.5 has none).
"""

from __future__ import annotations

import json
import re
from typing import Any

from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import SearchScope

MAX_ATTR_STRING = 256
FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

FilterValue = str | int | float | bool


def searchable_attrs(payload: dict[str, Any]) -> dict[str, FilterValue]:
    """The payload's top-level scalars that search filters can match inside Milvus."""
    attrs: dict[str, FilterValue] = {}
    for key, value in payload.items():
        if not FILTER_KEY.match(key):
            continue
        if isinstance(value, str) and len(value) > MAX_ATTR_STRING:
            continue
        if isinstance(value, bool | int | float | str):
            attrs[key] = value
    return attrs


def _literal(value: FilterValue, field: str) -> str:
    """A Milvus expression literal for ``value``; strings are quoted and escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if len(value) > MAX_ATTR_STRING:
            raise InvalidInputError(
                f"string values are limited to {MAX_ATTR_STRING} characters", field
            )
        return json.dumps(value, ensure_ascii=False)
    raise InvalidInputError("filter values must be strings, numbers or booleans", field)


def build_filter(tenant_id: int, scope: SearchScope | None = None) -> str:
    """The boolean expression that scopes a search: always the tenant, then the scope.

    Keys are checked against an identifier pattern and values rendered as escaped literals,
    so a caller cannot break out of the expression.
    """
    clauses = [f"tenant_id == {int(tenant_id)}"]
    if scope is None:
        return clauses[0]
    if scope.memory_type is not None:
        clauses.append(f"memory_type == {json.dumps(scope.memory_type.value)}")
    if scope.created_after is not None:
        clauses.append(f"created_at >= {int(scope.created_after.timestamp() * 1000)}")
    if scope.created_before is not None:
        clauses.append(f"created_at < {int(scope.created_before.timestamp() * 1000)}")
    for key, value in scope.filters.items():
        field = f"filters.{key}"
        if not FILTER_KEY.match(key):
            raise InvalidInputError("keys must be identifiers of at most 64 characters", field)
        clauses.append(f'attrs["{key}"] == {_literal(value, field)}')
    return " and ".join(clauses)
