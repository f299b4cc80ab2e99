"""Hostile requests against a real gateway: their generators, the check of every answer, and
one campaign function per family (the tests are in ``test_hostile.py``).

Every endpoint gets requests built from the pydantic schemas of :mod:`mixllm.serve.schemas`
(``model_json_schema()``, read at run time): valid-looking bodies with one field set to a
wrong type or value or removed, random JSON of any shape, raw bytes, invalid UTF-8, truncated
JSON, NaN/Infinity literals, huge strings, deep nesting, unknown models and LLM names, bodies
over the size limit, wrong, missing and garbage ``Authorization`` headers, wrong content
types, wrong methods and unknown paths; then tools, content parts and roles of OpenAI's chat
schema, and an upstream that reports hostile ``usage``. Each answer must be a 2xx that is a
proper success (and only with the right key) or a 4xx with a JSON ``{"error": {"message",
"type", "code"}}``: never a 5xx (a 503 JSON only where a campaign allows it), never a dropped
connection. The server must still answer ``/healthz`` afterwards.

A campaign ``<family>_campaign(target, n)`` sends at least ``n`` generated requests (and
asserts that it did), checks what each must be, checks that the family reached both sides of
the gateway (successes and refusals, scaled to ``n``), and returns how many it sent.
:data:`FULL_BUDGET` holds each family's full ``n``; the default run uses a quarter
(:func:`default_budget`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mixllm import Router
from mixllm.serve import ApiKey, FakeBackend, OpenAIBackend, Settings, Store, create_app
from mixllm.serve.schemas import (
    AddLLMRequest,
    ChatRequest,
    DefaultsRequest,
    FeedbackRequest,
)

from .conftest import running

TEXT = "Routers route. Each answer comes from the LLM with the best quality for the money."
CLIENT = ApiKey("app", "sk-client-123")
ADMIN = ApiKey("ops", "sk-admin-456", admin=True)
#: A client key with a spending limit (the usage campaign): reservations and charges run.
BUDGETED = ApiKey("metered", "sk-metered-789", spend_limit_usd=1e6)
LIMIT = 1_000_000  # Settings.max_body_bytes
HYPOTHESIS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
#: Requests per campaign in the full run (each campaign asserts it sent at least this many).
#: The first seven are the 2,000 or more of the full run's total; the last four are the
#: families of OpenAI's chat schema and of hostile upstream usage, 100 or more each.
FULL_BUDGET = {
    "chat": 650,
    "feedback": 350,
    "read": 250,
    "routes": 300,
    "admin": 450,
    "special": 17,  # fixed requests: the same in the default run
    "regressions": 19,  # fixed requests: the same in the default run
    "tools": 200,
    "parts": 200,
    "roles": 200,
    "usage": 200,
}
DEFAULT_SHARE = 4  # the default run sends a quarter of each generated campaign


def default_budget(family: str) -> int:
    """The default run's ``n`` for ``family``: a quarter of the full one."""
    return max(FULL_BUDGET[family] // DEFAULT_SHARE, 1)


def more_than(n: int, full_count: int, family: str) -> float:
    """A coverage minimum measured at the full budget (``full_count`` of the family's full
    ``n``), scaled to a campaign of ``n`` requests."""
    return full_count * n / FULL_BUDGET[family]


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
        reply = self.send(Req("POST", "/v1/chat/completions", _dumps(body), key="client"))
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


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN and Infinity (not JSON: clients fail on them); nesting
    too deep for it to parse is an assertion error too."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise AssertionError(f"JSON nested too deeply to parse: {text[:200]!r}...") from None


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
    return "".join(f"data: {_dumps(e).decode()}\n\n" for e in events) + "data: [DONE]\n\n"


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
            return Response(_dumps(answer), media_type="application/json")
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


# -- requests and what their answers must be -------------------------------------------------
@dataclass(frozen=True)
class Req:
    """One request: ``key`` says whether ``auth`` holds the client or admin key (else "")."""

    method: str
    path: str
    body: bytes | None = None
    content_type: bytes | None = b"application/json"
    auth: bytes | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if self.auth is None and self.key:
            secret = {"client": CLIENT.secret, "admin": ADMIN.secret, "metered": BUDGETED.secret}
            object.__setattr__(self, "auth", f"Bearer {secret[self.key]}".encode())

    def headers(self) -> dict[str, bytes]:
        headers = {}
        if self.body is not None and self.content_type is not None:
            headers["content-type"] = self.content_type
        if self.auth is not None:  # HTTP strips the whitespace around a value
            headers["authorization"] = self.auth.strip(b" \t")
        return headers

    def __repr__(self) -> str:  # bodies can be a megabyte: show their start
        body = None if self.body is None else self.body[:300] + b"..." * (len(self.body) > 300)
        auth = None if self.auth is None else self.auth[:80]
        return (
            f"Req({self.method} {self.path[:200]!r}, body={body!r} ({len(self.body or b'')} "
            f"bytes), content_type={self.content_type!r}, auth={auth!r}, key={self.key!r})"
        )


ROUTES = {
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/completions"): "legacy",  # answered with a 404 naming what is served
    ("POST", "/v1/feedback"): "feedback",
    ("GET", "/v1/models"): "models",
    ("GET", "/healthz"): "healthz",
    ("GET", "/metrics"): "metrics",
    ("GET", "/admin/llms"): "admin_list",
    ("POST", "/admin/llms"): "admin_add",
    ("PATCH", "/admin/defaults"): "admin_defaults",
    ("POST", "/admin/checkpoint"): "admin_checkpoint",
    ("GET", "/openapi.json"): "docs",  # FastAPI's own, open like /healthz
    ("GET", "/docs"): "docs",
    ("GET", "/docs/oauth2-redirect"): "docs",
    ("GET", "/redoc"): "docs",
}
#: Routes with a name in their path, as the OpenAPI schema writes them, and how to read them.
TEMPLATES = {
    ("DELETE", "/admin/llms/{name}"): ("admin_remove", re.compile(r"/admin/llms/.+", re.S)),
    ("GET", "/admin/keys/{name}/spend"): (
        "admin_spend",
        re.compile(r"/admin/keys/[^/]+/spend", re.S),
    ),
    ("POST", "/admin/keys/{name}/spend/reset"): (
        "admin_spend_reset",
        re.compile(r"/admin/keys/[^/]+/spend/reset", re.S),
    ),
}
OPEN = {"healthz", "metrics", "docs"}


def endpoint_of(req: Req) -> str | None:
    """The endpoint a request reaches: its path as httpx sends it (``..`` segments resolved,
    odd characters escaped), without the query."""
    path = httpx.URL(f"http://host{req.path}").raw_path.decode("ascii").partition("?")[0]
    for (method, _), (name, pattern) in TEMPLATES.items():
        if req.method == method and pattern.fullmatch(path):
            return name
    return ROUTES.get((req.method, path))


def check(target: Target, req: Req, response: httpx.Response) -> None:
    """A proper success or a 4xx with a JSON error; never a 5xx (but those the target
    allows, with a JSON error)."""
    status = response.status_code
    assert status < 500 or status in target.allowed_5xx, (
        f"{req!r} -> {status}: {response.text[:2000]}"
    )
    if status >= 400:
        if req.method == "HEAD":
            return  # no body by definition
        assert response.headers.get("content-type", "").startswith("application/json"), (
            f"{req!r} -> {status} with {response.headers.get('content-type')}: "
            f"{response.text[:500]}"
        )
        error = response.json()["error"]
        assert set(error) == {"message", "type", "code"}, (req, error)
        assert isinstance(error["message"], str) and error["message"], (req, error)
        assert isinstance(error["type"], str) and error["code"] == status, (req, error)
        return
    if status in (307, 308):  # the redirect of a known path with or without a trailing slash
        location = httpx.URL(response.headers["location"]).path
        assert location.rstrip("/") == unquote(req.path.partition("?")[0]).rstrip("/"), location
        return
    assert 200 <= status < 300, f"{req!r} -> {status}: {response.text[:500]}"
    endpoint = endpoint_of(req)
    assert endpoint is not None or req.method == "HEAD", f"{req!r} -> {status}"
    if req.method == "HEAD":
        return
    if endpoint not in OPEN:
        assert req.key in ("client", "admin", "metered"), f"{req!r} succeeded without a key"
    if endpoint is not None and endpoint.startswith("admin"):
        assert req.key == "admin", f"{req!r} succeeded without an admin key"
    _SUCCESS[endpoint](target, req, response)


def _chat(target: Target, req: Req, response: httpx.Response) -> None:
    assert response.headers["x-mixllm-llm"] in target.gateway.router.llms
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [e for e in response.text.split("\n\n") if e]
        assert all(e.startswith("data: ") for e in events), response.text[:500]
        assert events[-1] == "data: [DONE]", response.text[-500:]
        chunks = [strict_json(e[6:]) for e in events[:-1]]
        assert not any("error" in c for c in chunks), (req, response.text[-1000:])
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == TEXT, (req, response.text[-1000:])
        return
    body = strict_json(response.text)
    assert body["id"] == f"chatcmpl-{response.headers['x-mixllm-decision-id']}"
    assert body["choices"][0]["message"]["content"] == TEXT
    assert body["mixllm"]["llm"] == response.headers["x-mixllm-llm"]


def _feedback(target: Target, req: Req, response: httpx.Response) -> None:
    assert response.json()["status"] in ("applied", "duplicate", "recorded")


def _models(target: Target, req: Req, response: httpx.Response) -> None:
    assert response.json()["data"][0]["id"] == "mixllm"


def _healthz(target: Target, req: Req, response: httpx.Response) -> None:
    assert response.json()["status"] == "ok"


def _metrics(target: Target, req: Req, response: httpx.Response) -> None:
    assert response.headers["content-type"].startswith("text/plain")
    assert "mixllm_" in response.text


def _admin(target: Target, req: Req, response: httpx.Response) -> None:
    assert isinstance(response.json(), dict)


def _docs(target: Target, req: Req, response: httpx.Response) -> None:
    assert response.text


def _never(target: Target, req: Req, response: httpx.Response) -> None:
    raise AssertionError(f"{req!r} -> {response.status_code}: this endpoint always refuses")


_SUCCESS = {
    "chat": _chat,
    "legacy": _never,
    "feedback": _feedback,
    "models": _models,
    "healthz": _healthz,
    "metrics": _metrics,
    **{e: _admin for e in ROUTES.values() if e.startswith("admin")},
    **{name: _admin for name, _ in TEMPLATES.values()},
    "docs": _docs,
}


# -- generated values ------------------------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as it is (deep nesting, NaN, huge numbers, bad escapes)."""

    text: str


MISSING = Raw("@@missing@@")  # a field left out (HostileUsage)
_RAW = re.compile(r'"@@raw(\d+)@@"')


def _dumps(value: Any) -> bytes:
    """JSON with NaN/Infinity literals, lone surrogates escaped, and :class:`Raw` inserted."""
    raws: list[str] = []

    def marker(obj: Any) -> str:
        assert isinstance(obj, Raw), obj
        raws.append(obj.text)
        return f"@@raw{len(raws) - 1}@@"

    text = json.dumps(value, default=marker)
    return _RAW.sub(lambda m: raws[int(m.group(1))], text).encode()


RAW_VALUES = [
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 5000, "-0", "0.0e-999",
    "[" * 20_000 + "]" * 20_000, '{"a":' * 5_000 + "1" + "}" * 5_000, '"\\ud800"',
    '"\\udfff\\ud800"', '"\\u0000"', "tru", "nul", "'single'", '"\\x41"', "01", "0x10", "[1,]",
    '{"a" 1}', "+1", ".5", '"unterminated', "[", "}", "", "\u00a0", '"\\uZZZZ"',
]  # fmt: skip
SPECIAL_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 0.5, -0.0, 1e-320, 1e308, -1e308, 2**63, -(2**63), 10**30,
    "", " ", "\x00", "\ud800", "\n\r", "mixllm", "chatcmpl-", "gpt-5", "../../etc/passwd",
    "${jndi:ldap://x}", "<script>", "' OR 1=1 --", "😀" * 50, "\u202e", [], {}, [[]], [None],
    {"": None}, {"role": "user"}, float("nan"), float("inf"), float("-inf"),
]  # fmt: skip
HOSTILE_STRINGS = [
    "", " ", "\x00", "\ud800", "\udfff\ud800", "\n\r\t", "mixllm", "gpt-5", "..", "%00", "\\",
    "😀" * 50, "\u202e\u2066", "\ufeff", "Ω≈ç√∫", "ﷺ" * 20, "\U0010ffff", "x" * 200, "x" * 201,
    "y" * 100_000, "word " * 50_000, "<|endoftext|>", "{{7*7}}", "\x1b[31m", "NaN",
]  # fmt: skip
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``st.one_of`` with each strategy ``weight`` times (``one_of(s, s)`` is ``one_of(s)``:
    Hypothesis drops the same strategy given twice, so each copy is a new ``map``)."""
    return st.one_of(
        [strategy.map(lambda v: v) for weight, strategy in options for _ in range(weight)]
    )


def pick(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """``st.sampled_from(values)`` whose repr does not hold the values (some are hundreds of
    kB: Hypothesis warns when it writes such a repr, and warnings are errors here)."""
    return st.integers(0, len(values) - 1).map(lambda i: values[i])


huge_strings = st.sampled_from([10_000, 100_000, 400_000]).map(lambda n: "x" * n)
hostile_values = st.one_of(
    json_values,
    pick(SPECIAL_VALUES),
    pick(RAW_VALUES).map(Raw),
    huge_strings,
)


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for the JSON schema ``schema`` (the subset pydantic writes for schemas.py)."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema.get("anyOf", schema.get("oneOf"))])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10**9)
        if "pattern" in schema:
            pattern = st.from_regex(schema["pattern"], fullmatch=True)
            return pattern.filter(lambda s: low <= len(s) <= high)
        odd = [s for s in HOSTILE_STRINGS if low <= len(s) <= high]
        return st.text(min_size=low, max_size=min(high, 40)) | pick(odd)
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if kind == "integer":
            return st.integers(low, high)
        return st.floats(
            low, high, allow_nan=False, allow_infinity=False,
            exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
        )  # fmt: skip
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", 3), max(low, 3))
        return st.lists(from_schema(schema.get("items", {}), defs), min_size=low, max_size=high)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs) for k, v in props.items() if k in required},
            optional={k: from_schema(v, defs) for k, v in props.items() if k not in required},
        )
    return json_values  # no type: anything


def valid_bodies(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    schema = model.model_json_schema()
    return from_schema(schema, schema.get("$defs", {}))


def repaired(model: type[BaseModel], minimal: dict[str, Any]) -> Any:
    """A map: a generated body that ``model`` accepts, with as many of its fields as it can
    keep. The schema says nothing of the model's validators (e.g. that a ``tool`` message
    needs ``tool_call_id``): each field they refuse is left out, or set to its value in
    ``minimal`` if required; a body refused as a whole becomes ``minimal`` with what was
    accepted before."""

    def repair(body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        for _ in range(len(body) + 1):
            try:
                model.model_validate(body)
            except ValidationError as exc:
                fields = {e["loc"][0] for e in exc.errors() if e["loc"]}
                if not fields:
                    return dict(minimal)
                for name in fields:
                    if name in minimal:
                        body[name] = copy.deepcopy(minimal[name])
                    else:
                        body.pop(name, None)
            else:
                return body
        return dict(minimal)

    return repair


def schema_values(model: type[BaseModel], *path: str) -> st.SearchStrategy[Any] | None:
    """Values valid for the property at ``path`` of ``model``'s schema (``None`` if the schema
    has no such property: then only the hand-written values of a family are sent)."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    node: Any = schema
    for name in path:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = node.get("properties", {}).get(name)
        if node is None:
            return None
    return from_schema(node, defs)


def field_paths(model: type[BaseModel]) -> list[tuple[Any, ...]]:
    """Every field of ``model``'s schema as a path (nested models and list items included),
    plus an unknown field at each level."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def walk(s: dict[str, Any], prefix: tuple[Any, ...], depth: int) -> list[tuple[Any, ...]]:
        if "$ref" in s:
            s = defs[s["$ref"].rsplit("/", 1)[-1]]
        paths: list[tuple[Any, ...]] = []
        for sub in (*s.get("anyOf", ()), *s.get("oneOf", ())):
            paths += walk(sub, prefix, depth)
        if s.get("type") == "array" and depth < 3:
            paths += [(*prefix, 0), *walk(s.get("items", {}), (*prefix, 0), depth + 1)]
        if "properties" in s and depth < 3:
            paths.append((*prefix, "zz_unknown"))
            for name, sub in s["properties"].items():
                paths += [(*prefix, name), *walk(sub, (*prefix, name), depth + 1)]
        return paths

    return sorted(set(walk(schema, (), 0)), key=repr)


_DELETE = object()


def mutated(
    bases: st.SearchStrategy[dict[str, Any]], paths: Sequence[tuple[Any, ...]]
) -> st.SearchStrategy[Any]:
    """A valid-looking body with the value at one path replaced by a hostile one, or removed."""
    values = st.one_of(hostile_values, st.just(_DELETE))
    return st.tuples(bases, st.sampled_from(list(paths)), values).map(lambda t: _set(*t))


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    body = copy.deepcopy(body)
    node: Any = body
    for step, nxt in pairwise(path):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(node, list):
            while len(node) <= step:
                node.append(copy.deepcopy(empty))
            if not isinstance(node[step], (list, dict)):
                node[step] = empty
        elif not isinstance(node.get(step), (list, dict)):
            node[step] = empty
        node = node[step]
    last = path[-1]
    if isinstance(node, list):
        while len(node) <= last:
            node.append(None)
    if value is _DELETE:
        if isinstance(node, dict):
            node.pop(last, None)
        else:
            del node[last]
    else:
        node[last] = value
    return body


def raw_bodies(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes that are not a valid request body: random, invalid UTF-8, truncated JSON, JSON
    values of any shape, literals."""
    truncated = st.tuples(valid.map(_dumps), st.floats(0, 1)).map(
        lambda t: t[0][: int(len(t[0]) * t[1])]
    )
    bad_utf8 = st.tuples(valid.map(_dumps), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
    return st.one_of(
        st.binary(max_size=200),
        truncated,
        bad_utf8.map(lambda t: t[0].replace(b'"', b'"' + t[1], 1)),
        hostile_values.map(_dumps),
        pick([r.encode() for r in RAW_VALUES]),
        st.just(b""),
    )


CONTENT_TYPES = [
    b"application/json", b"application/json", b"application/json", None, b"text/plain",
    b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
    b"application/json; charset=latin-1", b"application/vnd.api+json", b"application/xml",
    b"application/json; charset=\xff", b"", b"*/*", b"application/", b"json",
]  # fmt: skip
_HEADER_BYTES = st.binary(max_size=120).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c != 127).strip(b" \t")
)


def auths(
    good: Sequence[str], *, keyed: bool = False
) -> st.SearchStrategy[tuple[str, bytes | None]]:
    """(which key, ``Authorization`` value): the ``good`` keys, often, or a bad header."""
    secrets = {"client": CLIENT.secret, "admin": ADMIN.secret}
    valid = [(k, f"{scheme} {s}".encode()) for k, s in secrets.items()
             for scheme in ("Bearer", "bearer", "BEARER")]  # fmt: skip
    bad: list[tuple[str, bytes | None]] = [
        ("", None), ("", b""), ("", b"Bearer"), ("", b"Bearer ,"), ("", b"Bearer sk-wrong"),
        ("", b"Bearer sk-client-12"), ("", b"Bearer sk-client-1234"), ("", b"sk-client-123"),
        ("", b"Basic c2stY2xpZW50LTEyMzo="), ("", b"Token sk-admin-456"),
        ("", "Bearer sk-clïent-123".encode()), ("", "Bearer sk-clïent-123".encode("latin-1")),
        ("", "Bearer 🔑🔑".encode()), ("", b"Bearer \xff\xfe\xfd"), ("", b"Bearer " + b"x" * 8000),
        ("", b"Bearer sk-client-123" + b"0" * 4000), ("", b"Bearer sk-admin-456 sk-admin-456"),
        ("", b"Bearer\tsk-admin-456"),
    ]  # fmt: skip
    good_keys = st.sampled_from([v for v in valid if v[0] in good])
    if keyed:
        return good_keys
    return st.one_of(
        good_keys,
        good_keys,
        st.sampled_from(bad),
        _HEADER_BYTES.map(lambda b: ("", b)),
        _HEADER_BYTES.map(lambda b: ("", b"Bearer " + b)),
    )


@st.composite
def requests(
    draw: st.DrawFn,
    method: str,
    path: str,
    bodies: st.SearchStrategy[bytes | None],
    good: Sequence[str] = ("client", "admin"),
    *,
    keyed: bool = False,
) -> Req:
    """A request with a generated ``Authorization`` (always one of the ``good`` keys if
    ``keyed``) and, one time in ten, another content type."""
    key, auth = draw(auths(good, keyed=keyed))
    body = draw(bodies)
    content_type = b"application/json"
    if draw(st.integers(0, 9)) == 0:  # one in ten: another content type, or none
        content_type = draw(st.sampled_from(CONTENT_TYPES))
    return Req(method, path, body, content_type, auth=auth, key=key)


def body_bytes(
    valid: st.SearchStrategy[dict[str, Any]], paths: Sequence[tuple[Any, ...]]
) -> st.SearchStrategy[bytes | None]:
    """Valid bodies, mutated ones and raw bytes."""
    return st.one_of(
        valid.map(_dumps),
        valid.map(_dumps),
        mutated(valid, paths).map(_dumps),
        mutated(valid, paths).map(_dumps),
        raw_bodies(valid),
    )


def _run(n: int, strategy: st.SearchStrategy[Any], send: Any) -> None:
    """``send(example)`` for ``n`` examples of ``strategy`` (more if some are rejected)."""

    @settings(HYPOTHESIS, max_examples=n)
    @given(example=strategy)
    def run(example: Any) -> None:
        send(example)

    run()


# -- chat ------------------------------------------------------------------------------------
def chat_bodies(llms: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid chat bodies from the schema, with known models and candidates (mostly)."""
    models = st.sampled_from(["mixllm", "mixllm", *llms, "nope", "gpt-5", "MIXLLM"])
    candidates = st.lists(st.sampled_from(llms), min_size=1, max_size=4, unique=True)
    unknown = st.lists(st.sampled_from([*llms, "nope/llm", ""]), min_size=1, max_size=3)

    def fix(t: tuple[dict[str, Any], str, list[str], list[str], int]) -> dict[str, Any]:
        body, model, good, bad, which = t
        body["model"] = model
        if isinstance(body.get("mixllm"), dict) and "candidates" in body["mixllm"]:
            body["mixllm"]["candidates"] = bad if which == 0 else good
        return body

    generated = valid_bodies(ChatRequest)
    minimal = {"model": "mixllm", "messages": [{"role": "user", "content": "hi"}]}
    accepted = generated.map(repaired(ChatRequest, minimal))
    bodies = weighted((2, accepted), (1, generated))  # and some refused by its validators
    return st.tuples(bodies, models, candidates, unknown, st.integers(0, 5)).map(fix)


def chat_campaign(target: Target, n: int) -> int:
    before = target.sent
    valid = chat_bodies(target.llms)
    paths = field_paths(ChatRequest)
    deep = valid.map(_dumps) | mutated(valid, paths).map(_dumps)  # past auth to the router
    reqs = requests("POST", "/v1/chat/completions", body_bytes(valid, paths)) | requests(
        "POST", "/v1/chat/completions", deep, keyed=True
    )
    _run(n, reqs, target.send)
    target.chat_ok()
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    seen = target.outcomes
    assert seen["chat", 200] > more_than(n, 100, "chat"), seen
    assert seen["chat", 400] > more_than(n, 200, "chat"), seen
    assert seen["chat", 404] > more_than(n, 10, "chat"), seen
    return sent


# -- feedback --------------------------------------------------------------------------------
def feedback_campaign(target: Target, n: int) -> int:
    before = target.sent
    fresh = "@@fresh@@"  # replaced by the id of a new response: feedback that is learned
    ids = st.sampled_from(
        [
            fresh,
            fresh,
            *target.decision_ids,
            *(i.removeprefix("chatcmpl-") for i in target.decision_ids),
        ]
    )
    unknown_ids = st.text(min_size=1, max_size=60) | st.just("chatcmpl-nope")

    def fix(t: tuple[dict[str, Any], str, bool]) -> dict[str, Any]:
        body, id_, reward = t
        if all(body.get(k) is None for k in ("reward", "quality", "cost_usd")):
            body["reward"] = reward  # something to learn, mostly
        return {**body, "id": id_}

    valid = st.tuples(valid_bodies(FeedbackRequest), ids | ids | unknown_ids, st.booleans())
    valid = valid.map(fix)
    paths = field_paths(FeedbackRequest)
    deep = valid.map(_dumps) | mutated(valid, paths).map(_dumps)
    reqs = requests("POST", "/v1/feedback", body_bytes(valid, paths)) | requests(
        "POST", "/v1/feedback", deep, keyed=True
    )

    def send(req: Req) -> None:
        if req.body is not None and fresh.encode() in req.body:
            req = replace(req, body=req.body.replace(fresh.encode(), target.chat_ok().encode()))
        reply = target.send(req)
        if reply.status_code == 200 and reply.json()["status"] == "applied":
            target.chat_ok()  # what was learned leaves routing working

    applied_before = target.outcomes["feedback", 200]
    _run(n, reqs, send)
    target.chat_ok()  # what was learned from hostile feedback leaves routing working
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    answered = target.outcomes["feedback", 200] - applied_before
    assert answered > more_than(n, 20, "feedback"), target.outcomes
    return sent


# -- read-only endpoints ---------------------------------------------------------------------
QUERIES = ["", "?", "?a=1", "?a=%ff%fe", "?" + "x" * 4000, "?%00=%00", "?a=1&a=2&b", "?é=ü"]


def attacked_operations() -> set[tuple[str, str]]:
    """The operations of the OpenAPI schema that the campaigns attack."""
    return {k for k, v in ROUTES.items() if v != "docs"} | set(TEMPLATES)


def read_campaign(target: Target, n: int) -> int:
    before = target.sent
    paths = st.tuples(
        st.sampled_from(["/v1/models", "/healthz", "/metrics"]), st.sampled_from(QUERIES)
    ).map("".join)
    bodies = st.none() | raw_bodies(json_values)

    @st.composite
    def reqs(draw: st.DrawFn) -> Req:
        return draw(requests("GET", draw(paths), bodies))

    _run(n, reqs(), target.send)
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    return sent


# -- wrong methods, unknown paths ------------------------------------------------------------
KNOWN_PATHS = [
    "/v1/chat/completions", "/v1/feedback", "/v1/models", "/healthz", "/metrics", "/admin/llms",
    "/admin/llms/x", "/admin/defaults", "/admin/checkpoint", "/v1/completions",
    "/admin/keys/app/spend", "/admin/keys/app/spend/reset",
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO", "get"]
ODD_PATHS = [
    "/", "/v1", "/v1/", "/v1/chat", "/v1/chat/completions/", "/v1/models/", "/V1/MODELS",
    "/v1/embeddings", "/docs", "/openapi.json", "/redoc", "/admin", "/admin/", "/admin/llms/",
    "/admin/defaults/x", "/%2e%2e/%2e%2e/etc/passwd", "/v1/%00", "/v1/models%2F",
    "/" + "a" * 6000, "//v1//models", "/v1/chat/completions%20", "/healthz/../metrics",
    "/metrics.json", "/\u00e9t\u00e9", "/v1/feedback?id=1", "/admin/keys", "/admin/keys/app",
    "/admin/keys//spend",
]  # fmt: skip
_SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_characters="?#/", exclude_categories=["Cs"]),
    min_size=1,
    max_size=30,
)


def routes_campaign(target: Target, n: int) -> int:
    before = target.sent
    other_404, other_405 = target.outcomes["other", 404], target.outcomes["other", 405]
    generated = st.lists(_SEGMENT.map(lambda s: quote(s, safe="")), min_size=1, max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    )
    prefixed = st.tuples(st.sampled_from(["/v1/", "/admin/", "/v1/chat/"]), generated).map(
        lambda t: t[0] + t[1].lstrip("/")
    )
    known = st.sampled_from(KNOWN_PATHS)
    paths = weighted((2, known), (1, st.sampled_from(ODD_PATHS)), (1, generated), (1, prefixed))
    bodies = st.none() | raw_bodies(json_values)

    @st.composite
    def reqs(draw: st.DrawFn) -> Req:
        method, path = draw(st.sampled_from(METHODS)), draw(paths)
        served = endpoint_of(Req(method.upper(), path)) is not None
        if served or path == "/admin/llms/x":  # a wrong method for a known path
            method = draw(st.sampled_from(["PUT", "OPTIONS", "TRACE", "FOO"]))
        return draw(requests(method, path, bodies))

    _run(n, reqs(), target.send)
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    not_found = target.outcomes["other", 404] - other_404
    not_allowed = target.outcomes["other", 405] - other_405
    assert not_found > more_than(n, 50, "routes"), target.outcomes
    assert not_allowed > more_than(n, 50, "routes"), target.outcomes
    return sent


# -- admin -----------------------------------------------------------------------------------
def admin_campaign(target: Target, n: int) -> int:
    before = target.sent
    seen_before, statuses_before = Counter(target.outcomes), Counter(target.statuses)
    llms = list(target.llms)
    upstream = {"base_url": target.upstream, "model": "m", "timeout_s": 5.0}

    def fix_add(t: tuple[dict[str, Any], int]) -> dict[str, Any]:
        body, which = t
        if which or isinstance(body.get("upstream"), dict):  # the fake upstream: it answers
            body["upstream"] = {**(body.get("upstream") or {}), **upstream}
            body["upstream"].pop("api_key_env", None)  # (unset: a 400)
        return body

    valid_add = st.tuples(valid_bodies(AddLLMRequest), st.integers(0, 5)).map(fix_add)
    valid_defaults = valid_bodies(DefaultsRequest)
    names = pick([*llms, "nope", "", " ", "..", "%", "a/b/c", "\u00e9", "x" * 3000]) | _SEGMENT
    removes = names.map(lambda n: f"/admin/llms/{quote(n, safe='/')}")
    key_names = st.sampled_from([CLIENT.name, ADMIN.name, BUDGETED.name, "nope", "x" * 300])
    spends = (key_names | _SEGMENT).map(lambda n: f"/admin/keys/{quote(n, safe='')}/spend")
    raw = st.none() | raw_bodies(json_values)

    def admin(method: str, path: str, valid: st.SearchStrategy[Any] | None) -> Any:
        """Requests with any key and body, and with the admin key and a valid-looking body."""
        if valid is None:
            return requests(method, path, raw, ("admin",)) | requests(
                method, path, st.none(), ("admin",), keyed=True
            )
        paths = field_paths({"POST": AddLLMRequest, "PATCH": DefaultsRequest}[method])
        deep = valid.map(_dumps) | mutated(valid, paths).map(_dumps)
        return requests(method, path, body_bytes(valid, paths), ("admin",)) | requests(
            method, path, deep, ("admin",), keyed=True
        )

    reqs = st.one_of(
        admin("GET", "/admin/llms", None),
        admin("POST", "/admin/llms", valid_add),
        admin("POST", "/admin/llms", valid_add),
        removes.flatmap(lambda p: admin("DELETE", p, None)),
        admin("PATCH", "/admin/defaults", valid_defaults),
        admin("PATCH", "/admin/defaults", valid_defaults),
        admin("POST", "/admin/checkpoint", None),
        spends.flatmap(lambda p: admin("GET", p, None)),
        spends.flatmap(lambda p: admin("POST", p + "/reset", None)),
        st.sampled_from(["GET", "POST"]).flatmap(  # a client key is refused: 403
            lambda m: requests(
                m,
                "/admin/llms" if m == "GET" else "/admin/checkpoint",
                raw,
                ("client",),
                keyed=True,
            )
        ),
    )

    def send(req: Req) -> None:
        if endpoint_of(req) == "admin_remove":  # it would leak the backend's connections
            name = unquote(req.path.removeprefix("/admin/llms/"))
            assume(not isinstance(target.gateway.backends.get(name), OpenAIBackend))
        reply = target.send(req)
        if reply.is_success and req.method != "GET":
            target.chat_ok()  # the router still routes after what the admin changed

    _run(n, reqs, send)
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    seen = target.outcomes - seen_before
    statuses = target.statuses - statuses_before
    assert seen["admin_add", 201] > more_than(n, 0, "admin"), seen
    assert seen["admin_defaults", 200] > more_than(n, 10, "admin"), seen
    assert statuses[403] > more_than(n, 3, "admin"), statuses
    assert statuses[401] > more_than(n, 50, "admin"), statuses
    return sent


# -- huge and deeply nested bodies -----------------------------------------------------------
def huge_and_deep_bodies(target: Target) -> int:
    before = target.sent
    ask = {"model": "mixllm", "messages": [{"role": "user", "content": "hi"}]}
    big = _dumps({**ask, "pad": "x" * (LIMIT + 10)})
    for path in ("/v1/chat/completions", "/v1/feedback"):
        for key in ("client", ""):
            reply = target.send(Req("POST", path, big, key=key))
            assert reply.status_code == 413, reply.text
    for method, path in [("POST", "/admin/llms"), ("PATCH", "/admin/defaults")]:
        assert target.send(Req(method, path, big, key="admin")).status_code == 413
    # the same without a declared length (chunked): caught while it streams in
    for path in ("/v1/chat/completions", "/v1/feedback"):
        req = Req("POST", path, big, key="client")
        target.sent += 1
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        reply = target.http.post(path, content=chunks, headers=req.headers())
        check(target, req, reply)
        assert reply.status_code == 413, reply.text
    # just under the limit: a huge prompt is answered
    long_prompt = {**ask, "messages": [{"role": "user", "content": "word " * 190_000}]}
    reply = target.send(Req("POST", "/v1/chat/completions", _dumps(long_prompt), key="client"))
    assert reply.status_code == 200, reply.text
    many = {**ask, "messages": [{"role": "user", "content": "hi"}] * 10_001}
    reply = target.send(Req("POST", "/v1/chat/completions", _dumps(many), key="client"))
    assert reply.status_code == 400, reply.text
    for depth in (1_000, 100_000, 450_000):
        deep = _dumps(
            {**ask, "messages": [{"role": "user", "content": Raw("[" * depth + "]" * depth)}]}
        )
        reply = target.send(Req("POST", "/v1/chat/completions", deep, key="client"))
        assert reply.status_code == 400, reply.text
        nested = ("[" * depth + "]" * depth).encode()
        assert target.send(Req("POST", "/v1/feedback", nested, key="client")).status_code == 400
    target.healthy()
    sent = target.sent - before
    assert sent >= FULL_BUDGET["special"], sent
    return sent


def past_regressions(target: Target) -> int:
    """Each request that once gave a 5xx, dropped the connection, or broke every later one."""
    before = target.sent
    over_http = target.llms[1]  # served by the fake upstream: extra fields are sent on to it
    ask = {"model": over_http, "messages": [{"role": "user", "content": "hi"}]}
    bad_chats = [
        {**ask, "messages": [{"role": "user", "content": "\ud800"}]},  # UnicodeEncodeError
        {**ask, "messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
        {**ask, "\udc80": 1},
        {**ask, "top_k": float("nan")},  # not JSON: the upstream call failed to encode it
        {**ask, "messages": [{"role": "user", "content": "hi", "name": float("inf")}]},
        {**ask, "metadata": Raw("[" * 960 + "]" * 960)},  # parsed, but too deep to encode again
    ]
    for body in bad_chats:
        reply = target.send(Req("POST", "/v1/chat/completions", _dumps(body), key="client"))
        assert reply.status_code == 400, reply.text
    learned = {"id": target.chat_ok(), "quality": 1.0}
    for cost in (1e308, 1e13):  # learned, 1e308 made every later score -inf: 500 for all
        reply = target.send(
            Req("POST", "/v1/feedback", _dumps({**learned, "cost_usd": cost}), key="client")
        )
        assert reply.status_code == 400, reply.text
    reply = target.send(Req("POST", "/v1/feedback", _dumps({"id": "x", "\ud800": 1}), key="client"))
    assert reply.status_code == 400 and "Unicode" in reply.json()["error"]["message"], reply.text
    upstream = {"base_url": target.upstream, "model": "m"}
    bad_llms = [
        {"name": "rich", "price_in_per_mtok": 1e308, "price_out_per_mtok": 1e308},  # inf costs
        {"name": "snow\u2603man", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0},  # header
        {"name": "new\nline", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0},  # header
        *(  # httpx fails on these outside its transport errors
            {"name": "odd", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0,
             "upstream": {**upstream, "base_url": url}}
            for url in ("http://xn--a", "http://[::1", "http://99843:99843", "http://\u00ad")
        ),
    ]  # fmt: skip
    for body in bad_llms:
        body.setdefault("upstream", upstream)
        reply = target.send(Req("POST", "/admin/llms", _dumps(body), key="admin"))
        assert reply.status_code == 400, reply.text
    target.chat_ok()
    target.healthy()
    sent = target.sent - before
    assert sent >= FULL_BUDGET["regressions"], sent
    return sent


# -- OpenAI's chat schema: tools, content parts, roles ---------------------------------------
def _plain_chat(target: Target) -> st.SearchStrategy[dict[str, Any]]:
    """A minimal chat body for an answering LLM (by name, or ``mixllm`` with candidates),
    streamed or not."""
    llms = target.answering()
    by_name = st.sampled_from(llms).map(lambda m: {"model": m})
    routed = st.lists(st.sampled_from(llms), min_size=1, max_size=3, unique=True).map(
        lambda c: {"model": "mixllm", "mixllm": {"candidates": c}}
    )
    return st.tuples(by_name | routed, st.booleans()).map(
        lambda t: {**t[0], "messages": [{"role": "user", "content": "hi"}], "stream": t[1]}
    )


def _chat_requests(bodies: st.SearchStrategy[Any]) -> st.SearchStrategy[Req]:
    """Chat requests with a client key (so that they reach the schema and the router)."""
    return bodies.map(lambda b: Req("POST", "/v1/chat/completions", _dumps(b), key="client"))


def _schema_campaign(
    target: Target, n: int, family: str, bodies: st.SearchStrategy[dict[str, Any]]
) -> int:
    """Send ``n`` chat requests of ``bodies``; both answers and refusals must come back."""
    before = target.sent
    seen_before = Counter(target.outcomes)
    _run(n, _chat_requests(bodies), target.send)
    target.chat_ok()
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    seen = target.outcomes - seen_before
    answered = sum(c for (e, status), c in seen.items() if e == "chat" and status < 300)
    refused = sum(c for (e, status), c in seen.items() if e == "chat" and status >= 400)
    assert answered > n / 10 and refused > n / 10, (family, seen)
    return sent


def _with(
    base: st.SearchStrategy[dict[str, Any]], fields: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(base, fields).map(lambda t: {**t[0], **t[1]})


NAMES = [
    "get_weather", "a", "x" * 64, "x" * 129, "", " ", "has space", "dots.and:colons-ok",
    "naïve", "\u202e", "\x00", "get_weather", "1", "😀", "__proto__",
]  # fmt: skip
JSON_SCHEMAS: list[Any] = [
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    {}, {"type": "object"}, {"type": "string"}, {"$ref": "#/definitions/nope"},
    {"type": "object", "properties": {"a": {"$ref": "#"}}}, {"anyOf": [{"type": "null"}] * 50},
    {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(300)}},
    None, "object", [], 5, True, Raw("[" * 90 + "]" * 90), Raw("NaN"), Raw("[" * 200 + "]" * 200),
]  # fmt: skip


def _function(name: Any, parameters: Any = MISSING, **more: Any) -> dict[str, Any]:
    out = {"name": name, **more}
    if parameters is not MISSING:
        out["parameters"] = parameters
    return out


def tool_fields() -> st.SearchStrategy[dict[str, Any]]:
    """``tools``, ``tool_choice``, ``functions``, ``function_call`` and
    ``parallel_tool_calls``: valid by the schema (where it has them), valid-looking by hand,
    and malformed."""
    names = st.sampled_from(NAMES)
    params = pick(JSON_SCHEMAS)
    function = st.builds(
        _function, names, params,
        description=pick(["", "Weather by city.", "d" * 5000, None, 5]),
        strict=st.sampled_from([True, False, None, "yes", 1]),
    )  # fmt: skip
    tool = st.one_of(
        function.map(lambda f: {"type": "function", "function": f}),
        function.map(lambda f: {"type": "function", "function": f}),
        st.just({"type": "function"}),  # no function object
        st.just({"type": "custom", "custom": {"name": "grammar", "format": {"type": "text"}}}),
        st.just({"type": "custom"}),
        function.map(lambda f: {"type": "retrieval", "function": f}),
        function.map(lambda f: {"function": f}),  # no type
        function.map(lambda f: {"type": "function", "function": f, "extra": 1}),
        st.just({"type": "function", "function": "get_weather"}),
        hostile_values,
    )
    tools = st.one_of(
        st.lists(tool, min_size=1, max_size=4),
        st.lists(tool, max_size=0),
        st.sampled_from([None, "get_weather", {"type": "function"}, 5, True, Raw("NaN")]),
        st.integers(500, 600).map(
            lambda k: [
                {"type": "function", "function": {"name": f"f{i}", "parameters": {}}}
                for i in range(k)
            ]
        ),
        hostile_values,
    )
    choice = st.one_of(
        st.sampled_from(["none", "auto", "required", "any", "", None, "AUTO", 1, [], {}]),
        names.map(lambda n: {"type": "function", "function": {"name": n}}),
        st.just({"type": "function"}),
        st.just({"type": "function", "function": {"name": 123}}),
        st.just({"type": "custom", "custom": {"name": "grammar"}}),
        st.just({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
        st.just({"type": "tool", "name": "get_weather"}),
        hostile_values,
    )
    functions = st.one_of(
        st.lists(function, min_size=1, max_size=3), st.lists(function, max_size=0), hostile_values
    )
    function_call = st.one_of(
        st.sampled_from(["none", "auto", "required", "", None, 0]),
        names.map(lambda n: {"name": n}),
        st.just({"name": "get_weather", "arguments": "{}"}),
        st.just({"nom": "get_weather"}),
        hostile_values,
    )
    parallel = st.sampled_from([True, False, None, "true", 1, 0, [], {}, Raw("NaN")])
    by_hand = {
        "tools": tools,
        "tool_choice": choice,
        "functions": functions,
        "function_call": function_call,
        "parallel_tool_calls": parallel,
    }
    by_schema = {k: s for k in by_hand if (s := schema_values(ChatRequest, k)) is not None}

    @st.composite
    def fields(draw: st.DrawFn) -> dict[str, Any]:
        """One to three of the fields, each by hand (mostly) or by the schema."""
        names = draw(st.lists(st.sampled_from(sorted(by_hand)), min_size=1, max_size=3))
        out = {}
        for name in names:
            from_schema = name in by_schema and draw(st.integers(0, 3)) == 0
            out[name] = draw(by_schema[name] if from_schema else by_hand[name])
        return out

    return fields()


def tools_campaign(target: Target, n: int) -> int:
    return _schema_campaign(target, n, "tools", _with(_plain_chat(target), tool_fields()))


URLS = [
    "https://example.com/cat.png", "http://127.0.0.1:1/x.png", "data:image/png;base64,iVBORw0K",
    "data:image/png;base64,!!!not-base64!!!", "data:,", "data:text/html,<script>1</script>",
    "javascript:alert(1)", "file:///etc/passwd", "ftp://x/y.png", "", " ", "not a url",
    "https://" + "a" * 5000 + ".com/x.png", "https://ex\u00e4mple.com/\u00e9.png",
    "https://example.com/\x00.png", "data:image/png;base64," + "A" * 300_000,
    "//example.com/x.png", "https://[::1/x.png",
]  # fmt: skip
AUDIO = [
    "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=", "", "!!!", "====",
    "not base64 at all", "A", "\x00\xff", "QUJD" * 50_000,
]  # fmt: skip


def content_parts() -> st.SearchStrategy[list[Any]]:
    """Lists of content parts: text, image_url (odd URLs and detail values), input_audio (bad
    base64 and formats), file, refusal, unknown types, parts of wrong types, huge lists."""
    text = pick(["hi", "", "x" * 10_000, "\u202e", None, 5, ["hi"]]).map(
        lambda t: {"type": "text", "text": t}
    )
    detail = st.sampled_from(["auto", "low", "high", "ultra", "", None, 5, MISSING])
    image = st.tuples(pick([*URLS, None, 5, {}]), detail).map(
        lambda t: {
            "type": "image_url",
            "image_url": {"url": t[0], **({} if t[1] is MISSING else {"detail": t[1]})},
        }
    )
    odd_image = st.sampled_from(
        [
            {"type": "image_url", "image_url": "https://example.com/cat.png"},  # a bare string
            {"type": "image_url"},
            {"type": "image_url", "image_url": {}},
            {"type": "image_url", "image_url": {"url": "https://e.com/x.png", "extra": 1}},
            {"type": "image", "image_url": {"url": "https://e.com/x.png"}},
        ]
    )
    fmt = st.sampled_from(["wav", "mp3", "ogg", "WAV", "", None, 5, MISSING])
    audio = st.tuples(pick([*AUDIO, None, 5]), fmt).map(
        lambda t: {
            "type": "input_audio",
            "input_audio": {"data": t[0], **({} if t[1] is MISSING else {"format": t[1]})},
        }
    )
    file = st.sampled_from(
        [
            {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
            {"file_id": "file-abc123"},
            {"file_id": ""},
            {},
            {"filename": "../../etc/passwd"},
            {"file_data": "!!!", "file_id": "f", "filename": "x" * 2000},
            {"file_data": None},
            {"unknown": 1},
        ]
    ).map(lambda f: {"type": "file", "file": f})
    refusal = st.sampled_from(["I can't help.", "", None, 5]).map(
        lambda r: {"type": "refusal", "refusal": r}
    )
    unknown = st.sampled_from(
        [
            {"type": "video", "video": {"url": "https://e.com/v.mp4"}},
            {"type": ""},
            {"type": None, "text": "hi"},
            {"type": "TEXT", "text": "hi"},
            {"type": "text"},
            {"text": "no type"},
            {"type": ["text"], "text": "hi"},
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
        ]
    )
    wrong = st.sampled_from(["hi", 5, None, True, [], [{"type": "text", "text": "hi"}], 1.5])
    part = weighted(
        (2, text), (1, image), (1, odd_image), (1, audio), (1, file), (1, refusal), (1, unknown),
        (1, wrong),
    )  # fmt: skip
    parts = st.lists(part, min_size=1, max_size=5)
    huge = st.sampled_from([1_000, 9_999, 10_000, 10_001, 20_000]).flatmap(
        lambda k: pick(
            [
                [{"type": "text", "text": "hi"}] * k,
                [{"type": "image_url", "image_url": {"url": "https://e.com/x.png"}}] * k,
            ]
        )
    )
    by_schema = schema_values(ChatRequest, "messages")  # valid messages, parts and all
    valid_parts = [] if by_schema is None else [(1, by_schema.map(_first_parts))]
    return weighted((3, parts), (1, st.lists(part, max_size=0)), (1, huge), *valid_parts)


def _first_parts(messages: list[dict[str, Any]]) -> list[Any]:
    """The first list of content parts among ``messages`` (a text part if none)."""
    parts = (m["content"] for m in messages if isinstance(m.get("content"), list))
    return next(parts, [{"type": "text", "text": "hi"}])


def parts_campaign(target: Target, n: int) -> int:
    def put(t: tuple[dict[str, Any], list[Any], str, bool]) -> dict[str, Any]:
        body, parts, role, text_too = t
        message: dict[str, Any] = {"role": role, "content": parts}
        messages = [message] if role == "user" else [message, {"role": "user", "content": "hi"}]
        if text_too:
            messages.append({"role": "user", "content": [{"type": "text", "text": "and?"}]})
        return {**body, "messages": messages}

    roles = st.sampled_from(["user", "user", "user", "system", "developer", "assistant"])
    bodies = st.tuples(_plain_chat(target), content_parts(), roles, st.booleans()).map(put)
    return _schema_campaign(target, n, "parts", bodies)


ROLES = ["system", "developer", "user", "assistant", "tool", "function"]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def messages_of_every_role() -> st.SearchStrategy[list[Any]]:
    """Conversations with every role: tool with and without ``tool_call_id``, function with
    and without ``name``, assistant with ``tool_calls`` and null content, unknown roles,
    messages without a role, fields of one role on another."""
    content = st.sampled_from(["hi", "", None, [{"type": "text", "text": "hi"}], 5, {}])
    known = st.tuples(st.sampled_from(ROLES), content).map(
        lambda t: {"role": t[0], "content": t[1]}
    )
    tool = st.sampled_from(
        [
            {"role": "tool", "content": "18°C", "tool_call_id": "call_1"},
            {"role": "tool", "content": "18°C"},
            {"role": "tool", "content": "18°C", "tool_call_id": ""},
            {"role": "tool", "content": None, "tool_call_id": "call_1"},
            {"role": "tool", "content": [{"type": "text", "text": "18"}], "tool_call_id": "c"},
            {"role": "tool", "content": "x", "tool_call_id": 5},
            {"role": "tool", "content": "x", "tool_call_id": "x" * 5000},
        ]
    )
    function = st.sampled_from(
        [
            {"role": "function", "name": "get_weather", "content": "18°C"},
            {"role": "function", "content": "18°C"},
            {"role": "function", "name": "", "content": "18°C"},
            {"role": "function", "name": "get_weather", "content": None},
        ]
    )
    assistant = pick(
        [
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "assistant", "content": "calling", "tool_calls": [CALL, {**CALL, "id": "2"}]},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "assistant", "content": None},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
            {"role": "assistant", "content": None, "tool_calls": [{**CALL, "type": "other"}]},
            {"role": "assistant", "content": None, "tool_calls": "get_weather"},
            {"role": "assistant", "content": None, "tool_calls": [CALL] * 1001},
            {"role": "assistant", "content": None, "function_call": CALL["function"]},
            {"role": "assistant", "content": None, "function_call": {"name": "bad name"}},
            {"role": "assistant", "content": None, "refusal": "I can't."},
            {"role": "assistant", "content": None, "audio": {"id": "audio_1"}},
            {"role": "assistant", "content": "hi", "name": "bot"},
        ]
    )
    odd = st.sampled_from(
        [
            {"role": "robot", "content": "hi"},
            {"role": "", "content": "hi"},
            {"role": "USER", "content": "hi"},
            {"role": None, "content": "hi"},
            {"role": 5, "content": "hi"},
            {"role": ["user"], "content": "hi"},
            {"content": "no role"},
            {},
            {"role": "user"},
            {"role": "user", "content": "hi", "tool_calls": [CALL]},
            {"role": "user", "content": "hi", "tool_call_id": "call_1"},
            {"role": "system", "content": "hi", "function_call": CALL["function"]},
            {"role": "user", "content": "hi", "name": ""},
            {"role": "user", "content": "hi", "name": "x" * 300},
            {"role": "user", "content": "hi", "extra": 1},
            "user: hi",
            None,
            ["user", "hi"],
        ]
    )
    message = weighted(
        (2, known), (1, tool), (1, function), (2, assistant), (1, odd), (1, hostile_values)
    )
    turn = st.sampled_from(
        [
            [{"role": "user", "content": "weather?"},
             {"role": "assistant", "content": None, "tool_calls": [CALL]},
             {"role": "tool", "content": "18°C", "tool_call_id": "call_1"}],
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}],
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"role": "user", "content": "again"}],
            [{"role": "user", "content": "w?"}, {"role": "assistant", "content": None,
             "function_call": CALL["function"]},
             {"role": "function", "name": "get_weather", "content": "18°C"}],
        ]
    )  # fmt: skip
    return st.one_of(
        turn,
        st.lists(message, min_size=1, max_size=4),
        st.lists(message, min_size=1, max_size=4).map(
            lambda ms: [*ms, {"role": "user", "content": "hi"}]
        ),
        st.sampled_from([[], None, "hi", {"role": "user", "content": "hi"}]),
    )


def roles_campaign(target: Target, n: int) -> int:
    bodies = st.tuples(_plain_chat(target), messages_of_every_role()).map(
        lambda t: {**t[0], "messages": t[1]}
    )
    by_schema = schema_values(ChatRequest, "messages")
    if by_schema is not None:  # valid conversations by the schema, every role among them
        bodies = bodies | st.tuples(_plain_chat(target), by_schema).map(
            lambda t: {**t[0], "messages": t[1]}
        )
    return _schema_campaign(target, n, "roles", bodies)


# -- hostile usage from the upstream ---------------------------------------------------------
USAGE_NUMBERS = [
    "-1", "-100000", "1.5", "0.5", "1e9", "1000000000", "100000001", "100000000", "1e308",
    "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "-0", "0", "3", "2e2", '"12"', '"abc"',
    '""', "true", "false", "null", "[]", "{}", "[1, 2]", '{"n": {"m": [1, {"k": null}]}}',
    "1" * 400, "-" + "9" * 400, "1" * 5000, "0.1e-999", "12345678901234567890",
]  # fmt: skip
DEEP = (
    "[" * 100_000 + "]" * 100_000,
    "[" * 2_000 + "]" * 2_000,
    '{"a":' * 3_000 + "1" + "}" * 3_000,
)


def hostile_usages() -> st.SearchStrategy[Any]:
    """Usage objects an upstream should not send: negative, fractional, string, 400-digit,
    huge, null, missing counts, nested garbage, junk ``prompt_tokens_details``."""
    number = st.one_of(
        pick(USAGE_NUMBERS).map(Raw),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        json_values,
    )
    details = st.one_of(
        st.fixed_dictionaries(
            {}, optional={"cached_tokens": number, "audio_tokens": number, "x": json_values}
        ),
        number,
        pick(DEEP).map(Raw),
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": number,
            "completion_tokens": number,
            "total_tokens": number,
            "prompt_tokens_details": details,
            "completion_tokens_details": details,
        },
    )
    believable = st.fixed_dictionaries(
        {"prompt_tokens": st.integers(0, 50), "completion_tokens": st.integers(0, 50)},
        optional={"prompt_tokens_details": details, "completion_tokens_details": details},
    )
    whole = st.one_of(
        pick([MISSING, None, "12", 5, -1, [], [1, 2], True, {}]),
        pick([*USAGE_NUMBERS, *DEEP]).map(Raw),
        json_values,
    )
    return weighted((2, fields), (1, believable), (1, whole))


def usage_campaign(target: Target, holder: HostileUsage, n: int) -> int:
    """Chat requests (streamed or not, with the client or a metered key) answered by an
    upstream reporting hostile usage: a proper answer or a 4xx/503 JSON each time; then every
    LLM's in-flight count back to 0 and the metered key's spend a finite number >= 0."""
    before = target.sent
    seen_before = Counter(target.outcomes)
    calls_before = holder.calls
    placements = st.sampled_from(["chunk", "chunk", "finish", "every"])
    options = st.sampled_from([MISSING, {"include_usage": True}, {"include_usage": False}])
    cases = st.tuples(_plain_chat(target), hostile_usages(), placements, options, st.booleans())

    def send(case: tuple[dict[str, Any], Any, str, Any, bool]) -> None:
        body, holder.usage, holder.placement, stream_options, metered = case
        if stream_options is not MISSING and body["stream"]:
            body = {**body, "stream_options": stream_options}
        key = "metered" if metered else "client"
        target.send(Req("POST", "/v1/chat/completions", _dumps(body), key=key))

    try:
        _run(n, cases, send)
    finally:  # whatever the answers were, nothing may stay in flight
        holder.usage, holder.placement = {"prompt_tokens": 5, "completion_tokens": 14}, "chunk"
        target.settled()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    assert holder.calls - calls_before > n / 2, (holder.calls, n)  # most reached the upstream
    seen = target.outcomes - seen_before
    answered = sum(c for (e, status), c in seen.items() if e == "chat" and status < 300)
    assert answered > n / 2, seen
    spend = target.send(Req("GET", f"/admin/keys/{BUDGETED.name}/spend", key="admin")).json()
    assert isinstance(spend["spent_usd"], float) and 0 <= spend["spent_usd"] < 1e6, spend
    target.chat_ok()
    target.healthy()
    return sent
