"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with the matching HTTP status.

Every failure the API server reports - bad JSON, validation, unknown model, auth, oversized bodies, engine
rejections, dead workers - goes through :func:`error_response`, so clients see one shape.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("minisgl.api")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable_error",
}


class ClientGone(Exception):
    """The HTTP client disconnected; its generation was aborted (a normal event: one INFO line, no traceback)."""


class APIError(Exception):
    """An error to return to the client as OpenAI-style JSON."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param, self.code)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object: ``code`` is a short string (``invalid_api_key``, ``model_not_found``) or null."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    message = message.encode("utf-8", "backslashreplace").decode()  # it may quote text with a lone surrogate
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status)


UNION_HINTS = {
    "prompt": "a string, a list of strings, a list of token ids or a list of token-id lists",
    "stop": "a non-empty string or a list of non-empty strings",
    "stop_regex": "a non-empty string or a list of non-empty strings",
    "content": "a string or a list of text parts ({'type': 'text', 'text': ...})",
    "text": "a non-empty string or a list of non-empty strings",
    "input_ids": "a list of token ids or a list of token-id lists",
    "sampling_params": "an object or a list of objects (one per prompt)",
}
"""Fields whose type is a union: pydantic reports one error per member; people get one sentence instead."""
TYPE_ERRORS = ("_type", "literal_error", "missing", "model_attributes_type")


def _path(parts: list[Any] | tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _union_split(loc: list[Any]) -> int | None:
    """Index of the union field in ``loc`` when the next element names one of its members."""
    for i, part in enumerate(loc[:-1]):
        if part in UNION_HINTS and isinstance(loc[i + 1], str):
            return i
    return None


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}", None
    loc = [p for p in first.get("loc", ()) if p != "body"]
    split = _union_split(loc)
    if split is None:
        param = ".".join(str(p) for p in loc) or None
        if first.get("type") == "extra_forbidden":
            return f"Unrecognized request argument supplied: {param}", param
        where = f"{param}: " if param else ""
        message = f"{where}{first.get('msg', 'invalid value')}"
        rest = len(errors) - 1
    else:
        head = loc[: split + 1]
        param = ".".join(str(p) for p in head)
        group = [e for e in errors if [p for p in e.get("loc", ()) if p != "body"][: split + 1] == head]
        message = f"{param}: must be {UNION_HINTS[str(loc[split])]}"
        # the member that got furthest with a value of the right shape explains what is wrong with it
        useful = [e for e in group if not str(e.get("type", "")).endswith(TYPE_ERRORS)]
        if useful:
            best = max(useful, key=lambda e: len(e["loc"]))
            inner = [p for p in best["loc"] if p != "body"][split + 2 :]
            message += f" ({param}{_path(inner)}: {best.get('msg', 'invalid value')})"
        rest = len(errors) - len(group)
    more = f" (and {rest} more {'error' if rest == 1 else 'errors'})" if rest > 0 else ""
    return message + more, param


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception type the app can raise to :func:`error_response`."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.code)

    @app.exception_handler(ClientGone)
    async def _client_gone(request: Request, _: ClientGone) -> Response:
        logger.info("client disconnected before its first token (%s %s); request aborted", request.method,
                    request.url.path)  # fmt: skip
        return Response(status_code=499)  # nobody reads it; uvicorn drops it

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), None)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error while serving a request")
        return error_response(500, f"internal error: {type(exc).__name__}")
