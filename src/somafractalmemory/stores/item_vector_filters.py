"""Milvus expressions over item entities: the namespace prefix, as an exact string range.

An item entity carries its record's ``namespace_path`` (the labels joined by ``.``; a label
is any non-empty string without ``.`` or NUL, :func:`core.item_paths.check_labels`). The
items under prefix ``P`` are those whose path is ``P`` or starts with ``P.``, and "starts
with ``P.``" is written as the half-open range ``[P + ".", P + "/")``: ``/`` is the byte
after ``.``, and Milvus compares strings byte by byte (as PostgreSQL's ``C`` collation of
``records.namespace_path`` does), so the range holds exactly the strings that begin with
``P.``; prefix ``("a",)`` never matches ``("ab",)`` nor ``("a_b",)``.

Not ``like "P.%"``: Milvus 2.3.5 accepts only a trailing ``%`` (the first ``%`` ends the
prefix, with no escape for a literal one) and takes ``_`` literally, while 2.4 and later
read ``_`` as "any character" and ``\\%`` / ``\\_`` as escapes. A label holding ``%`` could
not be written for 2.3.5, and one holding ``_`` would mean different things on the two
servers; the range means the same on both, for every label the API accepts.

String literals are double-quoted with ``\\``, ``"``, line feed and carriage return escaped
as ``\\\\``, ``\\"``, ``\\n`` and ``\\r``: the four characters a literal cannot hold as they
are. Every other character goes as it is (UTF-8), control characters too, which Milvus 2.3.5
(and the grammar 2.4 to 2.6 share) and milvus-lite 3.x all read as themselves. Not ``\\uXXXX``
for control characters: Milvus accepts it, milvus-lite 3.x rejects it ("unknown escape
sequence"), as it does ``\\t``, ``\\b``, ``\\x..`` and octal escapes; the form used here is
the one both read the same (checked character by character, U+0001 to U+001F, U+007F, U+0085
and U+009F). Milvus 2.3.5 has no filter templating.
"""

from __future__ import annotations

from collections.abc import Sequence

NAMESPACE_FIELD = "namespace_path"
ATTRS_FIELD = "attrs"
# VARCHAR lengths are bytes: the API's longest namespace (core.item_paths: 10 labels of 256
# characters) in 4-byte UTF-8 characters, and the nine dots between them: 10,249 (Milvus
# allows 65,535; a unit test ties the figure to the API's limits).
MAX_NAMESPACE_PATH_BYTES = 10 * (256 * 4 + 1) - 1


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r"}


def quoted(text: str) -> str:
    """``text`` as a Milvus string literal."""
    return '"' + "".join(_ESCAPES.get(char, char) for char in text) + '"'


def in_prefix(prefix: Sequence[str]) -> str | None:
    """The expression keeping entities under ``prefix`` (None: the empty prefix, every
    item)."""
    if not prefix:
        return None
    path = ".".join(prefix)
    field = NAMESPACE_FIELD
    return (
        f"({field} == {quoted(path)} or "
        f"({field} >= {quoted(path + '.')} and {field} < {quoted(path + '/')}))"
    )


def item_filter(
    tenant_id: int,
    prefix: Sequence[str] = (),
    item_ids: Sequence[int] | None = None,
    where: str | None = None,
) -> str:
    """The whole expression of an item vector search: the tenant, then the prefix, the ids
    (a literal list) and the caller's own expression ``where`` (over ``attrs`` and the other
    fields; SFM's code builds it, never a client), each and-ed."""
    clauses = [f"tenant_id == {int(tenant_id)}"]
    scoped = in_prefix(prefix)
    if scoped is not None:
        clauses.append(scoped)
    if item_ids is not None:
        clauses.append(f"item_id in [{', '.join(str(int(i)) for i in item_ids)}]")
    if where:
        clauses.append(f"({where})")
    return " and ".join(clauses)
