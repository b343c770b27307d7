"""Milvus filter expressions: the tenant and scope of a memory search, and the payload
fields a filter can match inside Milvus.

Keys are checked against an identifier pattern and values rendered as escaped literals, so a
caller cannot break out of an expression (no filter templating: Milvus 2.3.5 has none).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from somafractalmemory.errors import InvalidInputError
from somafractalmemory.models import Scopes, SearchScope

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


# A record's state travels in ``attrs`` under keys no payload field can have (a payload key
# must match FILTER_KEY; these contain "-"). A missing key reads as "not superseded" and "no
# bound": entities written before history existed need no rewrite.
SUPERSEDED = "sfm-superseded"
VALID_FROM = "sfm-valid_from"
VALID_TO = "sfm-valid_to"


# The scopes (user, agent, session) travel the same way: "sfm-user_id" and so on.
SCOPE_PREFIX = "sfm-"


def scope_attrs(scopes: Scopes) -> dict[str, FilterValue]:
    """The scope keys of a record's entity: only the scopes it has."""
    return {SCOPE_PREFIX + name: value for name, value in scopes.given().items()}


def scope_filter(scopes: Scopes) -> list[str]:
    """Clauses keeping the entities of the given scopes (none given: no clause)."""
    return [
        f'attrs["{SCOPE_PREFIX}{name}"] == {_literal(value, name)}'
        for name, value in scopes.given().items()
    ]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def state_attrs(
    superseded: bool, valid_from: datetime | None, valid_to: datetime | None
) -> dict[str, FilterValue]:
    """The state keys of a record's entity: only those that say something."""
    attrs: dict[str, FilterValue] = {}
    if superseded:
        attrs[SUPERSEDED] = True
    if valid_from is not None:
        attrs[VALID_FROM] = _ms(valid_from)
    if valid_to is not None:
        attrs[VALID_TO] = _ms(valid_to)
    return attrs


def state_filter(include_superseded: bool, valid_at: datetime | None) -> list[str]:
    """Clauses keeping current records (unless superseded ones are asked for) that are valid
    at ``valid_at``. ``not (x == v)`` is true where the key is missing (Milvus 2.3 and up)."""
    clauses = [] if include_superseded else [f'not (attrs["{SUPERSEDED}"] == true)']
    if valid_at is not None:
        at = _ms(valid_at)
        clauses.append(f'not (attrs["{VALID_FROM}"] > {at})')
        clauses.append(f'not (attrs["{VALID_TO}"] <= {at})')
    return clauses


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
        return " and ".join([*clauses, *state_filter(False, None)])
    clauses.extend(state_filter(scope.include_superseded, scope.valid_at))
    clauses.extend(scope_filter(scope.scopes))
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
