"""Targets through the gateway: a profile's ``cost_share`` and a request's own target,
resolved by the router's calibration; bad values and a router without calibration are 400s
that name what is wrong; a profile's target with a pacing budget starts the pacer there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mixllm import Router
from mixllm.clock import ManualClock
from mixllm.data import make_routing_dataset, split_random
from mixllm.errors import ConfigError
from mixllm.policy.targets import parse_target
from mixllm.serve import Settings, Store, create_app
from mixllm.serve.settings import load_settings_text

from .inprocess import gateway, run, upstream_backend

CONFIG = """
[profiles.thrifty]
cost_share = 0.3
[profiles.steady]
strong_share = 0.5
[profiles.steady.pacing]
usd_per_day = 1000
"""


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = make_routing_dataset(n_queries=200, n_llms=4, seed=0)
    train, _ = split_random(data, seed=0)
    path = tmp_path_factory.mktemp("calibrated") / "router"
    target = parse_target("cost_share", 0.5)
    Router("mixllm", embedder="hashing", target=target, folds=2).fit(train).save(path)
    return path


def _ask(model: str = "mixllm", **mixllm: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "What is 12 times 7?"}],
        "max_tokens": 50,
    }
    if mixllm:
        body["mixllm"] = mixllm
    return body


def test_profile_and_request_targets_set_lam(calibrated: Path, tmp_path: Path) -> None:
    router = Router.load(calibrated)
    backends = {m: upstream_backend(m) for m in router.llms}
    settings = load_settings_text(CONFIG, environ={})
    clock = ManualClock(start=1_764_892_800.0)

    async def go() -> None:
        async with gateway(router, backends, tmp_path, settings, clock=clock) as (app, http):
            thrifty = await http.post("/v1/chat/completions", json=_ask("thrifty"))
            assert thrifty.status_code == 200, thrifty.text
            want = router.lam_for(parse_target("cost_share", 0.3))
            assert thrifty.json()["mixllm"]["lam"] == pytest.approx(want)
            own = await http.post("/v1/chat/completions", json=_ask(strong_share=0.2))
            want = router.lam_for(parse_target("strong_share", 0.2))
            assert own.json()["mixllm"]["lam"] == pytest.approx(want)
            # a request's own target wins over its profile's
            both = await http.post("/v1/chat/completions", json=_ask("thrifty", cost_share=0.9))
            want = router.lam_for(parse_target("cost_share", 0.9))
            assert both.json()["mixllm"]["lam"] == pytest.approx(want)
            # the pacer of a profile with a target starts from the target's λ
            pacer = app.state.gateway.pacing.pacers["profile:steady"]
            assert pacer.lam == pytest.approx(router.lam_for(parse_target("strong_share", 0.5)))
            steady = await http.post("/v1/chat/completions", json=_ask("steady"))
            assert steady.json()["mixllm"]["lam"] == pytest.approx(pacer.lam)
            for body, named in [
                (_ask(cost_share=1.5), "cost_share=1.5"),
                (_ask(budget_per_query=0), "budget_per_query=0"),
                (_ask(cost_share=0.3, strong_share=0.3), "expected at most one"),
                (_ask(min_quality_share=0.9, confidence=1.0), "confidence=1.0"),
                (_ask(confidence=0.8), "without min_quality_share"),
            ]:
                bad = await http.post("/v1/chat/completions", json=body)
                assert bad.status_code == 400 and named in bad.json()["error"]["message"], body

    run(go)


def test_targets_need_a_calibrated_router(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}

    async def go() -> None:
        async with gateway(router, backends, tmp_path, Settings()) as (_, http):
            r = await http.post("/v1/chat/completions", json=_ask(cost_share=0.3))
            assert r.status_code == 400 and "no calibration" in r.json()["error"]["message"]

    run(go)
    settings = load_settings_text(CONFIG, environ={})
    with Store(":memory:") as store, pytest.raises(ConfigError, match="profile 'thrifty'"):
        create_app(router, backends, store, settings)


def test_a_quality_target_takes_its_horizon_in_profiles_and_requests(
    calibrated: Path, tmp_path: Path
) -> None:
    router = Router.load(calibrated)
    backends = {m: upstream_backend(m) for m in router.llms}
    config = '[profiles.sure]\nmin_quality_share = 0.5\nconfidence = 0.8\nover = "inf"\n'
    settings = load_settings_text(config, environ={})
    long_run = parse_target("min_quality_share", 0.5, 0.8, horizon="inf")
    over_50 = parse_target("min_quality_share", 0.5, 0.8, horizon=50)
    assert router.lam_for(over_50) < router.lam_for(long_run)  # a short horizon costs more

    async def go() -> None:
        async with gateway(router, backends, tmp_path, settings) as (_, http):
            sure = await http.post("/v1/chat/completions", json=_ask("sure"))
            assert sure.status_code == 200, sure.text
            assert sure.json()["mixllm"]["lam"] == pytest.approx(router.lam_for(long_run))
            own = _ask(min_quality_share=0.5, confidence=0.8, over=50)
            r = await http.post("/v1/chat/completions", json=own)
            assert r.json()["mixllm"]["lam"] == pytest.approx(router.lam_for(over_50))
            for body, named in [
                (_ask(min_quality_share=0.5, over=0), "over"),
                (_ask(min_quality_share=0.5, over="never"), "over"),
                (_ask(cost_share=0.5, over=50), "goes with min_quality_share only"),
            ]:
                bad = await http.post("/v1/chat/completions", json=body)
                assert bad.status_code == 400 and named in bad.json()["error"]["message"], body

    run(go)
    with pytest.raises(ConfigError, match="over without min_quality_share"):
        load_settings_text("[profiles.odd]\nover = 100\n", environ={})
