"""Shadow traffic within bounds: a daily budget that holds across a restart, calls past
``max_in_flight`` dropped, no call without a candidate, broken streams not shadowed; and the
``[shadow]`` settings, refused with the bad value named."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mixllm import Router
from mixllm.data import Dataset
from mixllm.errors import ConfigError
from mixllm.serve import FakeBackend, ReplayBackend, Store, create_app
from mixllm.serve.metrics import metric_total as _metric
from mixllm.serve.replay import RecordedJudge
from mixllm.serve.settings import ShadowSettings, load_settings_text

from . import shadow_setup
from .inprocess import gateway, run
from .shadow_setup import (
    LLMS,
    PROMPTS,
    _backends,
    _chat,
    _settings,
    _shadow_rows,
)

# the fixtures, assigned (not imported) so that test parameters of the same name are not flagged
data, router_dir = shadow_setup.data, shadow_setup.router_dir


# -- bounded: budget, in-flight, candidates ----------------------------------------------------
def test_the_daily_budget_holds_across_a_restart(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    budget = 0.0003  # a few shadow answers and verdicts
    settings = _settings(budget_usd_per_day=budget, judge_price_in_per_mtok=0.1,
                         judge_price_out_per_mtok=0.1, max_tokens=16)  # fmt: skip

    def serve(prompts: list[str], wall: float) -> str:
        day = "1970-01-01" if wall < 86400 else "1970-01-02"

        async def body() -> str:
            router = Router.load(router_dir)
            async with gateway(router, _backends(data), tmp_path, settings) as (app, client):
                gw = app.state.gateway
                gw.shadow.wall = lambda: wall
                for prompt in prompts:
                    reply = await client.post("/v1/chat/completions", json=_chat(prompt))
                    assert reply.status_code == 200
                    await gw.shadow.drain()
                    assert gw.store.shadow_spent(day) <= budget + 1e-12
                return (await client.get("/metrics")).text

        return run(body)

    first = serve(PROMPTS[:20], 100.0)
    assert _metric(first, "mixllm_shadow_requests_total", outcome="over_budget") > 0
    assert _metric(first, "mixllm_shadow_requests_total", outcome="learned") > 0
    paid = _metric(first, "mixllm_shadow_spend_usd_total")  # answers and verdicts
    assert _metric(first, "mixllm_shadow_spend_usd_total", kind="judge") > 0
    assert 0 < paid <= budget + 1e-12
    assert _metric(first, "mixllm_shadow_spend_today_usd") == pytest.approx(paid)
    with Store(tmp_path / "gateway.db") as store:
        assert store.shadow_spent("1970-01-01") == pytest.approx(paid)
    # restarted the same day: the day's spend is remembered, the budget still holds
    again = serve(PROMPTS[20:26], 200.0)
    assert _metric(again, "mixllm_shadow_spend_usd_total") <= budget - paid + 1e-12
    assert _metric(again, "mixllm_shadow_requests_total", outcome="over_budget") > 0
    # the next day has a budget of its own
    tomorrow = serve(PROMPTS[26:28], 86400.0 + 100.0)
    assert _metric(tomorrow, "mixllm_shadow_requests_total", outcome="learned") >= 1


def test_shadow_calls_past_max_in_flight_are_dropped_and_none_without_candidates(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    router = Router.load(router_dir)
    judge = _GatedJudge(data)

    async def body() -> str:
        settings = _settings(max_in_flight=1)
        async with gateway(router, _backends(data, judge), tmp_path, settings) as (app, client):
            gw = app.state.gateway
            for prompt in PROMPTS[:3]:  # the first shadow waits for its judge meanwhile
                assert (await client.post("/v1/chat/completions", json=_chat(prompt))).is_success
            judge.gate.set()
            await gw.shadow.drain()
            for b in ("medium", "large"):  # the other LLMs' circuits are open
                gw.breakers[b] = _Open()
            only = {**_chat(PROMPTS[5]), "model": "small"}
            # with a judge, the served answer is left to grade
            assert (await client.post("/v1/chat/completions", json=only)).is_success
            await gw.shadow.drain()
            # without one, there is no candidate
            gw.shadow.settings = replace(gw.shadow.settings, judge=None)
            assert (await client.post("/v1/chat/completions", json=only)).is_success
            await gw.shadow.drain()
            return (await client.get("/metrics")).text

    metrics = run(body)
    assert _metric(metrics, "mixllm_shadow_requests_total", outcome="dropped") == 2
    assert _metric(metrics, "mixllm_shadow_requests_total", outcome="no_candidate") == 1
    assert _metric(metrics, "mixllm_shadow_requests_total", outcome="learned") == 2
    assert _metric(metrics, "mixllm_shadow_requests_total", llm="small", answer="served") == 1
    assert len(_shadow_rows(tmp_path / "gateway.db")) == 2


class _GatedJudge(RecordedJudge):
    """A recorded judge that answers only once its gate is open."""

    def __init__(self, data: Dataset) -> None:
        super().__init__(data)
        self.gate = asyncio.Event()

    async def complete(self, messages: Any, params: Any, *, prompt: str) -> Any:
        await asyncio.wait_for(self.gate.wait(), 10.0)
        return await super().complete(messages, params, prompt=prompt)


class _Open:
    """A circuit breaker that stays open."""

    state = "open"

    def allow(self) -> bool:
        return False


# -- settings ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("share = 1.5\nbudget_usd_per_day = 1.0", "share=1.5"),
        ("share = -0.1\nbudget_usd_per_day = 1.0", "share=-0.1"),
        ("share = 0.5", "budget_usd_per_day"),
        ("share = 0.5\nbudget_usd_per_day = 0", "budget_usd_per_day=0"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\nmax_tokens = 0", "max_tokens=0"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\nmax_in_flight = 2.5", "max_in_flight=2.5"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\ngrader = 'fuzzy'", "grader='fuzzy'"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\ngrader = 'code'", "grader='code'"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\njudge = 'j'\ngrader = 'exact'", "judge='j'"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\njudge_template = 't.txt'", "judge_template"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\nseed = 'x'", "seed='x'"),
        ("share = 0.5\nbudget_usd_per_day = 1.0\nsharing = 1", "sharing"),
    ],
)
def test_bad_shadow_settings_are_refused_naming_the_value(toml: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(".", r"\.")):
        load_settings_text(f"[shadow]\n{toml}\n", environ={})


def test_shadow_settings_from_toml(tmp_path: Path) -> None:
    template = tmp_path / "judge.txt"
    template.write_text("Q {prompt}\nA {answer}\nR {reference}\n[[N]]\n")
    config = tmp_path / "mixllm.toml"
    config.write_text(
        "[server]\nstore_prompts = false\n[shadow]\nshare = 0.2\nbudget_usd_per_day = 5.0\n"
        'judge = "gpt-4o"\njudge_template = "judge.txt"\nseed = 7\n'
    )
    from mixllm.serve.settings import load_settings

    s = load_settings(config, environ={})
    assert s.store_prompts is False
    assert s.shadow == ShadowSettings(share=0.2, budget_usd_per_day=5.0, judge="gpt-4o",
                                      judge_template=str(template), seed=7)  # fmt: skip
    assert load_settings_text("", environ={}).shadow.on is False


def test_a_judge_that_is_not_an_upstream_is_refused_at_build_time(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    backends = {m: ReplayBackend(m, data) for m in LLMS}
    with Store(":memory:") as store, pytest.raises(ConfigError, match=r"judge='gpt-9'.*large"):
        create_app(Router.load(router_dir), backends, store, _settings(judge="gpt-9"))
    missing = _settings(judge_template=str(tmp_path / "nope.txt"))
    with Store(":memory:") as store, pytest.raises(ConfigError, match=r"nope\.txt"):
        create_app(Router.load(router_dir), _backends(data), store, missing)


def test_a_stream_that_breaks_mid_answer_is_not_shadowed(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    backends = {**_backends(data), "small": FakeBackend("small", fail="mid_stream")}

    async def body() -> str:
        router = Router.load(router_dir)
        async with gateway(router, backends, tmp_path, _settings()) as (app, client):
            chat = {**_chat(PROMPTS[0], stream=True), "model": "small"}
            reply = await client.post("/v1/chat/completions", json=chat)
            assert reply.status_code == 200 and "upstream_error" in reply.text
            assert "[DONE]" not in reply.text
            await app.state.gateway.shadow.drain()
            return (await client.get("/metrics")).text

    assert _metric(run(body), "mixllm_shadow_requests_total") == 0
    assert _shadow_rows(tmp_path / "gateway.db") == []
