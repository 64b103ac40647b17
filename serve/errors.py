"""Errors as the service answers them: one JSON line, `{"error": ...}`, with the status the
kind of error calls for; never a traceback, and never a file path of the server's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from engine.errors import (
    ConfigError,
    EventLogError,
    FashionrecError,
    NotFoundError,
    ShopsError,
    StoreError,
    one_line,
)
from ingest.runs import Busy

# an absolute path of this machine, unquoted (a quoted one is a name the client gave)
PATH: Final = re.compile(r"(?<![\w.:/'\"])/(?:[\w.@+-]+/)*[\w.@+-]+")


class ErrorBody(BaseModel):
    """What every error answers: one line, never a traceback."""

    error: str


ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422, 503)
}


def status_of(error: FashionrecError) -> int:
    """The HTTP status of an engine error: bad values 422, unknown names 404, a conflict
    409, a back-end that fails 503, any other bad input 400."""
    if isinstance(error, ConfigError):
        return 422
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ShopsError | Busy):
        return 409
    if isinstance(error, StoreError | EventLogError):
        return 503
    return 400


def without_paths(text: str) -> str:
    """The text with this machine's absolute paths left out (a client learns nothing of
    the server's folders from an error)."""
    return PATH.sub("<path>", text)


def answer(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one-line JSON error."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Answer the engine's errors, bad parameters and unknown paths or methods as one line."""

    @app.exception_handler(FashionrecError)
    async def engine_error(request: Request, exc: FashionrecError) -> JSONResponse:
        return answer(status_of(exc), without_paths(one_line(exc, 500)))

    @app.exception_handler(RequestValidationError)
    async def bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return answer(422, f"{where}: {first.get('msg')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        messages = {
            404: f"no such path {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        text = messages.get(exc.status_code, str(exc.detail))
        return answer(exc.status_code, text, exc.headers)
