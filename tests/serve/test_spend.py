"""Spend you can trust, keys that cannot reach each other, upstreams that ask for a pause:
worst-case reservations under concurrency, streams charged from their usage, unbelievable
usage, cached prompts, rate limits, the admin spend endpoints, cross-key feedback, Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mixllm import Router
from mixllm.clock import ManualClock
from mixllm.serve import ApiKey, OpenAIBackend, Settings
from mixllm.serve.capabilities import Capabilities

from .inprocess import gateway, run, upstream_backend

ASK = [{"role": "user", "content": "How much do 7 bicycles at 45 dollars each cost?"}]
APP = ApiKey("app", "sk-app-1", spend_limit_usd=0.10)
OTHER = ApiKey("other", "sk-other-2")
ADMIN = ApiKey("ops", "sk-ops-3", admin=True)


def _auth(key: ApiKey) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"}


def _greedy(body: dict[str, Any]) -> dict[str, Any]:
    """The largest usage an upstream may report: every token it was allowed to write, and a
    prompt ten times longer than the gateway counted."""
    cap = body.get("max_tokens") or body.get("max_completion_tokens")
    words = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
    return {"prompt_tokens": 10 * words + 1000, "completion_tokens": cap, "total_tokens": 0}


def test_fifty_concurrent_requests_never_pass_the_limit(router: Router, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    backends = {m: upstream_backend(m, usage=_greedy, seen=seen) for m in router.llms}
    settings = Settings(keys=(APP, ADMIN), deadline_s=30.0)

    async def go() -> None:
        async with gateway(router, backends, tmp_path, settings) as (app, http):

            async def one(i: int) -> httpx.Response:
                ask = [{"role": "user", "content": f"Question {i}: {ASK[0]['content']}"}]
                return await http.post(
                    "/v1/chat/completions",
                    json={"model": "mixllm", "messages": ask},
                    headers=_auth(APP),
                )

            answers = await asyncio.gather(*(one(i) for i in range(50)))
            statuses = [r.status_code for r in answers]
            assert set(statuses) <= {200, 429} and 200 in statuses and 429 in statuses
            for r in answers:
                if r.status_code == 429:
                    message = r.json()["error"]["message"]
                    assert "spending limit of $0.1" in message and "app" not in message
                else:
                    why = r.json()["mixllm"]
                    assert 0 < why["charged_usd"] <= why["reserved_usd"] + 1e-12
            store = app.state.gateway.store
            spent = store.spent("app")
            assert spent <= 0.10 + 1e-9
            charged = sum(
                r.json()["mixllm"]["charged_usd"] for r in answers if r.status_code == 200
            )
            assert spent == pytest.approx(charged, rel=1e-9, abs=1e-12)
            # the upstream was never allowed more than what was held
            assert all(b["max_tokens"] <= Settings().default_max_tokens for b in seen)
            assert len(seen) == statuses.count(200)
            # the admin reads and resets the key's spend
            r = await http.get("/admin/keys/app/spend", headers=_auth(ADMIN))
            assert r.json()["spent_usd"] == pytest.approx(spent) and r.json()["limit_usd"] == 0.10
            r = await http.post("/admin/keys/app/spend/reset", headers=_auth(ADMIN))
            assert r.json()["was_usd"] == pytest.approx(spent) and store.spent("app") == 0.0
            assert (await http.get("/admin/keys/app/spend", headers=_auth(APP))).status_code == 403
            assert (
                await http.get("/admin/keys/nobody/spend", headers=_auth(ADMIN))
            ).status_code == 404

    run(go)


def test_a_stream_is_charged_its_real_usage(router: Router, tmp_path: Path) -> None:
    llm = router.llms[0]
    usage = {"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168}
    backends = {m: upstream_backend(m, usage=lambda body: usage) for m in router.llms}
    key = ApiKey("app", "sk-app-1", spend_limit_usd=5.0)

    async def go() -> None:
        async with gateway(router, backends, tmp_path, Settings(keys=(key,))) as (app, http):
            async with http.stream(
                "POST", "/v1/chat/completions", headers=_auth(key),
                json={"model": llm, "messages": ASK, "stream": True},
            ) as r:  # fmt: skip
                assert r.status_code == 200
                body = "".join([line async for line in r.aiter_lines()])
            assert "usage" not in body.replace('"usage": null', "")  # not asked for
            price = router.prices_[llm]
            real = (123 * price.price_in_per_mtok + 45 * price.price_out_per_mtok) / 1e6
            assert app.state.gateway.store.spent("app") == pytest.approx(real, rel=1e-9)

    run(go)


def test_unbelievable_usage_charges_the_reservation(
    router: Router, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = router.llms[0]
    bad = {"prompt_tokens": -5, "completion_tokens": 10**400}
    backends = {m: upstream_backend(m, usage=lambda body: bad) for m in router.llms}
    key = ApiKey("app", "sk-app-1")

    async def go() -> None:
        async with gateway(router, backends, tmp_path, Settings(keys=(key,))) as (app, http):
            with caplog.at_level(logging.WARNING, logger="mixllm.serve.gateway"):
                r = await http.post(
                    "/v1/chat/completions",
                    headers=_auth(key),
                    json={"model": llm, "messages": ASK, "max_tokens": 100},
                )
            assert r.status_code == 200
            why = r.json()["mixllm"]
            assert why["reserved_usd"] > 0
            assert why["charged_usd"] == pytest.approx(why["reserved_usd"])
            assert app.state.gateway.store.spent("app") == pytest.approx(why["reserved_usd"])
            assert app.state.gateway.tracker.in_flight(llm) == 0
            assert any("usage not believed" in m for m in caplog.messages)

    run(go)


def test_cached_prompt_tokens_are_charged_at_the_cached_price(
    router: Router, tmp_path: Path
) -> None:
    llm = router.llms[0]
    usage = {"prompt_tokens": 1000, "completion_tokens": 10,
             "prompt_tokens_details": {"cached_tokens": 800}}  # fmt: skip
    caps = Capabilities(price_cached_in_per_mtok=0.1)
    backends = {
        m: upstream_backend(m, usage=lambda b: usage, capabilities=caps) for m in router.llms
    }
    key = ApiKey("app", "sk-app-1")

    async def go() -> None:
        async with gateway(router, backends, tmp_path, Settings(keys=(key,))) as (_, http):
            long_ask = [{"role": "user", "content": "word " * 1200}]
            r = await http.post(
                "/v1/chat/completions",
                headers=_auth(key),
                json={"model": llm, "messages": long_ask, "max_tokens": 50},
            )
            price = router.prices_[llm]
            want = (200 * price.price_in_per_mtok + 800 * 0.1 + 10 * price.price_out_per_mtok) / 1e6
            assert r.json()["mixllm"]["charged_usd"] == pytest.approx(want, rel=1e-9)

    run(go)


def test_rate_limits_answer_429_with_retry_after(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}
    clock = ManualClock()
    slow = ApiKey("slow", "sk-slow-1", requests_per_minute=3)
    thin = ApiKey("thin", "sk-thin-2", tokens_per_minute=300)
    settings = Settings(keys=(slow, thin), default_max_tokens=100)

    async def go() -> None:
        async with gateway(router, backends, tmp_path, settings, clock=clock) as (_, http):
            ask = {"model": "mixllm", "messages": ASK}
            got = [
                (await http.post("/v1/chat/completions", json=ask, headers=_auth(slow)))
                for _ in range(4)
            ]
            assert [r.status_code for r in got] == [200, 200, 200, 429]
            assert (
                got[-1].headers["retry-after"] == "20"
                and "3 requests per minute" in got[-1].json()["error"]["message"]
            )
            clock.advance(20.0)
            r = await http.post("/v1/chat/completions", json=ask, headers=_auth(slow))
            assert r.status_code == 200
            # ~115 tokens each (prompt + the 100 reserved for the answer): two fit in 300
            thin_codes = [
                (await http.post("/v1/chat/completions", json=ask, headers=_auth(thin))).status_code
                for _ in range(3)
            ]
            assert thin_codes == [200, 200, 429]

    run(go)


def test_feedback_only_from_the_key_that_made_the_decision(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}
    mine = ApiKey("app", "sk-app-1")
    settings = Settings(keys=(mine, OTHER))

    async def go() -> None:
        async with gateway(router, backends, tmp_path, settings) as (_, http):
            r = await http.post(
                "/v1/chat/completions",
                json={"model": "mixllm", "messages": ASK},
                headers=_auth(mine),
            )
            rid = r.json()["id"]
            stolen = await http.post(
                "/v1/feedback", json={"id": rid, "reward": False}, headers=_auth(OTHER)
            )
            assert stolen.status_code == 404
            unknown = await http.post(
                "/v1/feedback", json={"id": "chatcmpl-nope", "reward": False}, headers=_auth(OTHER)
            )
            # the same answer as for an id that does not exist: nothing to learn about others
            assert unknown.status_code == 404
            same = [r.json()["error"]["message"].split(";")[1] for r in (stolen, unknown)]
            assert same[0] == same[1]
            own = await http.post(
                "/v1/feedback", json={"id": rid, "reward": True}, headers=_auth(mine)
            )
            assert own.status_code == 200 and own.json()["status"] == "applied"

    run(go)


def _refusing(status: int, retry_after: str, calls: list[int]) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        calls.append(1)
        return JSONResponse(
            {"error": {"message": "slow down"}},
            status_code=status,
            headers={"retry-after": retry_after},
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_retry_after_backs_off_that_llm_and_nothing_leaks(router: Router, tmp_path: Path) -> None:
    busy, *rest = router.llms
    calls: list[int] = []
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=_refusing(429, "30", calls)))
    backends: dict[str, Any] = {
        busy: OpenAIBackend(busy, base_url="http://secret-host.internal:9/v1", model="m",
                            api_key="sk-upstream-secret", client=client),
    }  # fmt: skip
    backends.update({m: upstream_backend(m) for m in rest})
    clock = ManualClock()

    async def go() -> None:
        async with gateway(router, backends, tmp_path, clock=clock) as (_, http):
            first = await http.post("/v1/chat/completions", json={"model": busy, "messages": ASK})
            assert first.status_code == 503 and first.headers["retry-after"] == "30"
            assert "secret-host" not in first.text and "sk-upstream" not in first.text
            assert calls == [1]
            # left alone for 30 s: other LLMs answer, the busy one is not called
            for _ in range(3):
                r = await http.post(
                    "/v1/chat/completions",
                    json={
                        "model": "mixllm",
                        "messages": ASK,
                        "mixllm": {"candidates": router.llms},
                    },
                )
                assert r.status_code == 200 and r.headers["x-mixllm-llm"] != busy
            assert calls == [1]
            clock.advance(31.0)
            again = await http.post("/v1/chat/completions", json={"model": busy, "messages": ASK})
            assert again.status_code == 503 and calls == [1, 1]
        await client.aclose()

    run(go)
