"""Coordinates: canonical spelling and the errors that name the field."""

from __future__ import annotations

import pytest

from somafractalmemory.core.coords import canonical_coord
from somafractalmemory.errors import InvalidInputError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,2,3", "1,2,3"),
        ("1.0, 2, 3", "1,2,3"),
        (" -0.0,2.50 ", "0,2.5"),
        ("1e3,-4", "1000,-4"),
        (",".join(["7"] * 16), ",".join(["7"] * 16)),
    ],
)
def test_equal_coordinates_share_one_spelling(raw: str, expected: str) -> None:
    assert canonical_coord(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1", "2 to 16"),
        (",".join(["1"] * 17), "2 to 16"),
        ("1,x", "'x' is not a number"),
        ("1,nan", "finite"),
        ("1,inf", "finite"),
        ("", "comma-separated"),
        ("1,,2", "is not a number"),
    ],
)
def test_bad_coordinates_name_the_field(raw: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        canonical_coord(raw, "from_coord")
    assert caught.value.field == "from_coord"
    assert message in caught.value.detail
