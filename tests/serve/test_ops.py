"""Operating the gateway: a health check that writes to the store, store failures as 503s,
metrics and health details behind an admin key, capabilities in the config and the admin API.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm import Router
from mixllm.errors import ConfigError
from mixllm.serve import ApiKey, FakeBackend, OpenAIBackend, Settings
from mixllm.serve.backends import make_backend
from mixllm.serve.capabilities import Capabilities

from .inprocess import gateway, run, upstream_backend

ASK = {"model": "mixllm", "messages": [{"role": "user", "content": "Name a prime number."}]}
ADMIN = ApiKey("ops", "sk-ops-1", admin=True)
CLIENT = ApiKey("app", "sk-app-2")


def _auth(key: ApiKey) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"}


def _lock(path: Path) -> sqlite3.Connection:
    """Another connection holding the database's write lock (a stuck writer, a full disk)."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_healthz_writes_to_the_store_and_says_503_when_it_cannot(
    router: Router, tmp_path: Path
) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}

    async def go() -> None:
        async with gateway(router, backends, tmp_path, busy_timeout_s=0.05) as (app, http):
            ok = await http.get("/healthz")
            assert ok.status_code == 200 and ok.json()["store"]["decisions"] == 0
            other = _lock(tmp_path / "gateway.db")
            try:
                down = await http.get("/healthz")
                assert down.status_code == 503 and down.json()["status"] == "unavailable"
                chat = await http.post("/v1/chat/completions", json=ASK)
                assert chat.status_code == 503, chat.text
                assert chat.json()["error"]["type"] == "store_unavailable"
                assert chat.headers["retry-after"] == "1"
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.post("/v1/chat/completions", json=ASK)).status_code == 200
            for llm in router.llms:  # no load left behind by the refused request
                assert app.state.gateway.tracker.in_flight(llm) == 0

    run(go)


def test_metrics_and_health_details_behind_an_admin_key(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}
    settings = Settings(keys=(CLIENT, ADMIN), protect_metrics=True)

    async def go() -> None:
        async with gateway(router, backends, tmp_path, settings) as (_, http):
            assert (await http.get("/metrics")).status_code == 401
            assert (await http.get("/metrics", headers=_auth(CLIENT))).status_code == 403
            metrics = await http.get("/metrics", headers=_auth(ADMIN))
            assert metrics.status_code == 200 and "mixllm_requests" in metrics.text
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            detailed = (await http.get("/healthz", headers=_auth(ADMIN))).json()
            assert set(detailed["llms"]) == set(router.llms) and "store" in detailed

    run(go)


def test_capabilities_from_the_config_and_the_admin_api(
    router: Router, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = make_backend(
        {
            "llm": "x",
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "capabilities": {
                "vision": False,
                "context_tokens": 8192,
                "price_cached_in_per_mtok": 0.25,
            },
        },
    )
    assert backend.capabilities == Capabilities(
        vision=False, context_tokens=8192, price_cached_in_per_mtok=0.25
    )
    assert make_backend({"llm": "y", "base_url": "http://h/v1", "model": "m"}).capabilities == (
        Capabilities()
    )  # nothing declared: capable of everything, as before
    for bad in ({"vision": "no"}, {"context_tokens": 0}, {"telepathy": True}):
        with pytest.raises(ConfigError, match="capabilities"):
            make_backend({"llm": "z", "base_url": "http://h/v1", "model": "m", "capabilities": bad})

    backends = {m: upstream_backend(m) for m in router.llms}
    settings = Settings(keys=(ADMIN,), upstream_key_envs=("NEW_KEY",))
    monkeypatch.setenv("NEW_KEY", "sk-new")

    async def go() -> None:
        async with gateway(router, backends, tmp_path, settings) as (_, http):
            upstream: dict[str, Any] = {
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m",
                "api_key_env": "NEW_KEY",
                "capabilities": {"tools": False, "max_output_tokens": 512},
            }
            r = await http.post(
                "/admin/llms",
                headers=_auth(ADMIN),
                json={
                    "name": "newcomer",
                    "price_in_per_mtok": 1.0,
                    "price_out_per_mtok": 2.0,
                    "upstream": upstream,
                },
            )
            assert r.status_code == 201, r.text
            caps = r.json()["capabilities"]
            assert caps["tools"] is False and caps["max_output_tokens"] == 512 and caps["vision"]
            upstream["capabilities"] = {"tools": "maybe"}
            r = await http.post(
                "/admin/llms",
                headers=_auth(ADMIN),
                json={
                    "name": "other",
                    "price_in_per_mtok": 1.0,
                    "price_out_per_mtok": 2.0,
                    "upstream": upstream,
                },
            )
            assert r.status_code == 400 and "tools" in r.json()["error"]["message"]

    run(go)


def test_feedback_after_a_fallback_teaches_the_llm_that_answered(
    router: Router, tmp_path: Path
) -> None:
    prompt = "Which LLM answered this?"
    chosen = router.route(prompt).llm
    backends: dict[str, Any] = {m: upstream_backend(m) for m in router.llms}
    backends[chosen] = FakeBackend(chosen, fail="500")
    llms = list(router.llms)

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            ask = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
            r = await http.post("/v1/chat/completions", json=ask)
            answered = r.headers["x-mixllm-llm"]
            assert r.headers["x-mixllm-routed-to"] == chosen != answered
            before = router.predict([prompt]).quality[0].copy()
            fb = await http.post("/v1/feedback", json={"id": r.json()["id"], "quality": 0.0})
            assert fb.json()["status"] == "applied"
            after = router.predict([prompt]).quality[0]
            moved = {m for i, m in enumerate(llms) if abs(after[i] - before[i]) > 1e-9}
            assert moved == {answered}

    run(go)


def test_upstream_refusals_and_unserved_llms(router: Router, tmp_path: Path) -> None:
    """An upstream's 400 is the client's to fix and passes through; its 401 (the gateway's own
    upstream key) is a 502; an LLM without a backend is not a model a client can ask for."""
    refusing, locked, *rest = router.llms
    backends: dict[str, Any] = {m: upstream_backend(m) for m in rest}
    backends[refusing] = FakeBackend(refusing, fail="400")
    backends[locked] = _status_backend(locked, 401)
    unserved = rest.pop()
    del backends[unserved]

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            ask = {"messages": [{"role": "user", "content": "hello"}]}
            r = await http.post("/v1/chat/completions", json={"model": refusing, **ask})
            assert r.status_code == 400 and r.json()["error"]["type"] == "upstream_error"
            r = await http.post("/v1/chat/completions", json={"model": locked, **ask})
            assert r.status_code == 502, r.text
            r = await http.post("/v1/chat/completions", json={"model": unserved, **ask})
            assert r.status_code == 404 and unserved in r.json()["error"]["message"]
            models = {m["id"] for m in (await http.get("/v1/models")).json()["data"]}
            assert unserved not in models and locked in models

    run(go)


def _status_backend(llm: str, status: int) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def chat(request: Any) -> JSONResponse:
        return JSONResponse({"error": {"message": "invalid api key"}}, status_code=status)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return OpenAIBackend(llm, base_url="http://upstream.invalid/v1", model="m", client=client)
