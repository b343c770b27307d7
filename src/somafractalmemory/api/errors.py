"""Rendering every error as ``{"error": ..., "detail": ...}`` with its status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from somafractalmemory.errors import RateLimitedError, SFMError, StoreUnavailableError
from somafractalmemory.schemas import COORD_PATTERN

logger = logging.getLogger(__name__)

# A hint for clients backing off from a 503: stores usually come back within seconds.
STORE_RETRY_AFTER_SECONDS = 5
_HTTP_ERROR_NAMES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    413: "PayloadTooLargeError",
}


def _error(status: int, name: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": name, "detail": detail})


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "body"


def _message(error: Any) -> str:
    """Pydantic's message, with the coordinate pattern said in words."""
    if error.get("type") == "string_pattern_mismatch":
        if (error.get("ctx") or {}).get("pattern") == COORD_PATTERN:
            return "must be 2 to 16 comma-separated finite numbers, e.g. '1,2,3'"
    return str(error["msg"])


async def _sfm_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SFMError)
    if exc.status_code == 500:  # a defect of SFM's own (StatementRejectedError): the trace too
        logger.error("%s: %s", type(exc).__name__, exc.detail, exc_info=exc)
    elif exc.status_code > 500:
        logger.warning("%s: %s", type(exc).__name__, exc.detail)
    response = _error(exc.status_code, type(exc).__name__, exc.detail)
    if isinstance(exc, RateLimitedError):
        response.headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, StoreUnavailableError):
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
    return response


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "BadRequestError", "body: is not valid JSON")
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid"}
    details = "; ".join(f"{_location(tuple(e['loc']))}: {_message(e)}" for e in errors[:5])
    if tuple(first["loc"]) == ("body",) and first.get("type") in (
        "model_attributes_type",
        "dict_type",
    ):
        return _error(400, "BadRequestError", f"body: must be a JSON object ({first['msg']})")
    return _error(422, "InvalidInputError", details)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such route: {_request.method} {_request.url.path}"
    return _error(exc.status_code, name, detail)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error", exc_info=exc)
    return _error(500, "InternalError", "an unexpected error occurred; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the contract's JSON shape."""
    app.add_exception_handler(SFMError, _sfm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
