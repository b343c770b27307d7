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
