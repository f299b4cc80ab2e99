"""Body limit middleware (413 for a body over the limit, declared or streamed); the error
mapping itself is :func:`mixllm.serve.errors.error_response`."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixllm.serve.errors import (
    AuthError,
    TooLargeError,
    error_response,
    handle,
    handle_unexpected,
)

__all__ = ["AuthError", "BodyLimit", "error_response", "handle", "handle_unexpected"]


class BodyLimit:
    """413 for a request body larger than ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = TooLargeError(f"request body over {self.max_bytes} bytes")
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
        except TooLargeError as exc:
            await error_response(exc)(scope, receive, send)
