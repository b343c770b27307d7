"""JSON responses serialised straight from their pydantic model."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Response
from pydantic import BaseModel


def json_response(
    model: BaseModel,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``model`` as a JSON response, dumped once by pydantic.

    Why: from a plain ``def`` endpoint, FastAPI validates a returned model again against the
    route's ``response_model`` in another thread pool hop before dumping it. The model is
    already valid (it was built from typed fields), so the hot routes return this instead and
    declare ``response_model`` for the OpenAPI document only.
    """
    return Response(
        model.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
