"""The wrapping every page cursor shares: its text, base64url-encoded without padding, so that
any position (ids, times, a scope value) travels in a query string unchanged and reads as
opaque. Each listing puts its own kind prefix and position inside and checks them on the way
back; :func:`unpack` only undoes the wrapping.
"""

from __future__ import annotations

import base64
import binascii

from somafractalmemory.errors import InvalidInputError

NOT_OURS = "is not a cursor this service returned"


def pack(text: str) -> str:
    """The cursor carrying ``text``."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def unpack(cursor: str, field: str = "cursor") -> str:
    """The text a cursor carries; a 422 naming ``field`` when it is not base64url of UTF-8."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInputError(NOT_OURS, field) from None


def pack_numbers(kind: str, *numbers: int) -> str:
    """The cursor of ``kind`` carrying ``numbers`` (an id, an offset, a feed position)."""
    return pack(":".join([kind, *map(str, numbers)]))


def unpack_numbers(cursor: str, kind: str, count: int, field: str = "cursor") -> list[int]:
    """The ``count`` numbers a cursor of ``kind`` carries; a 422 naming ``field`` when it is
    not one :func:`pack_numbers` made for that kind."""
    head, *values = unpack(cursor, field).split(":")
    if head != kind or len(values) != count or not all(v.isascii() and v.isdigit() for v in values):
        raise InvalidInputError(NOT_OURS, field)
    return [int(v) for v in values]
