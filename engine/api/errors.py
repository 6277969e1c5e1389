"""The service's error answers: ``ApiError`` (an ``HTTPException`` that may carry every problem with its
JSON path), the error body schemas, and the exception handlers the app registers.

No traceback ever reaches a client: an exception no handler expects is answered with a short 500 and
logged with its traceback server-side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from engine.api.responses import json_response
from engine.errors import json_path

__all__ = [
    "ERRORS",
    "EXCEPTION_HANDLERS",
    "ApiError",
    "ErrorBody",
    "ErrorItem",
    "json_problem",
]

log = logging.getLogger("casecheck.api")


class ApiError(HTTPException):
    """An error answer: status, a short detail, and optionally every problem with its JSON path."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, headers)
        self.errors = errors


class ErrorItem(BaseModel):
    path: str
    message: str


class ErrorBody(BaseModel):
    detail: str
    errors: list[ErrorItem] | None = None


# The error answers every /v1 route may give, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "API keys are configured and none valid was given"},
    408: {"model": ErrorBody, "description": "the body did not arrive within the client timeout"},
    413: {"model": ErrorBody, "description": "body over the size limit"},
    422: {"model": ErrorBody, "description": "invalid input; every problem with its JSON path"},
}


def json_problem(exc: orjson.JSONDecodeError) -> dict[str, str]:
    """A body that is not JSON, as an error item."""
    return {"path": "$", "message": f"invalid JSON: {exc}"}


async def http_error(request: Request, exc: HTTPException) -> Response:
    """An ``HTTPException`` (``ApiError``, or Starlette's own, such as 404 and 405) as an ``ErrorBody``."""
    body: dict[str, Any] = {"detail": exc.detail}
    if isinstance(exc, ApiError) and exc.errors is not None:
        body["errors"] = exc.errors
    return json_response(body, exc.status_code, exc.headers)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's parameter validation, worded like the case errors (JSON paths)."""
    errors = [{"path": json_path(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    return await http_error(request, ApiError(422, "invalid request", errors))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """Any other exception: a short 500, the traceback in the log. Starlette then re-raises it to the
    server, which logs it too and closes the connection."""
    log.exception("unhandled error on %s %s", request.method, request.scope["path"], exc_info=exc)
    return json_response({"detail": "internal server error"}, 500)


EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    HTTPException: http_error,
    RequestValidationError: validation_error,
    Exception: unexpected_error,
}
