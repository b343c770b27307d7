"""Every server's wording of "collection does not exist" is a missing collection (a
SchemaError naming it), anything else an outage: the errors are pymilvus's own, as each server
sent them (Milvus 2.3.5 through pymilvus 2.5 and 3.0; milvus-lite 3.2.2)."""

from __future__ import annotations

import pytest
from pymilvus import MilvusException

from somafractalmemory.stores.milvus import is_missing_collection

MISSING = [
    # Milvus 2.3.5 (and 2.4 to 2.6: the same merr text), as load, query, search, list_indexes
    "collection not found[database=default][collection=nope]",
    # ... as describe_collection, insert and delete (pymilvus prefixes it)
    "can't find collection collection not found[database=default][collection=nope]",
    # milvus-lite 3.2.2
    "collection 'nope' does not exist",
]


@pytest.mark.parametrize("message", MISSING)
@pytest.mark.parametrize("code", [100, 1])  # 100 is what every server sends; the text suffices
def test_missing_collection_wordings(message: str, code: int) -> None:
    assert is_missing_collection(MilvusException(code=code, message=message))


def test_code_100_alone_is_a_missing_collection() -> None:
    assert is_missing_collection(MilvusException(code=100, message="something unexpected"))


@pytest.mark.parametrize(
    "message",
    [
        "Fail connecting to server on 127.0.0.1:19530, illegal connection params or server "
        "unavailable",
        "partition 'p' does not exist",
        "database 'db' does not exist",
        "rate limit exceeded",
    ],
)
def test_other_errors_are_not(message: str) -> None:
    assert not is_missing_collection(MilvusException(code=2, message=message))
