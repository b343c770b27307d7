"""Routes that refuse query parameters they do not take.

FastAPI ignores unknown query parameters; then a misspelt option (``?include_superseeded=1``)
silently answers as if it were not given. Every API route here refuses them instead: 422
naming the parameter and what the endpoint takes.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from somafractalmemory.errors import InvalidInputError


class StrictQueryRoute(APIRoute):
    """An API route that answers 422 to a query parameter it does not declare."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        allowed = _query_names(self.dependant)
        takes = ", ".join(sorted(allowed)) or "none"

        async def checked(request: Request) -> Response:
            unknown = [name for name in request.query_params if name not in allowed]
            if unknown:
                raise InvalidInputError(
                    f"unknown query parameter (this endpoint takes: {takes})", unknown[0]
                )
            return await handler(request)

        return checked


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route and its dependencies declare."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)
