"""The client maps every error answer to a class of its tree, by name first, then by status."""

from __future__ import annotations

import pytest

from somafractalmemory.client.errors import (
    NotFound,
    ServerError,
    SFMClientError,
    StoreUnavailable,
    error_for,
)


@pytest.mark.parametrize("name", [None, "ForbiddenError", "SomethingNew"])
def test_a_403_is_the_base_class_with_its_status(name: str | None) -> None:
    """SFM never answers 403; a proxy in front of it may, and the caller still sees why."""
    error = error_for(403, name, "denied by the proxy")
    assert type(error) is SFMClientError
    assert error.status_code == 403
    assert error.detail == "denied by the proxy"


def test_names_of_the_server_tree_map_through_their_status() -> None:
    assert isinstance(error_for(404, "NotFoundError", "x"), NotFound)
    assert isinstance(error_for(503, "MilvusUnavailableError", "milvus down"), StoreUnavailable)
    assert type(error_for(502, None, "bad gateway")) is ServerError
