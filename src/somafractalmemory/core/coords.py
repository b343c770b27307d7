"""Coordinates: the key a memory is stored under.

A coordinate is 2 to 16 comma-separated finite numbers. Spacing and number spelling do not
matter: ``"1,2,3"`` and ``"1.0, 2, 3"`` name the same memory, so every coordinate is stored in
one canonical spelling.
"""

from __future__ import annotations

import math

from somafractalmemory.errors import InvalidInputError

MIN_DIMENSIONS = 2
MAX_DIMENSIONS = 16
MAX_COORD_CHARS = 1024


def _canonical_number(value: float) -> str:
    if value == 0:
        return "0"  # also folds -0.0
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def canonical_coord(raw: str, field: str = "coord") -> str:
    """Parse ``raw`` and return its canonical spelling, or raise naming ``field``."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInputError("must be 2 to 16 comma-separated numbers, e.g. '1,2,3'", field)
    if len(raw) > MAX_COORD_CHARS:
        raise InvalidInputError(f"must be at most {MAX_COORD_CHARS} characters", field)
    parts = raw.split(",")
    if not MIN_DIMENSIONS <= len(parts) <= MAX_DIMENSIONS:
        raise InvalidInputError(
            f"must have {MIN_DIMENSIONS} to {MAX_DIMENSIONS} numbers, got {len(parts)}", field
        )
    numbers: list[float] = []
    for part in parts:
        try:
            number = float(part.strip())
        except ValueError:
            raise InvalidInputError(f"{part.strip()!r} is not a number", field) from None
        if not math.isfinite(number):
            raise InvalidInputError(f"{part.strip()!r} is not a finite number", field)
        numbers.append(number)
    return ",".join(_canonical_number(n) for n in numbers)
