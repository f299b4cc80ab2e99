"""Hostile input against a real gateway: thousands of generated malformed or hostile requests.

Every endpoint gets requests built from the pydantic schemas of :mod:`mixllm.serve.schemas`
(``model_json_schema()``): valid-looking bodies with one field set to a wrong type or value or
removed, random JSON of any shape, raw bytes, invalid UTF-8, truncated JSON, NaN/Infinity
literals, huge strings, deep nesting, unknown models and LLM names, bodies over the size
limit, wrong, missing and garbage ``Authorization`` headers, wrong content types, wrong
methods and unknown paths. Each answer must be a 2xx that is a proper success (and only with
the right key) or a 4xx with a JSON ``{"error": {"message", "type", "code"}}``: never a 5xx,
never a dropped connection. The server must still answer ``/healthz`` afterwards.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
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
LIMIT = 1_000_000  # Settings.max_body_bytes
HYPOTHESIS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
#: Requests per campaign (each test asserts it sent at least this many): 2,000 or more in all.
BUDGET = {
    "chat": 650,
    "feedback": 350,
    "read": 250,
    "routes": 300,
    "admin": 450,
    "special": 17,
    "regressions": 19,
}


# -- the servers -----------------------------------------------------------------------------
@dataclass
class Target:
    """A running gateway, one HTTP client for it, and a count of what was sent."""

    http: httpx.Client
    app: Any
    upstream: str  # the base URL of the fake OpenAI-compatible upstream
    llms: tuple[str, ...]  # the LLMs it started with
    decision_ids: list[str] = field(default_factory=list)
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, int]] = field(default_factory=Counter)

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


TALLY: Counter[str] = Counter()
UPSTREAM_ERRORS: list[str] = []  # what the fake upstream received that was not plain JSON


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _upstream_chat(request: Request) -> Response:
    """An OpenAI-compatible upstream that answers TEXT, and notes any body it is sent that is
    not strict JSON (the gateway passes extra fields on as they are)."""
    try:
        body = json.loads(await request.body(), parse_constant=_no_constants)
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
    events = [{"choices": [{"delta": {"content": d}, "finish_reason": None}]} for d in deltas]
    events.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return Response(text, media_type="text/event-stream")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = Starlette(routes=[Route("/v1/chat/completions", _upstream_chat, methods=["POST"])])
    with running(app) as base:
        yield base


def _serve(fitted_dir: Path, folder: Path, upstream: str) -> Iterator[Target]:
    """A gateway with both client and admin keys; its second LLM is served over HTTP."""
    router = Router.load(fitted_dir)
    backends: dict[str, Any] = {m: FakeBackend(m, text=TEXT) for m in router.llms}
    over_http = router.llms[1]
    backends[over_http] = OpenAIBackend(over_http, base_url=upstream, model="m", timeout_s=10)
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(folder / "gateway.db")
    config = Settings(keys=(CLIENT, ADMIN), deadline_s=5.0)
    app = create_app(router, backends, store, config, state_dir=folder / "state")
    with running(app) as base, httpx.Client(base_url=base.removesuffix("/v1"), timeout=30) as http:
        target = Target(http, app, upstream, tuple(router.llms))
        target.decision_ids += [target.chat_ok() for _ in range(3)]  # to send feedback on
        yield target
        target.healthy()
        assert not UPSTREAM_ERRORS, UPSTREAM_ERRORS[:10]


@pytest.fixture(scope="module")
def target(
    fitted_dir: Path, tmp_path_factory: pytest.TempPathFactory, upstream: str
) -> Iterator[Target]:
    """One gateway for the chat, feedback, read-only and routing campaigns."""
    yield from _serve(fitted_dir, tmp_path_factory.mktemp("hostile"), upstream)


@pytest.fixture(scope="module")
def admin_target(
    fitted_dir: Path, tmp_path_factory: pytest.TempPathFactory, upstream: str
) -> Iterator[Target]:
    """A second gateway for the admin API (which adds and removes LLMs, changes defaults)."""
    yield from _serve(fitted_dir, tmp_path_factory.mktemp("hostile-admin"), upstream)


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
            secret = {"client": CLIENT.secret, "admin": ADMIN.secret}[self.key]
            object.__setattr__(self, "auth", f"Bearer {secret}".encode())

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
OPEN = {"healthz", "metrics", "docs"}


def endpoint_of(req: Req) -> str | None:
    path = req.path.partition("?")[0]
    if req.method == "DELETE" and path.startswith("/admin/llms/") and len(path) > 12:
        return "admin_remove"
    return ROUTES.get((req.method, path))


def check(target: Target, req: Req, response: httpx.Response) -> None:
    """A proper success or a 4xx with a JSON error; never a 5xx."""
    status = response.status_code
    assert status < 500, f"{req!r} -> {status}: {response.text[:2000]}"
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
        assert req.key in ("client", "admin"), f"{req!r} succeeded without a key"
    if endpoint is not None and endpoint.startswith("admin"):
        assert req.key == "admin", f"{req!r} succeeded without an admin key"
    _SUCCESS[endpoint](target, req, response)


def _chat(target: Target, req: Req, response: httpx.Response) -> None:
    assert response.headers["x-mixllm-llm"] in target.gateway.router.llms
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [e for e in response.text.split("\n\n") if e]
        assert all(e.startswith("data: ") for e in events), response.text[:500]
        assert events[-1] == "data: [DONE]", response.text[-500:]
        chunks = [json.loads(e[6:]) for e in events[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == TEXT
        return
    body = response.json()
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


_SUCCESS = {
    "chat": _chat,
    "feedback": _feedback,
    "models": _models,
    "healthz": _healthz,
    "metrics": _metrics,
    **{e: _admin for e in ROUTES.values() if e.startswith("admin")},
    "admin_remove": _admin,
    "docs": _docs,
}


# -- generated values ------------------------------------------------------------------------
@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as it is (deep nesting, NaN, huge numbers, bad escapes)."""

    text: str


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
huge_strings = st.sampled_from([10_000, 100_000, 400_000]).map(lambda n: "x" * n)
hostile_values = st.one_of(
    json_values,
    st.sampled_from(SPECIAL_VALUES),
    st.sampled_from(RAW_VALUES).map(Raw),
    huge_strings,
)


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for the JSON schema ``schema`` (the subset pydantic writes for schemas.py)."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10**9)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"]).filter(lambda s: low <= len(s) <= high)
        odd = [s for s in HOSTILE_STRINGS if low <= len(s) <= high]
        return st.text(min_size=low, max_size=min(high, 40)) | st.sampled_from(odd)
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


def field_paths(model: type[BaseModel]) -> list[tuple[Any, ...]]:
    """Every field of ``model``'s schema as a path (nested models and list items included),
    plus an unknown field at each level."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def walk(s: dict[str, Any], prefix: tuple[Any, ...], depth: int) -> list[tuple[Any, ...]]:
        if "$ref" in s:
            s = defs[s["$ref"].rsplit("/", 1)[-1]]
        paths: list[tuple[Any, ...]] = []
        for sub in s.get("anyOf", ()):
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
        st.sampled_from([r.encode() for r in RAW_VALUES]),
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

    return st.tuples(valid_bodies(ChatRequest), models, candidates, unknown, st.integers(0, 5)).map(
        fix
    )


def test_chat_completions_hostile(target: Target) -> None:
    before = target.sent
    valid = chat_bodies(target.llms)
    paths = field_paths(ChatRequest)
    deep = valid.map(_dumps) | mutated(valid, paths).map(_dumps)  # past auth to the router
    reqs = requests("POST", "/v1/chat/completions", body_bytes(valid, paths)) | requests(
        "POST", "/v1/chat/completions", deep, keyed=True
    )

    @settings(HYPOTHESIS, max_examples=BUDGET["chat"])
    @given(req=reqs)
    def run(req: Req) -> None:
        target.send(req)

    run()
    target.chat_ok()
    target.healthy()
    TALLY["chat"] = target.sent - before
    assert TALLY["chat"] >= BUDGET["chat"], TALLY
    seen = target.outcomes
    assert seen["chat", 200] > 100 and seen["chat", 400] > 200 and seen["chat", 404] > 10, seen


# -- feedback --------------------------------------------------------------------------------
def test_feedback_hostile(target: Target) -> None:
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

    @settings(HYPOTHESIS, max_examples=BUDGET["feedback"])
    @given(req=reqs)
    def run(req: Req) -> None:
        if req.body is not None and fresh.encode() in req.body:
            req = replace(req, body=req.body.replace(fresh.encode(), target.chat_ok().encode()))
        reply = target.send(req)
        if reply.status_code == 200 and reply.json()["status"] == "applied":
            target.chat_ok()  # what was learned leaves routing working

    run()
    target.chat_ok()  # what was learned from hostile feedback leaves routing working
    target.healthy()
    TALLY["feedback"] = target.sent - before
    assert TALLY["feedback"] >= BUDGET["feedback"], TALLY
    assert target.outcomes["feedback", 200] > 20, target.outcomes


# -- read-only endpoints ---------------------------------------------------------------------
QUERIES = ["", "?", "?a=1", "?a=%ff%fe", "?" + "x" * 4000, "?%00=%00", "?a=1&a=2&b", "?é=ü"]


def test_every_operation_of_the_openapi_schema_is_attacked(target: Target) -> None:
    schema = target.http.get("/openapi.json").json()
    operations = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    attacked = {k for k, v in ROUTES.items() if v != "docs"} | {("DELETE", "/admin/llms/{name}")}
    assert operations == attacked


def test_models_healthz_metrics_hostile(target: Target) -> None:
    before = target.sent
    paths = st.tuples(
        st.sampled_from(["/v1/models", "/healthz", "/metrics"]), st.sampled_from(QUERIES)
    ).map("".join)
    bodies = st.none() | raw_bodies(json_values)

    @settings(HYPOTHESIS, max_examples=BUDGET["read"])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        target.send(data.draw(requests("GET", data.draw(paths), bodies)))

    run()
    target.healthy()
    TALLY["read"] = target.sent - before
    assert TALLY["read"] >= BUDGET["read"], TALLY


# -- wrong methods, unknown paths ------------------------------------------------------------
KNOWN_PATHS = [
    "/v1/chat/completions", "/v1/feedback", "/v1/models", "/healthz", "/metrics", "/admin/llms",
    "/admin/llms/x", "/admin/defaults", "/admin/checkpoint",
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO", "get"]
ODD_PATHS = [
    "/", "/v1", "/v1/", "/v1/chat", "/v1/chat/completions/", "/v1/models/", "/V1/MODELS",
    "/v1/completions", "/v1/embeddings", "/docs", "/openapi.json", "/redoc", "/admin",
    "/admin/", "/admin/llms/", "/admin/defaults/x", "/%2e%2e/%2e%2e/etc/passwd", "/v1/%00",
    "/v1/models%2F", "/" + "a" * 6000, "//v1//models", "/v1/chat/completions%20",
    "/healthz/../metrics", "/metrics.json", "/\u00e9t\u00e9", "/v1/feedback?id=1",
]  # fmt: skip
_SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_characters="?#/", exclude_categories=["Cs"]),
    min_size=1,
    max_size=30,
)


def test_wrong_methods_and_unknown_paths(target: Target) -> None:
    before = target.sent
    generated = st.lists(_SEGMENT.map(lambda s: quote(s, safe="")), min_size=1, max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    )
    prefixed = st.tuples(st.sampled_from(["/v1/", "/admin/", "/v1/chat/"]), generated).map(
        lambda t: t[0] + t[1].lstrip("/")
    )
    known = st.sampled_from(KNOWN_PATHS)
    paths = st.one_of(known, known, st.sampled_from(ODD_PATHS), generated, prefixed)
    bodies = st.none() | raw_bodies(json_values)

    @settings(HYPOTHESIS, max_examples=BUDGET["routes"])
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        method, path = data.draw(st.sampled_from(METHODS)), data.draw(paths)
        if (method.upper(), path) in ROUTES or path == "/admin/llms/x":
            method = data.draw(st.sampled_from(["PUT", "OPTIONS", "TRACE", "FOO"]))
        target.send(data.draw(requests(method, path, bodies)))

    run()
    target.healthy()
    TALLY["routes"] = target.sent - before
    assert TALLY["routes"] >= BUDGET["routes"], TALLY
    assert target.outcomes["other", 404] > 50 and target.outcomes["other", 405] > 50


# -- admin -----------------------------------------------------------------------------------
def test_admin_api_hostile(admin_target: Target) -> None:
    target = admin_target
    before = target.sent
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
    names = (
        st.sampled_from([*llms, "nope", "", " ", "..", "%", "a/b/c", "\u00e9", "x" * 3000])
        | _SEGMENT
    )
    removes = names.map(lambda n: f"/admin/llms/{quote(n, safe='/')}")
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

    @settings(HYPOTHESIS, max_examples=BUDGET["admin"])
    @given(req=reqs)
    def run(req: Req) -> None:
        if endpoint_of(req) == "admin_remove":  # it would leak the backend's connections
            name = unquote(req.path.removeprefix("/admin/llms/"))
            assume(not isinstance(target.gateway.backends.get(name), OpenAIBackend))
        reply = target.send(req)
        if reply.is_success and req.method != "GET":
            target.chat_ok()  # the router still routes after what the admin changed

    run()
    target.healthy()
    TALLY["admin"] = target.sent - before
    assert TALLY["admin"] >= BUDGET["admin"], TALLY
    seen = target.outcomes
    assert seen["admin_add", 201] > 0 and seen["admin_defaults", 200] > 10, seen
    assert target.statuses[403] > 3 and target.statuses[401] > 50, seen


# -- huge and deeply nested bodies -----------------------------------------------------------
def test_huge_and_deep_bodies(target: Target) -> None:
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
    TALLY["special"] = target.sent - before
    assert TALLY["special"] >= BUDGET["special"], TALLY


def test_what_broke_before_is_a_400(target: Target) -> None:
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
    TALLY["regressions"] = target.sent - before
    assert TALLY["regressions"] >= BUDGET["regressions"], TALLY


def test_at_least_2000_hostile_requests_in_all() -> None:
    """The campaigns' minimums add up to 2,000 requests or more; each campaign asserts that it
    sent at least its own (so the total holds however pytest-xdist spreads them), and when they
    all ran in this process their actual total is checked too."""
    assert sum(BUDGET.values()) >= 2_000
    if set(TALLY) == set(BUDGET):
        assert sum(TALLY.values()) >= 2_000, TALLY
