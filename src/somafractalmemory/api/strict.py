"""Routes that refuse query parameters they do not take, and the routers that hold them.

FastAPI ignores unknown query parameters; then a misspelt option (``?include_superseeded=1``)
silently answers as if it were not given. Every API route here refuses them instead: 422
naming the parameter and what the endpoint takes. A parameter that takes one value given more
than once (``?user_id=a&user_id=b``, which FastAPI reads as its last value) is refused too.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from somafractalmemory.errors import InvalidInputError
from somafractalmemory.schemas import COORD_DESCRIPTION, COORD_PATTERN, ErrorResponse


class StrictQueryRoute(APIRoute):
    """An API route that answers 422 to a query parameter it does not declare."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = _query_names(self.dependant)
        single = _single_valued(self.dependant)
        takes = ", ".join(sorted(allowed)) or "none"

        async def checked(request: Request) -> Response:
            unknown = [name for name in request.query_params if name not in allowed]
            if unknown:
                raise InvalidInputError(
                    f"unknown query parameter (this endpoint takes: {takes})", unknown[0]
                )
            repeated = [name for name in single if len(request.query_params.getlist(name)) > 1]
            if repeated:
                raise InvalidInputError("takes one value, given more than once", repeated[0])
            return await handler(request)

        return checked


def _single_valued(dependant: Dependant) -> frozenset[str]:
    """The query parameters of a route and its dependencies that take one value."""
    names = {
        param.alias
        for param in dependant.query_params
        if not field_annotation_is_sequence(param.field_info.annotation)
    }
    for sub in dependant.dependencies:
        names |= _single_valued(sub)
    return frozenset(names)


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route and its dependencies declare."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


def api_router(tag: str, error_codes: tuple[int, ...], prefix: str = "") -> APIRouter:
    """A router of strict routes under one OpenAPI tag, documenting ``ErrorResponse`` for
    ``error_codes`` (the statuses its routes can answer besides their own)."""
    responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in error_codes
    }
    return APIRouter(prefix=prefix, tags=[tag], responses=responses, route_class=StrictQueryRoute)


# The limits of a coordinate given in a path or a query parameter (``Path(**COORD_LIMITS)``).
COORD_LIMITS: dict[str, Any] = {
    "max_length": 1024,
    "pattern": COORD_PATTERN,
    "description": COORD_DESCRIPTION,
}
