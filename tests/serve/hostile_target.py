"""The servers the hostile requests go to: :class:`Target`, a real gateway on 127.0.0.1 in
front of a strict OpenAI-compatible upstream or one that reports hostile ``usage``
(:func:`serve`)."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mixllm import Router
from mixllm.serve import FakeBackend, OpenAIBackend, Settings, Store, create_app
from tests.serve.hostile_base import ADMIN, BUDGETED, CLIENT, MISSING, TEXT, dumps, strict_json
from tests.serve.hostile_checks import Req, check, endpoint_of

from .conftest import running


# -- the servers -----------------------------------------------------------------------------
@dataclass
class Target:
    """A running gateway, one HTTP client for it, and a count of what was sent.

    ``allowed_5xx``: the 5xx statuses (with a JSON error) a campaign accepts, e.g. a 503 when
    every upstream is failing."""

    http: httpx.Client
    app: Any
    upstream: str  # the base URL of the fake OpenAI-compatible upstream
    llms: tuple[str, ...]  # the LLMs it started with
    decision_ids: list[str] = field(default_factory=list)
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, int]] = field(default_factory=Counter)
    allowed_5xx: frozenset[int] = frozenset()

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def send(self, req: Req) -> httpx.Response:
        self.sent += 1
        response = self.http.request(req.method, req.path, content=req.body, headers=req.headers())
        self.statuses[response.status_code] += 1
        self.outcomes[endpoint_of(req) or "other", response.status_code] += 1
        check(self, req, response)
        return response

    def answering(self) -> list[str]:
        """The LLMs of the pool that answer: a FakeBackend or the fake upstream."""
        backends = self.gateway.backends
        return [
            m
            for m in self.gateway.router.llms
            if isinstance(backends.get(m), FakeBackend)
            or getattr(backends.get(m), "base_url", None) == self.upstream
        ]

    def chat_ok(self) -> str:
        """A plain chat request is still answered; the response id."""
        body = {
            "model": "mixllm",
            "messages": [{"role": "user", "content": "still there?"}],
            "mixllm": {"candidates": self.answering()},
        }
        reply = self.send(Req("POST", "/v1/chat/completions", dumps(body), key="client"))
        assert reply.status_code == 200, reply.text
        return str(reply.json()["id"])

    def healthy(self) -> None:
        reply = self.send(Req("GET", "/healthz"))
        assert reply.status_code == 200 and reply.json()["status"] == "ok", reply.text

    def in_flight(self) -> dict[str, int]:
        """``GET /admin/llms``: each LLM's upstream requests in flight."""
        reply = self.send(Req("GET", "/admin/llms", key="admin"))
        assert reply.status_code == 200, reply.text
        return {m["name"]: m["in_flight"] for m in reply.json()["llms"]}

    def settled(self, timeout_s: float = 10.0) -> None:
        """Every LLM's in-flight count is back to 0 (in /admin/llms and /metrics), within
        ``timeout_s`` (a stream is counted until its end has been read)."""
        deadline = time.monotonic() + timeout_s
        while any(self.in_flight().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        counts = self.in_flight()
        assert not any(counts.values()), f"requests still in flight after {timeout_s} s: {counts}"
        metrics = self.send(Req("GET", "/metrics")).text
        gauges = re.findall(r'^mixllm_in_flight\{llm="([^"]*)"\} (\S+)$', metrics, re.M)
        assert all(float(v) == 0 for _, v in gauges), gauges


UPSTREAM_ERRORS: list[str] = []  # what the fake upstream received that was not plain JSON


def _upstream_events(deltas: list[str], usage: Any, placement: str) -> str:
    """A stream of ``deltas`` and a finish chunk; the usage (unless missing) in its own chunk
    (``"chunk"``), in the finish chunk (``"finish"``) or in every chunk (``"every"``)."""
    with_usage = {} if usage is MISSING else {"usage": usage}
    events: list[dict[str, Any]] = [
        {
            "choices": [{"index": 0, "delta": {"content": d}, "finish_reason": None}],
            **(with_usage if placement == "every" else {}),
        }
        for d in deltas
    ]
    events.append(
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            **(with_usage if placement in ("finish", "every") else {}),
        }
    )
    if placement == "chunk" and usage is not MISSING:
        events.append({"choices": [], "usage": usage})
    return "".join(f"data: {dumps(e).decode()}\n\n" for e in events) + "data: [DONE]\n\n"


async def _upstream_chat(request: Request) -> Response:
    """An OpenAI-compatible upstream that answers TEXT, and notes any body it is sent that is
    not strict JSON (the gateway passes extra fields on as they are)."""
    try:
        body = strict_json(await request.body())
        assert isinstance(body["messages"], list) and isinstance(body["model"], str)
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        UPSTREAM_ERRORS.append(f"{type(exc).__name__}: {exc}")
        return JSONResponse({"error": {"message": "bad request"}}, status_code=400)
    usage = {"prompt_tokens": 5, "completion_tokens": len(TEXT.split())}
    if not body.get("stream"):
        choice = {"message": {"content": TEXT}, "finish_reason": "stop"}
        return JSONResponse({"choices": [choice], "usage": usage})
    words = TEXT.split(" ")
    deltas = [w + " " for w in words[:-1]] + [words[-1]]
    return Response(_upstream_events(deltas, usage, "chunk"), media_type="text/event-stream")


@contextlib.contextmanager
def strict_upstream() -> Iterator[str]:
    """The fake OpenAI-compatible upstream of the campaigns; yields its base URL."""
    app = Starlette(routes=[Route("/v1/chat/completions", _upstream_chat, methods=["POST"])])
    with running(app) as base:
        yield base


@dataclass
class HostileUsage:
    """What the hostile-usage upstream reports next: ``usage`` (:data:`MISSING`: no usage
    field at all; may hold :class:`Raw` JSON text) and where a stream puts it."""

    usage: Any = None
    placement: str = "chunk"
    calls: int = 0


@contextlib.contextmanager
def hostile_usage_upstream(holder: HostileUsage) -> Iterator[str]:
    """An OpenAI-compatible upstream that answers TEXT with ``holder.usage`` as its usage,
    streamed or not, written as raw JSON text (NaN, 400-digit integers, deep nesting...)."""

    async def chat(request: Request) -> Response:
        holder.calls += 1
        body = json.loads(await request.body())
        words = TEXT.split(" ")
        if not body.get("stream"):
            answer: dict[str, Any] = {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": TEXT},
                        "finish_reason": "stop",
                    }
                ],
            }
            if holder.usage is not MISSING:
                answer["usage"] = holder.usage
            return Response(dumps(answer), media_type="application/json")
        deltas = [w + " " for w in words[:-1]] + [words[-1]]
        text = _upstream_events(deltas, holder.usage, holder.placement)
        return Response(text, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with running(app) as base:
        yield base


def serve(
    fitted_dir: Path,
    folder: Path,
    upstream: str,
    *,
    over_http: Sequence[int] | None = (1,),
    allowed_5xx: frozenset[int] = frozenset(),
) -> Iterator[Target]:
    """A gateway with client, admin and metered client keys; the LLMs at the positions
    ``over_http`` (``None``: all) are served by ``upstream`` over HTTP, the others by
    FakeBackends. A generator for a pytest fixture: it checks ``/healthz`` and the upstream's
    bodies after."""
    router = Router.load(fitted_dir)
    backends: dict[str, Any] = {m: FakeBackend(m, text=TEXT) for m in router.llms}
    for i in range(len(router.llms)) if over_http is None else over_http:
        llm = router.llms[i]
        backends[llm] = OpenAIBackend(llm, base_url=upstream, model="m", timeout_s=10)
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(folder / "gateway.db")
    config = Settings(keys=(CLIENT, ADMIN, BUDGETED), deadline_s=5.0)
    app = create_app(router, backends, store, config, state_dir=folder / "state")
    with running(app) as base, httpx.Client(base_url=base.removesuffix("/v1"), timeout=30) as http:
        target = Target(http, app, upstream, tuple(router.llms), allowed_5xx=allowed_5xx)
        target.decision_ids += [target.chat_ok() for _ in range(3)]  # to send feedback on
        yield target
        target.healthy()
        assert not UPSTREAM_ERRORS, UPSTREAM_ERRORS[:10]
