"""The hostile requests (:class:`Req`) and what each answer must be (:func:`check`): a proper
success, and only with the right key, or a 4xx with a JSON error; never a 5xx or a dropped
connection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

import httpx

from tests.serve.hostile_base import ADMIN, BUDGETED, CLIENT, TEXT, strict_json

if TYPE_CHECKING:
    from tests.serve.hostile_target import Target


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
