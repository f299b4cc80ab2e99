"""How the gateway's errors become HTTP responses: :func:`error_response` is the one place
that maps them to a status and ``{"error": {"message", "type", "code"}}``; :class:`BodyLimit`
answers 413 for a body over the limit, declared or streamed."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixllm.errors import (
    BackendError,
    ConfigError,
    MixLLMError,
    UnknownDecisionError,
    UnknownLLMError,
)
from mixllm.serve.fallback import NoHealthyBackendError
from mixllm.serve.gateway import SpendLimitError, UnknownModelError

__all__ = ["AuthError", "BodyLimit", "error_response", "handle", "handle_unexpected"]

logger = logging.getLogger("mixllm.serve.app")


class AuthError(MixLLMError):
    """Missing or wrong API key (401), or a key without the right (403)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def error_response(exc: Exception) -> JSONResponse:
    """The one place errors become HTTP statuses."""
    if isinstance(exc, RequestValidationError):
        return _json(400, "invalid_request_error", _validation_message(exc))
    if isinstance(exc, StarletteHTTPException) and isinstance(exc.__cause__, _TooLargeError):
        exc = exc.__cause__  # FastAPI turns any error of a body read into a 400
    if isinstance(exc, _TooLargeError):
        return _json(413, "invalid_request_error", str(exc))
    if isinstance(exc, StarletteHTTPException):
        return _json(exc.status_code, "invalid_request_error", str(exc.detail))
    if isinstance(exc, AuthError):
        return _json(
            exc.status,
            "authentication_error" if exc.status == 401 else "permission_error",
            str(exc),
        )
    if isinstance(exc, SpendLimitError):
        return _json(429, "spend_limit_exceeded", str(exc))
    if isinstance(exc, (UnknownModelError, UnknownDecisionError, UnknownLLMError)):
        return _json(404, "not_found_error", str(exc))
    if isinstance(exc, NoHealthyBackendError):
        return _json(503, "no_healthy_backend", str(exc))
    if isinstance(exc, BackendError):
        status = exc.status if exc.status is not None and 400 <= exc.status < 500 else 502
        return _json(status, "upstream_error", str(exc))
    if isinstance(exc, ConfigError):
        return _json(400, "invalid_request_error", str(exc))
    return _json(500, "server_error", f"internal error: {type(exc).__name__}")


async def handle(request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(exc)


def _json(status: int, kind: str, message: str) -> JSONResponse:
    # a message may quote the request: lone surrogates in it cannot be encoded as UTF-8
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}}, status_code=status
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":  # its loc is the character where it broke
            why = err.get("ctx", {}).get("error", "decode error")
            parts.append(f"body: invalid JSON ({why} at character {err['loc'][-1]})")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


class BodyLimit:
    """413 for a request body larger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _TooLargeError(f"request body over {self.max_bytes} bytes")
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await error_response(too_large)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise too_large
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLargeError as exc:
            await error_response(exc)(scope, receive, send)


class _TooLargeError(MixLLMError):
    """A request body over ``max_body_bytes`` (413), declared or streamed."""
