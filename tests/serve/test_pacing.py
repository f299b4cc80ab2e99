"""Budget pacing through the gateway, with a manual clock in Unix seconds: the hard budget
(429 naming the budget, its period and its reset), λ rising when spend runs ahead, a request's
own λ, the cheaper LLM when the chosen one's worst case does not fit, metrics, a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm import Router
from mixllm.clock import ManualClock
from mixllm.serve import ApiKey, Settings
from mixllm.serve.metrics import metric_total
from mixllm.serve.settings import Profile, load_settings_text

from .inprocess import gateway, run, upstream_backend

#: 2025-12-05 00:00:00 UTC: a day's and an hour's start.
DAY = 1_764_892_800.0


def _ask(i: int, **mixllm: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "mixllm",
        "messages": [{"role": "user", "content": f"Question {i}: what is {i} times {i + 3}?"}],
        "max_tokens": 100,
    }
    if mixllm:
        body["mixllm"] = mixllm
    return body


def _usage(body: dict[str, Any]) -> dict[str, int]:
    return {"prompt_tokens": 20, "completion_tokens": int(body.get("max_tokens") or 100)}


def _settings(**pacing: float) -> Settings:
    return load_settings_text(
        "[pacing]\n" + "".join(f"{k} = {v}\n" for k, v in pacing.items()), environ={}
    )


def test_the_budget_is_never_passed_and_a_429_says_when_it_resets(
    router: Router, tmp_path: Path
) -> None:
    backends = {m: upstream_backend(m, usage=_usage) for m in router.llms}
    clock = ManualClock(start=DAY + 600.0)

    async def go() -> None:
        async with gateway(router, backends, tmp_path, _settings(usd_per_hour=0.002),
                           clock=clock) as (app, http):  # fmt: skip
            store = app.state.gateway.store
            statuses, charged = [], 0.0
            for i in range(300):  # bounded: the budget runs out long before
                r = await http.post("/v1/chat/completions", json=_ask(i))
                statuses.append(r.status_code)
                assert store.pacing_spent("gateway", "2025-12-05T00") <= 0.002 + 1e-12
                if r.status_code == 429:
                    break
                charged += r.json()["mixllm"]["charged_usd"]
                clock.advance(1.0)
            assert statuses[-1] == 429 and set(statuses[:-1]) == {200}
            # the holds became the charges (nothing in flight)
            assert store.pacing_spent("gateway", "2025-12-05T00") == pytest.approx(charged)
            error = r.json()["error"]
            assert "the pacing budget of the gateway ($0.002 per hour) is spent" in error["message"]
            assert "2025-12-05T00 UTC" in error["message"]
            assert "resets at 2025-12-05T01:00:00Z" in error["message"]
            assert 2900 <= int(r.headers["retry-after"]) <= 3000
            metrics = (await http.get("/metrics")).text
            assert metric_total(metrics, "mixllm_pacing_refused_total", scope="gateway") == 1
            spent = metric_total(metrics, "mixllm_pacing_period_spend_usd", scope="gateway")
            assert spent == pytest.approx(store.pacing_spent("gateway", "2025-12-05T00"))
            assert metric_total(metrics, "mixllm_pacing_budget_usd", scope="gateway") == 0.002
            clock.advance(3600.0)  # a new hour, a whole budget
            r = await http.post("/v1/chat/completions", json=_ask(1000))
            assert r.status_code == 200
            streamed = await http.post("/v1/chat/completions", json={**_ask(1001), "stream": True})
            assert streamed.status_code == 200 and "[DONE]" in streamed.text
            hour = store.pacing_spent("gateway", "2025-12-05T01")
            assert hour > r.json()["mixllm"]["charged_usd"]  # the stream's charge is in
            metrics = (await http.get("/metrics")).text
            total = metric_total(metrics, "mixllm_spend_usd_total")
            assert total == pytest.approx(charged + hour)  # what pacing counts is what was charged

    run(go)


def test_lam_rises_when_spend_runs_ahead_and_a_request_lam_bypasses_it(
    router: Router, tmp_path: Path
) -> None:
    backends = {m: upstream_backend(m, usage=_usage) for m in router.llms}
    clock = ManualClock(start=DAY)

    async def go() -> None:
        async with gateway(router, backends, tmp_path, _settings(usd_per_day=0.05),
                           clock=clock) as (_, http):  # fmt: skip
            lams = []
            for i in range(40):  # ~$0.0005 every 10 s: far more than $0.05 a day
                r = await http.post("/v1/chat/completions", json=_ask(i))
                assert r.status_code == 200
                lams.append(r.json()["mixllm"]["lam"])
                clock.advance(10.0)
            assert lams[0] == pytest.approx(router.lam)  # where it starts
            assert lams[-1] > 10 * router.lam and lams[-1] >= max(lams[:-5])
            metrics = (await http.get("/metrics")).text
            lam_now = metric_total(metrics, "mixllm_pacing_lambda", scope="gateway")
            assert lam_now == pytest.approx(lams[-1], rel=0.5)
            rate = metric_total(metrics, "mixllm_pacing_spend_rate_usd_per_hour", scope="gateway")
            assert rate > 0.05 / 24
            own = await http.post("/v1/chat/completions", json=_ask(99, lam=1.0))
            assert own.status_code == 200 and own.json()["mixllm"]["lam"] == 1.0

    run(go)


def test_a_request_lam_still_meets_the_budget_and_a_cheaper_llm_is_called(
    router: Router, tmp_path: Path
) -> None:
    prices = router.prices_
    dear, cheap = (
        max(prices, key=lambda m: prices[m].price_out_per_mtok),
        min(prices, key=lambda m: prices[m].price_out_per_mtok),
    )
    backends = {m: upstream_backend(m, usage=_usage) for m in router.llms}
    clock = ManualClock(start=DAY)
    # room for the cheap LLM's worst case (100 tokens), not for the dear one's
    budget = 100 * (prices[cheap].price_out_per_mtok + prices[dear].price_out_per_mtok) / 2e6

    async def go() -> None:
        async with gateway(router, backends, tmp_path, _settings(usd_per_day=budget),
                           clock=clock) as (app, http):  # fmt: skip
            body = _ask(1, lam=0.0, candidates=[dear, cheap])
            r = await http.post("/v1/chat/completions", json=body)
            assert r.status_code == 200
            why = r.json()["mixllm"]
            scores = why["scores"]
            assert why["llm"] == cheap and why["lam"] == 0.0
            if scores[dear] > scores[cheap]:  # the router's choice did not fit
                assert why["routed_to"] == cheap
            for i in range(2, 50):  # bounded; until the budget is spent
                r = await http.post("/v1/chat/completions", json=_ask(i, lam=0.0))
                if r.status_code == 429:
                    break
            assert r.status_code == 429 and "per day) is spent" in r.json()["error"]["message"]
            assert app.state.gateway.store.pacing_spent("gateway", "2025-12-05") <= budget + 1e-12

    run(go)


def test_period_spend_and_lam_survive_a_restart(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m, usage=_usage) for m in router.llms}
    clock = ManualClock(start=DAY + 7200.0)
    key = ApiKey("app", "sk-app-1", pacing=_settings(usd_per_hour=1.0).pacing)
    settings = Settings(keys=(key,), pacing=_settings(usd_per_day=5.0).pacing)
    auth = {"authorization": "Bearer sk-app-1"}
    seen: dict[str, float] = {}

    async def first() -> None:
        async with gateway(router, backends, tmp_path, settings, clock=clock) as (app, http):
            for i in range(30):
                r = await http.post("/v1/chat/completions", json=_ask(i), headers=auth)
                assert r.status_code == 200
                clock.advance(10.0)
            pacing = app.state.gateway.pacing
            seen.update({s: p.spent for s, p in pacing.pacers.items()})
            seen["lam"] = pacing.pacers["key:app"].lam
            assert set(pacing.pacers) == {"gateway", "key:app"}

    async def second() -> None:
        async with gateway(router, backends, tmp_path, settings, clock=clock) as (app, http):
            pacing = app.state.gateway.pacing
            assert pacing.pacers["gateway"].spent == pytest.approx(seen["gateway"])
            assert pacing.pacers["key:app"].spent == pytest.approx(seen["key:app"])
            assert seen["gateway"] > 0
            assert pacing.pacers["key:app"].lam == pytest.approx(seen["lam"], rel=0.5)
            metrics = (await http.get("/metrics")).text
            assert metric_total(metrics, "mixllm_pacing_budget_usd", scope="key:app") == 1.0

    run(first)
    run(second)
    assert Profile().pacing is None


def test_a_profile_budget_covers_a_fallback_or_skips_it(router: Router, tmp_path: Path) -> None:
    from mixllm.serve.fake import FakeBackend

    prices = router.prices_
    by_price = sorted(prices, key=lambda m: prices[m].price_out_per_mtok)
    cheap, dear = by_price[0], by_price[-1]
    dear_worst_answer = 100 * prices[dear].price_out_per_mtok / 1e6  # less than its worst case
    backends = {cheap: FakeBackend(cheap, fail="500"), dear: FakeBackend(dear)}
    body = {**_ask(5, lam=1e9), "model": "batch"}  # λ so large that the cheap LLM is chosen

    def settings(usd_per_day: float) -> Settings:
        text = f'[profiles.batch]\ncandidates = ["{cheap}", "{dear}"]\n'
        text += f"[profiles.batch.pacing]\nusd_per_day = {usd_per_day!r}\n"
        return load_settings_text(text, environ={})

    async def go(usd_per_day: float, where: str) -> httpx.Response:
        clock = ManualClock(start=DAY)
        async with gateway(router, backends, tmp_path / where, settings(usd_per_day),
                           clock=clock) as (app, http):  # fmt: skip
            r = await http.post("/v1/chat/completions", json=body)
            spent = app.state.gateway.store.pacing_spent("profile:batch", "2025-12-05")
            if r.status_code == 200:
                assert r.json()["mixllm"]["llm"] == dear  # the fallback, its hold topped up
                assert spent == pytest.approx(r.json()["mixllm"]["charged_usd"])
            else:
                assert spent == 0.0  # nothing answered, nothing held
            other = await http.post("/v1/chat/completions", json={**_ask(6), "model": dear})
            assert other.status_code == 200  # not the profile: not its budget
            return r

    assert run(lambda: go(1.0, "roomy")).status_code == 200
    skipped = run(lambda: go(0.9 * dear_worst_answer, "tight"))
    assert skipped.status_code >= 500
    assert "pacing budget's rest does not cover it" in skipped.text
    refused = run(lambda: go(1e-9, "none"))
    assert refused.status_code == 429
    assert "the pacing budget of profile 'batch' ($1e-09 per day)" in refused.text
