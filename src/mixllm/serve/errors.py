"""The gateway's errors and how they become HTTP responses: :func:`error_response` is the one
place that maps them to a status and ``{"error": {"message", "type", "code"}}`` (with
``Retry-After`` where waiting helps). Bad input is a 4xx, a store that cannot be read or
written a 503, no LLM able to answer a 503; only a bug is a 500."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mixllm.errors import (
    BackendError,
    ConfigError,
    MixLLMError,
    PersistError,
    UnknownDecisionError,
    UnknownLLMError,
)
from mixllm.serve.fallback import NoHealthyBackendError
from mixllm.types import Decision

__all__ = [
    "AuthError",
    "CapabilityError",
    "CostCapError",
    "RateLimitError",
    "SpendLimitError",
    "UnknownModelError",
    "check_cost_cap",
    "error_json",
    "error_response",
    "handle",
    "handle_unexpected",
]

logger = logging.getLogger("mixllm.serve.app")


class AuthError(MixLLMError):
    """Missing or wrong API key (401), or a key without the right (403)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class SpendLimitError(ConfigError):
    """A key's spending limit would be passed by this request (429)."""


class RateLimitError(ConfigError):
    """A key sent more requests or tokens per minute than it may (429 with Retry-After)."""

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CapabilityError(ConfigError):
    """No candidate LLM can do what the request needs (400)."""


class UnknownModelError(ConfigError):
    """A request named a model (profile or LLM) the gateway does not serve (404)."""


class CostCapError(ConfigError):
    """``max_cost_usd`` is below every candidate's predicted cost (400)."""


def check_cost_cap(decision: Decision, max_cost_usd: float) -> Decision:
    """``decision`` with only the candidates predicted to cost at most ``max_cost_usd`` (those
    a conversation may stay on or a fallback may go to); a :class:`CostCapError` naming the
    cheapest predicted cost when there is none (the router would have chosen the cheapest,
    above the cap).

    >>> d = Decision("q", "small", 1.0, scores={"small": 0.5, "big": 0.4},
    ...              predicted_cost_usd={"small": 0.002, "big": 0.03})
    >>> dict(check_cost_cap(d, 0.01).scores)
    {'small': 0.5}
    >>> check_cost_cap(d, 0.001)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mixllm.serve.errors.CostCapError: max_cost_usd=0.001 is below every candidate LLM's ...
    """
    costs = decision.predicted_cost_usd
    cheapest = min(costs, key=lambda m: costs[m], default=None)
    if cheapest is not None and costs[cheapest] > max_cost_usd:
        raise CostCapError(
            f"max_cost_usd={max_cost_usd!r} is below every candidate LLM's predicted cost for "
            f"this request; the cheapest is {cheapest} at ${costs[cheapest]:.6g} (raise "
            "max_cost_usd, or send a shorter prompt)"
        )
    scores = {
        m: s
        for m, s in decision.scores.items()
        if m == decision.llm or costs.get(m, 0.0) <= max_cost_usd
    }
    return replace(decision, scores=scores)


_CLIENT_FAULTS = frozenset({400, 404, 413, 415, 422})


def error_response(exc: Exception) -> JSONResponse:
    """The one place errors become HTTP statuses."""
    if isinstance(exc, RequestValidationError):
        return error_json(400, "invalid_request_error", _validation_message(exc))
    if isinstance(exc, StarletteHTTPException):
        return error_json(exc.status_code, "invalid_request_error", str(exc.detail))
    if isinstance(exc, AuthError):
        return error_json(
            exc.status,
            "authentication_error" if exc.status == 401 else "permission_error",
            str(exc),
        )
    if isinstance(exc, SpendLimitError):
        return error_json(429, "spend_limit_exceeded", str(exc))
    if isinstance(exc, RateLimitError):
        return error_json(429, "rate_limit_exceeded", str(exc), retry_after_s=exc.retry_after_s)
    if isinstance(exc, (UnknownModelError, UnknownDecisionError, UnknownLLMError)):
        return error_json(404, "not_found_error", str(exc))
    if isinstance(exc, NoHealthyBackendError):
        return error_json(503, "no_healthy_backend", str(exc), retry_after_s=exc.retry_after_s)
    if isinstance(exc, BackendError):
        # the upstream refused the request itself (too long, bad parameters): the client's
        # to fix; its 401/403 (the gateway's upstream key) and the rest are the gateway's
        if exc.status in _CLIENT_FAULTS:
            return error_json(exc.status, "upstream_error", str(exc))
        return error_json(502, "upstream_error", str(exc))
    if isinstance(exc, PersistError):
        logger.error("store error: %s", exc)
        return error_json(503, "store_unavailable", "the gateway's store failed; retry later",
                     retry_after_s=1.0)  # fmt: skip
    if isinstance(exc, ConfigError):
        return error_json(400, "invalid_request_error", str(exc))
    return error_json(500, "server_error", f"internal error: {type(exc).__name__}")


async def handle(request: Request, exc: Exception) -> Response:
    return error_response(exc)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, PersistError):
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(exc)


def error_json(
    status: int, kind: str, message: str, *, retry_after_s: float | None = None
) -> JSONResponse:
    """``{"error": {"message", "type", "code"}}`` with ``status`` (and ``Retry-After``)."""
    # a message may quote the request: lone surrogates in it cannot be encoded as UTF-8
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    headers = None
    if retry_after_s is not None:
        headers = {"retry-after": str(max(1, math.ceil(retry_after_s)))}
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}},
        status_code=status,
        headers=headers,
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        if err.get("type") == "json_invalid":  # its loc is the character where it broke
            why = err.get("ctx", {}).get("error", "decode error")
            parts.append(f"body: invalid JSON ({why} at character {err['loc'][-1]})")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "extra_forbidden":
            parts.append(f"{where}: unsupported field; see docs/gateway.md for those accepted")
            continue
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
