"""What an item's ``index`` paths select, and how its filters are checked.

Paths follow LangGraph's syntax (``langgraph.store.base.embed.get_text_at_path``), so an item
indexed through SFM and through LangGraph selects the same texts: ``$`` (the whole value as
sorted JSON), ``a.b`` (nested fields), ``x[0]`` / ``x[-1]`` (one element), ``x[*]`` (every
element: one vector each), ``a.*`` (every value of an object) and ``{a,b.c}`` (several fields).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from somafractalmemory.errors import InvalidInputError

MAX_NAMESPACE_DEPTH = 10
MAX_LABEL_LENGTH = 256
MAX_KEY_LENGTH = 512
MAX_PATHS = 32
MAX_PATH_LENGTH = 256
MAX_VECTORS_PER_ITEM = 256
MAX_FILTER_CONDITIONS = 32
MAX_FILTER_DEPTH = 8
COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


def check_labels(labels: Sequence[str], field: str) -> None:
    """Refuse labels that are empty, hold a ``.`` or a NUL, or are too long."""
    if len(labels) > MAX_NAMESPACE_DEPTH:
        raise InvalidInputError(f"at most {MAX_NAMESPACE_DEPTH} labels", field)
    for label in labels:
        if not isinstance(label, str) or not label:
            raise InvalidInputError("labels must be non-empty strings", field)
        if "." in label:
            raise InvalidInputError(f"label {label!r} contains a period", field)
        if "\x00" in label:
            raise InvalidInputError("labels must not contain NUL characters", field)
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidInputError(f"labels are at most {MAX_LABEL_LENGTH} characters", field)


def check_namespace(namespace: Sequence[str], field: str = "namespace") -> None:
    """A namespace that an item can live in: 1 to 10 valid labels."""
    if not namespace:
        raise InvalidInputError("must have at least one label", field)
    check_labels(namespace, field)


def check_key(key: str, field: str = "key") -> None:
    """A non-empty key of at most 512 characters, without NUL."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(f"must be 1 to {MAX_KEY_LENGTH} characters", field)
    if "\x00" in key:
        raise InvalidInputError("must not contain NUL characters", field)


_TOKEN = re.compile(r"\[[^\]]*\]|\{[^}]*\}|[^.\[\]{}]+")


def tokenize(path: str) -> list[str]:
    """Split a path into tokens: field names, ``[n]``/``[*]`` and ``{a,b}`` groups."""
    tokens: list[str] = []
    for part in _TOKEN.findall(path):
        tokens.append(part)
    return tokens


def check_paths(paths: list[str], field: str = "index") -> None:
    """Refuse too many or malformed paths."""
    if len(paths) > MAX_PATHS:
        raise InvalidInputError(f"at most {MAX_PATHS} paths", field)
    for path in paths:
        if not isinstance(path, str) or len(path) > MAX_PATH_LENGTH or "\x00" in path:
            raise InvalidInputError(f"paths are strings of at most {MAX_PATH_LENGTH}", field)


def _as_text(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, bool | int | float):
        return [str(obj)]
    if isinstance(obj, list | dict):
        return [json.dumps(obj, sort_keys=True, ensure_ascii=False)]
    return []


def _extract(obj: Any, tokens: list[str], pos: int) -> list[str]:
    if pos >= len(tokens):
        return _as_text(obj)
    token = tokens[pos]
    results: list[str] = []
    if token.startswith("["):
        if not isinstance(obj, list):
            return []
        index = token[1:-1]
        if index == "*":
            for element in obj:
                results.extend(_extract(element, tokens, pos + 1))
            return results
        try:
            idx = int(index)
        except ValueError:
            return []
        if idx < 0:
            idx += len(obj)
        if 0 <= idx < len(obj):
            results.extend(_extract(obj[idx], tokens, pos + 1))
        return results
    if token.startswith("{"):
        if not isinstance(obj, dict):
            return []
        for name in (f.strip() for f in token[1:-1].split(",")):
            current: Any = obj
            for part in tokenize(name):
                if isinstance(current, dict) and part in current:
                    current = current[part]
                else:
                    current = None
                    break
            if current is not None:
                results.extend(_as_text(current))
        return results
    if token == "*":
        values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else []
        for value in values:
            results.extend(_extract(value, tokens, pos + 1))
        return results
    if isinstance(obj, dict) and token in obj:
        return _extract(obj[token], tokens, pos + 1)
    return []


def texts_at(value: dict[str, Any], path: str) -> list[str]:
    """The texts ``path`` selects in ``value`` (LangGraph's semantics; absent paths give
    nothing)."""
    if not path or path == "$":
        return [json.dumps(value, sort_keys=True, ensure_ascii=False)]
    return _extract(value, tokenize(path), 0)


def check_filter(conditions: dict[str, Any], field: str = "filter") -> None:
    """Refuse filters SFM cannot apply inside PostgreSQL: unknown operators, comparisons
    of anything but numbers and strings, too many conditions or too much nesting."""
    count = 0

    def walk(node: dict[str, Any], depth: int, where: str) -> None:
        nonlocal count
        if depth > MAX_FILTER_DEPTH:
            raise InvalidInputError(f"nested deeper than {MAX_FILTER_DEPTH} levels", where)
        for key, expected in node.items():
            if not isinstance(key, str) or not key or "\x00" in key or len(key) > 256:
                raise InvalidInputError("keys are non-empty strings of at most 256", where)
            at = f"{where}.{key}"
            count += 1
            if count > MAX_FILTER_CONDITIONS:
                raise InvalidInputError(f"at most {MAX_FILTER_CONDITIONS} conditions", field)
            if isinstance(expected, dict) and any(str(k).startswith("$") for k in expected):
                for op, operand in expected.items():
                    if op not in COMPARISONS:
                        raise InvalidInputError(
                            f"unknown operator {op!r}; use one of {', '.join(COMPARISONS)}", at
                        )
                    if op in ("$eq", "$ne"):
                        continue
                    if isinstance(operand, bool) or not isinstance(operand, int | float | str):
                        raise InvalidInputError(f"{op} compares numbers or strings", at)
            elif isinstance(expected, dict):
                walk(expected, depth + 1, at)

    walk(conditions, 1, field)
