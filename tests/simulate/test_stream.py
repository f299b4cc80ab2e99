"""run_stream and the scenarios: deterministic runs, queues and τ, feedback timing, pool events,
reports that are the same bytes for the same seed."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mixllm import Router
from mixllm.cli import cli
from mixllm.data import Dataset, make_routing_dataset, split_random
from mixllm.embed import make_embedder
from mixllm.errors import ConfigError
from mixllm.simulate import FixedRate, Poisson, Service
from mixllm.simulate.experiments import AWARE, REFERENCE, latency_runs
from mixllm.simulate.run import SimSpec, run_simulation
from mixllm.simulate.stream import PoolEvent, StreamConfig, run_stream
from mixllm.types import LLM


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    ds = make_routing_dataset(n_queries=500, n_llms=4, seed=5, with_tasks=True)
    return split_random(ds, seed=0)


def _router(train: Dataset, **kwargs: float) -> Router:
    return Router("mixllm", embedder="hashing", **kwargs).fit(train)  # type: ignore[arg-type]


def test_the_same_seed_gives_the_same_steps(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    config = StreamConfig(lam=50.0, arrivals=Poisson(2.0), feedback="refined", seed=3)
    a = run_stream(_router(train, alpha=0.2), test, config)
    b = run_stream(_router(train, alpha=0.2), test, config)
    assert [(s.llm, s.arrival_s, s.wait_s) for s in a] == [
        (s.llm, s.arrival_s, s.wait_s) for s in b
    ]
    c = run_stream(_router(train, alpha=0.2), test, replace(config, seed=4))
    assert [s.arrival_s for s in c] != [s.arrival_s for s in a]
    assert all(s.regret >= -1e-12 for s in a)  # nothing beats the per-query oracle


def test_a_query_waiting_past_tau_fails_and_the_penalty_avoids_it(
    data: tuple[Dataset, Dataset],
) -> None:
    train, test = data
    blind = _router(train)
    busiest = max(set(s := [d.llm for d in blind.route_many(list(map(str, test.prompts)))]),
                  key=s.count)  # fmt: skip
    services = {busiest: Service(ttft_s=1.0, tokens_per_s=5.0, concurrency=1)}
    config = StreamConfig(
        lam=0.0, arrivals=FixedRate(batch=20, every_s=1.0), tau_s=10.0, feedback="none",
        services=services, default_service=Service(concurrency=64),
    )  # fmt: skip
    steps = run_stream(blind, test, config)
    failed = [s for s in steps if s.timed_out]
    assert len(failed) > 0.1 * len(steps)
    assert all(s.quality == 0 and s.cost_usd == 0 and s.llm == busiest for s in failed)
    aware = run_stream(_router(train, beta=1.0, tau_s=10.0), test, config)
    assert sum(s.timed_out for s in aware) < 0.01 * len(aware)
    # With only what a gateway sees (starts, finishes, latencies) the estimate still helps.
    observed = run_stream(
        _router(train, beta=1.0, tau_s=10.0), test, replace(config, waits="observed")
    )
    assert sum(s.timed_out for s in observed) < len(failed) / 2


def test_feedback_is_applied_only_once_the_answer_is_complete(
    data: tuple[Dataset, Dataset],
) -> None:
    train, test = data
    base = StreamConfig(lam=50.0, arrivals=FixedRate(batch=10, every_s=1.0), seed=1)
    offline = run_stream(_router(train, alpha=0.3), test, replace(base, feedback="none"))
    # Feedback that arrives after the stream has ended cannot change any decision.
    late = run_stream(
        _router(train, alpha=0.3), test, replace(base, feedback="refined", feedback_delay_s=1e6)
    )
    assert [s.llm for s in late] == [s.llm for s in offline]
    online = run_stream(_router(train, alpha=0.3), test, replace(base, feedback="refined"))
    assert [s.llm for s in online] != [s.llm for s in offline]


def test_pool_events_add_and_remove_llms_mid_stream(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    newcomer = train.llms[-1]
    router = _router(train.select_llms(train.llms[:-1]), alpha=0.3)
    gone = train.llms[0]
    price = train.llm(newcomer)
    events = (
        PoolEvent(at=20, add=LLM(newcomer, price.price_in_per_mtok, price.price_out_per_mtok)),
        PoolEvent(at=40, remove=gone),
    )
    config = StreamConfig(lam=10.0, arrivals=Poisson(5.0), feedback="refined", events=events)
    steps = run_stream(router, test, config)
    assert all(s.llm != newcomer for s in steps[:20])
    assert any(s.llm == newcomer for s in steps[20:])
    assert all(s.llm != gone for s in steps[40:])
    assert set(router.llms) == (set(train.llms) - {gone})
    with pytest.raises(ConfigError, match="exactly one"):
        PoolEvent(at=1)


def test_stream_config_checks() -> None:
    with pytest.raises(ConfigError, match="feedback='maybe'"):
        StreamConfig(feedback="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tau_s=0"):
        StreamConfig(tau_s=0)
    with pytest.raises(ConfigError, match="waits='guessed'"):
        StreamConfig(waits="guessed")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scenario 'x'"):
        SimSpec(scenario="x")


@pytest.mark.parametrize("scenario", ["ood", "latency", "pool"])
def test_reports_are_the_same_bytes_for_the_same_seed(
    scenario: str, tmp_path: Path, data: tuple[Dataset, Dataset]
) -> None:
    ds = make_routing_dataset(n_queries=240, n_llms=3, n_topics=3, seed=2, with_tasks=True)
    spec = SimSpec(scenario=scenario, seeds=(0, 1), lam=50.0, embedder="hashing", window=30,
                   join_at=20, rate_per_s=4.0)  # fmt: skip
    if scenario == "ood":
        spec = replace(spec, tasks=(ds.task_names[0],))
    text, paths = run_simulation(ds, spec, tmp_path / "a")
    again, paths_b = run_simulation(ds, spec, tmp_path / "b")
    assert text == again
    for p, q in zip(paths, paths_b):
        assert p.read_bytes() == q.read_bytes(), p.name
    assert {p.suffix for p in paths} == {".md", ".json", ".png"}
    assert "[" in text and not math.isnan(len(text))  # intervals over the two seeds


def test_simulate_cli(tmp_path: Path) -> None:
    ds = make_routing_dataset(n_queries=200, n_llms=3, seed=4)
    data = tmp_path / "data.jsonl"
    rows = [
        {"query_id": str(o.query_id), "prompt": o.prompt, "llm": o.llm, "quality": o.quality,
         "cost_usd": o.cost_usd}
        for o in ds.outcomes() if o.quality is not None
    ]  # fmt: skip
    import json

    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = ["simulate", "latency", "--data", str(data), "--report", str(tmp_path / "r"),
            "--seeds", "0", "--embedder", "hashing", "--rate", "3"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.json").is_file()
    bad = CliRunner().invoke(cli, [*args[:-6], "--seeds", "a,b"])
    assert bad.exit_code == 2 and "'a,b'" in bad.output
    nope = CliRunner().invoke(cli, ["simulate", "ood", "--data", str(data), "--report",
                                    str(tmp_path / "o"), "--embedder", "hashing"])  # fmt: skip
    assert nope.exit_code == 2 and "task label" in nope.output


def test_a_stream_without_outcomes_for_a_routable_llm_is_refused(
    data: tuple[Dataset, Dataset],
) -> None:
    train, test = data
    router = _router(train)
    config = StreamConfig(events=(PoolEvent(at=5, add=LLM("ghost/model", 1.0, 1.0)),))
    with pytest.raises(ConfigError, match="ghost/model"):
        run_stream(router, test, config)
    with pytest.raises(ConfigError, match=train.llms[0]):
        run_stream(router, test.select_llms(train.llms[1:]), StreamConfig())


@pytest.mark.parametrize("waits", ["exact", "observed"])
def test_the_tracker_learns_how_long_answers_take_from_the_stream(
    waits: str, data: tuple[Dataset, Dataset]
) -> None:
    train, test = data
    router = _router(train)
    service = Service(ttft_s=0.5, tokens_per_s=20.0, concurrency=64)  # nothing queues
    config = StreamConfig(lam=0.0, arrivals=Poisson(5.0), feedback="none", default_service=service,
                          waits=waits)  # type: ignore[arg-type]  # fmt: skip
    steps = run_stream(router, test, config)
    assert router.load_tracker is not None
    used = max(set(s.llm for s in steps), key=[s.llm for s in steps].count)
    w = router.load_tracker.service_weights([used], np.array([[0.0], [20.0], [200.0]]))[:, 0]
    # With no queue, latency = service = 0.5 s + tokens / 20: the fit finds both parts.
    assert w[1] / w[0] == pytest.approx(1.5 / 0.5, rel=1e-6)
    assert w[2] / w[0] == pytest.approx(10.5 / 0.5, rel=1e-6)


def test_latency_runs_mix_the_stream_order_unless_asked_not_to(
    data: tuple[Dataset, Dataset],
) -> None:
    train, test = data[0], data[1].subset(np.arange(60))
    services = {m: Service(ttft_s=0.2, tokens_per_s=100.0, concurrency=2) for m in train.llms}
    kwargs = {"seed": 0, "lam": 50.0, "embedder": make_embedder("hashing"), "rate_per_s": 3.0,
              "services": services, "tau_s": 5.0, "beta": 0.2}  # fmt: skip
    given = latency_runs(train, test, order="as given", **kwargs)  # type: ignore[arg-type]
    mixed = latency_runs(train, test, order="mixed", **kwargs)  # type: ignore[arg-type]
    assert [s.query_id for s in given[AWARE]] == [str(q) for q in test.query_ids]
    ids = [s.query_id for s in mixed[AWARE]]
    assert ids != [str(q) for q in test.query_ids] and sorted(ids) == sorted(
        map(str, test.query_ids)
    )
    assert set(mixed) == set(given) and REFERENCE in mixed
    with pytest.raises(ConfigError, match="order='sorted'"):
        latency_runs(train, test, order="sorted", **kwargs)  # type: ignore[arg-type]
