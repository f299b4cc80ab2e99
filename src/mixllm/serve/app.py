"""The OpenAI-compatible HTTP gateway: ``create_app(router, backends, store, settings)``.

Endpoints (module-level functions reading the :class:`~mixllm.serve.gateway.Gateway` from
``app.state``): ``POST /v1/chat/completions`` (streaming and not), ``GET /v1/models``,
``POST /v1/feedback``, ``GET /healthz``, ``GET /metrics`` and the admin API under ``/admin``
(:mod:`mixllm.serve.admin`). Errors are JSON (``{"error": {"message", "type", "code"}}``),
mapped to HTTP in :func:`mixllm.serve.errors.error_response` alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mixllm.clock import Clock
from mixllm.errors import ConfigError, MixLLMError, PersistError
from mixllm.router import Router
from mixllm.serve._deferred import DeferredWrites
from mixllm.serve._redis import RedisLink
from mixllm.serve.admin import admin_routes
from mixllm.serve.auth import admin_key, client_key, is_admin
from mixllm.serve.backends import Backend
from mixllm.serve.errors import UnknownModelError, handle, handle_unexpected
from mixllm.serve.gateway import Gateway
from mixllm.serve.guard import RequestGuard
from mixllm.serve.responses import completion, headers, sse
from mixllm.serve.schemas import ChatRequest, FeedbackRequest
from mixllm.serve.settings import Settings
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
    redis: RedisLink | None = None,
) -> FastAPI:
    """The gateway app. ``state_dir`` holds router checkpoints (none without it); the app
    checkpoints on shutdown and closes the backends' connections. With ``redis`` the replicas
    share their load, breakers and rate limits (closed with the app)."""
    gw = Gateway(
        router, backends, store, settings or Settings(),
        state_dir=None if state_dir is None else Path(state_dir), clock=clock, redis=redis,
    )  # fmt: skip
    app = FastAPI(title="mixllm gateway", lifespan=_lifespan)
    app.state.gateway = gw
    _replica_metrics(gw)
    s = gw.settings
    app.add_middleware(
        RequestGuard, max_body_bytes=s.max_body_bytes, body_timeout_s=s.body_timeout_s,
        max_in_flight=s.max_in_flight,
    )  # fmt: skip
    app.add_middleware(_AccessLog)  # added last, so outermost: logs the guard's refusals too
    for kind in (MixLLMError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, handle_unexpected)
    app.add_api_route("/v1/chat/completions", chat, methods=["POST"])
    app.add_api_route("/v1/completions", legacy_completions, methods=["POST"])
    app.add_api_route("/v1/models", models, methods=["GET"])
    app.add_api_route("/v1/feedback", feedback, methods=["POST"])
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.include_router(admin_routes)
    return app


def _replica_metrics(gw: Gateway) -> None:
    """The gauges of a replica: how far it has learned the feedback log, the writes it keeps
    while a shared store is away, whether its Redis answers (read when scraped)."""
    m, store, link = gw.metrics, gw.store, gw.redis
    m.feedback_learned.set_function(lambda: gw.learning.applied_seq)
    if isinstance(store, DeferredWrites):
        m.kept_writes.set_function(lambda: store.deferred)
    if link is not None:
        m.redis_up.set_function(lambda: float(link.up))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    gw: Gateway = app.state.gateway
    # load the tokenizer and embedder before the first request, not during it
    await run_in_threadpool(gw.router.predict, ["warm up"])
    gw.learning.start()  # on a shared store: learn what the other replicas receive
    yield
    await run_in_threadpool(gw.learning.stop)
    await run_in_threadpool(gw.learning.checkpoint)
    await gw.aclose()
    if gw.redis is not None:
        await run_in_threadpool(gw.redis.close)


def _gateway(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


class _AccessLog:
    """Counts and times each request (Prometheus) and writes its access-log line when its
    response has been sent (a stream when its last chunk has): method, endpoint, status,
    milliseconds, the key's name (never the secret), the LLM, the decision id, fallbacks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gw: Gateway = scope["app"].state.gateway
        started = gw.clock.now()
        status = 500
        said: dict[str, str] = {}

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.startswith(b"x-mixllm-"):
                        said[name.decode("latin-1")] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = gw.clock.now() - started
            endpoint = str(getattr(scope.get("route"), "path", "unmatched"))
            gw.metrics.requests.labels(endpoint, str(status)).inc()
            gw.metrics.request_latency.labels(endpoint).observe(seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    json.dumps(
                        {
                            "method": scope["method"], "endpoint": endpoint, "status": status,
                            "ms": round(seconds * 1e3, 2),
                            "key": scope.get("state", {}).get("key_name"),
                            "llm": said.get("x-mixllm-llm"),
                            "decision_id": said.get("x-mixllm-decision-id"),
                            "fallbacks": said.get("x-mixllm-fallbacks"),
                        }
                    )
                )  # fmt: skip


# -- endpoints ---------------------------------------------------------------------------------
async def chat(body: ChatRequest, request: Request) -> Response:
    """``POST /v1/chat/completions``: route, call (with fallbacks), relay the answer."""
    gw = _gateway(request)
    key = client_key(request)
    plan = await gw.plan(body, key, session=_session_header(request))
    try:
        if body.stream:
            answer, stream = await gw.open_stream(plan)
            include = bool(body.stream_options and body.stream_options.include_usage)
            relay = sse(answer, plan, stream, include_usage=include)
            return StreamingResponse(
                gw.shadow.follow(relay, body, plan, answer.llm, stream),
                media_type="text/event-stream",
                headers=headers(answer, plan, gw.backends.get(answer.llm)),
                background=BackgroundTask(stream.aclose),
            )
        answer = await gw.complete(plan)
    except BaseException:
        await gw.billing.refund(plan)  # no answer, no charge
        raise
    shadow = gw.shadow.task(body, plan, answer.llm, answer.result)  # after the response
    said = headers(answer, plan, gw.backends.get(answer.llm))
    return JSONResponse(completion(answer, plan), headers=said, background=shadow)


async def legacy_completions(request: Request) -> Response:
    """``POST /v1/completions`` (the legacy text API) is not served: 404 naming those that
    are."""
    raise UnknownModelError(
        "POST /v1/completions is not supported; use POST /v1/chat/completions "
        "(also served: GET /v1/models, POST /v1/feedback)"
    )


async def models(request: Request) -> dict[str, Any]:
    """``GET /v1/models``: ``mixllm``, the profiles and the served LLMs."""
    gw = _gateway(request)
    client_key(request)
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "owned_by": "mixllm"} for n in gw.model_names()],
    }


async def feedback(body: FeedbackRequest, request: Request) -> dict[str, str]:
    """``POST /v1/feedback``: stored, then learned; only from the key that made the decision."""
    gw = _gateway(request)
    key = client_key(request)
    decision_id = body.id.removeprefix("chatcmpl-")
    fb = Feedback(quality=body.quality, cost_usd=body.cost_usd, reward=body.reward)
    status = await run_in_threadpool(gw.learning.feedback, decision_id, fb, key)
    return {"id": body.id, "status": status}


async def healthz(request: Request) -> Response:
    """``GET /healthz``: a real store write (503 when it fails); details (LLMs, circuits,
    store counts) unless ``protect_metrics`` and the caller has no admin key."""
    gw = _gateway(request)
    try:
        await run_in_threadpool(gw.store.heartbeat)
    except PersistError as exc:
        logger.error("health check: the store cannot be written: %s", exc)
        if gw.store.dialect != "sqlite":  # shared: the replicas answer on meanwhile
            reason = "the shared store is away: routing from the last state, feedback refused"
            return JSONResponse({"status": "degraded", "reason": reason})
        return JSONResponse(
            {"status": "unavailable", "reason": "the store cannot be written"}, status_code=503
        )
    if gw.settings.protect_metrics and not is_admin(request):
        return JSONResponse({"status": "ok"})
    counts = await run_in_threadpool(gw.store.counts)
    circuits = {m: b.state for m, b in gw.breakers.items()}
    learned = gw.learning.applied_seq  # the last feedback learned: equal on in-step replicas
    return JSONResponse(
        {
            "status": "ok", "llms": list(gw.router.llms), "circuits": circuits,
            "store": counts, "feedback_learned": learned,
        }
    )  # fmt: skip


async def metrics(request: Request) -> Response:
    """``GET /metrics`` (Prometheus), behind an admin key with ``protect_metrics``."""
    gw = _gateway(request)
    if gw.settings.protect_metrics:
        admin_key(request)
    return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4")


def _session_header(request: Request) -> str | None:
    value = request.headers.get("x-mixllm-session")
    if value is None:
        return None
    if not (0 < len(value) <= 200 and value.isascii() and value.isprintable() and " " not in value):
        raise ConfigError(
            f"x-mixllm-session={value[:40]!r}; expected 1 to 200 printable ASCII characters"
        )
    return value
