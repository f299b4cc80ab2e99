"""The OpenAI-compatible HTTP gateway: ``create_app(router, backends, store, settings)``.

Endpoints: ``POST /v1/chat/completions`` (streaming and not), ``GET /v1/models``,
``POST /v1/feedback``, ``GET /healthz``, ``GET /metrics`` and the admin API under ``/admin``.
Errors are JSON (``{"error": {"message", "type", "code"}}``) with a 4xx status for bad input;
they are mapped to HTTP in :func:`mixllm.serve.http_errors.error_response` alone.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mixllm.clock import Clock
from mixllm.errors import (
    BackendError,
    MixLLMError,
)
from mixllm.router import Router
from mixllm.serve.admin import admin_routes
from mixllm.serve.backends import Backend
from mixllm.serve.gateway import Answer, Gateway
from mixllm.serve.http_errors import AuthError, BodyLimit, handle, handle_unexpected
from mixllm.serve.schemas import ChatRequest, FeedbackRequest
from mixllm.serve.settings import ApiKey, Settings
from mixllm.serve.store import Store
from mixllm.types import Feedback

__all__ = ["create_app"]

logger = logging.getLogger(__name__)
access_log = logging.getLogger("mixllm.serve.access")
"""One JSON object per request: method, endpoint, status, ms, key name, LLM, decision id."""


def create_app(
    router: Router,
    backends: Mapping[str, Backend],
    store: Store,
    settings: Settings | None = None,
    *,
    state_dir: str | Path | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The gateway app. ``state_dir`` holds router checkpoints (none without it); the app
    checkpoints on shutdown and closes the backends' connections."""
    gw = Gateway(
        router, backends, store, settings or Settings(),
        state_dir=None if state_dir is None else Path(state_dir), clock=clock,
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # load the tokenizer and embedder before the first request, not during it
        await run_in_threadpool(gw.router.predict, ["warm up"])
        yield
        await run_in_threadpool(gw.checkpoint)
        await gw.aclose()

    app = FastAPI(title="mixllm gateway", lifespan=lifespan)
    app.state.gateway = gw
    app.add_middleware(BodyLimit, max_bytes=gw.settings.max_body_bytes)
    for kind in (MixLLMError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, handle_unexpected)

    @app.middleware("http")
    async def count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        seconds = time.perf_counter() - started
        route = request.scope.get("route")
        endpoint = str(getattr(route, "path", "unmatched"))
        gw.metrics.requests.labels(endpoint, str(response.status_code)).inc()
        gw.metrics.request_latency.labels(endpoint).observe(seconds)
        access_log.info(
            json.dumps(
                {
                    "method": request.method, "endpoint": endpoint,
                    "status": response.status_code, "ms": round(seconds * 1e3, 2),
                    "key": getattr(request.state, "key_name", None),  # never the secret
                    "llm": response.headers.get("x-mixllm-llm"),
                    "decision_id": response.headers.get("x-mixllm-decision-id"),
                    "fallbacks": response.headers.get("x-mixllm-fallbacks"),
                }
            )
        )  # fmt: skip
        return response

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request) -> Response:
        key = _client(gw.settings, request)
        options = body.mixllm.model_dump(exclude_none=True) if body.mixllm else {}
        prompt = body.prompt()
        decision = gw.decide(prompt, gw.profile(body.model), options, key)
        await gw.record(decision, key, body.model)
        reserved = await gw.reserve(key, decision)
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        params = body.upstream_params()
        try:
            if body.stream:
                answer, first, rest = await gw.open_stream(decision, messages, params, prompt)
                return StreamingResponse(
                    _sse(answer, body.model, first, rest),
                    media_type="text/event-stream",
                    headers=_headers(answer),
                )
            answer = await gw.complete(
                decision, messages, params, prompt, key=key, reserved_usd=reserved
            )
        except BaseException:
            await gw.refund(key, reserved)  # no answer, no charge
            raise
        return JSONResponse(_completion(answer, body.model), headers=_headers(answer))

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        _client(gw.settings, request)
        names = ["mixllm", *sorted(gw.settings.profiles), *sorted(gw.router.llms)]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "owned_by": "mixllm"} for n in dict.fromkeys(names)
            ],
        }

    @app.post("/v1/feedback")
    async def feedback(body: FeedbackRequest, request: Request) -> dict[str, str]:
        _client(gw.settings, request)
        decision_id = body.id.removeprefix("chatcmpl-")
        fb = Feedback(quality=body.quality, cost_usd=body.cost_usd, reward=body.reward)
        status = await run_in_threadpool(gw.feedback, decision_id, fb)
        return {"id": body.id, "status": status}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        counts = await run_in_threadpool(gw.store.counts)
        circuits = {m: b.state for m, b in gw.breakers.items()}
        return {"status": "ok", "llms": list(gw.router.llms), "circuits": circuits, "store": counts}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4")

    app.include_router(admin_routes(gw, lambda request: _admin(gw.settings, request)))
    return app


# -- auth ------------------------------------------------------------------------------------
def _key(settings: Settings, request: Request) -> ApiKey | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    found = None
    for key in settings.keys:  # every key compared, in constant time
        if hmac.compare_digest(key.secret.encode(), token.strip().encode()):
            found = key
    request.state.key_name = None if found is None else found.name  # for the access log
    return found


def _client(settings: Settings, request: Request) -> ApiKey | None:
    """The caller's key for chat and feedback (``None`` when the gateway has no keys)."""
    if settings.open_access:
        return None
    key = _key(settings, request)
    if key is None:
        raise AuthError(
            "missing or invalid API key; expected 'Authorization: Bearer <key>'", status=401
        )
    return key


def _admin(settings: Settings, request: Request) -> ApiKey:
    if not any(k.admin for k in settings.keys):
        raise AuthError("the admin API is off: no admin key is configured", status=403)
    key = _key(settings, request)
    if key is None:
        raise AuthError("missing or invalid API key; expected an admin key", status=401)
    if not key.admin:
        raise AuthError(f"key {key.name!r} is not an admin key", status=403)
    return key


# -- responses -------------------------------------------------------------------------------
def _explain(answer: Answer) -> dict[str, Any]:
    d = answer.decision
    return {
        "decision_id": d.decision_id,
        "llm": answer.llm,
        "routed_to": d.llm,
        "runner_up": d.runner_up,
        "lam": d.lam,
        "predicted_quality": d.predicted_quality.get(d.llm),
        "predicted_cost_usd": d.predicted_cost_usd.get(d.llm),
        "predicted_wait_s": d.predicted_wait_s.get(d.llm, 0.0),
        "scores": dict(d.scores),
        "attempts": [
            {
                "llm": a.llm,
                "ok": a.ok,
                "error": a.error,
                "status": a.status,
                "seconds": round(a.seconds, 4),
            }
            for a in answer.attempts
        ],
    }


def _headers(answer: Answer) -> dict[str, str]:
    d = answer.decision
    return {
        "x-mixllm-llm": answer.llm,
        "x-mixllm-decision-id": d.decision_id,
        "x-mixllm-routed-to": d.llm,
        "x-mixllm-runner-up": d.runner_up or "",
        "x-mixllm-predicted-quality": f"{d.predicted_quality.get(d.llm, float('nan')):.4f}",
        "x-mixllm-predicted-cost-usd": f"{d.predicted_cost_usd.get(d.llm, float('nan')):.8f}",
        "x-mixllm-predicted-wait-s": f"{d.predicted_wait_s.get(d.llm, 0.0):.3f}",
        "x-mixllm-fallbacks": str(sum(not a.ok for a in answer.attempts)),
    }


def _completion(answer: Answer, model: str) -> dict[str, Any]:
    result = answer.result
    assert result is not None
    usage = None
    if result.prompt_tokens is not None and result.completion_tokens is not None:
        usage = {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        }
    return {
        "id": f"chatcmpl-{answer.decision.decision_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.llm,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage,
        "mixllm": _explain(answer),
    }


async def _sse(
    answer: Answer, model: str, first: str, rest: AsyncIterator[str]
) -> AsyncIterator[bytes]:
    """OpenAI's chunk stream: the role, each delta, the finish reason, ``[DONE]``. A failure
    after the first delta ends the stream with an error event (no fallback mid-answer)."""
    base = {
        "id": f"chatcmpl-{answer.decision.decision_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.llm,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk({"role": "assistant", "content": first}, mixllm=_explain(answer))
    try:
        async for delta in rest:
            yield chunk({"content": delta})
    except BackendError as exc:
        logger.warning("stream from %s broke after it started: %s", answer.llm, exc)
        error = {"error": {"message": str(exc), "type": "upstream_error", "code": 502}}
        yield f"data: {json.dumps(error)}\n\n".encode()
        return
    yield chunk({}, "stop")
    yield b"data: [DONE]\n\n"
