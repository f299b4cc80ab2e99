"""``mixllm simulate pacing`` on the real RouterBench rows: the day's budget kept, hourly
spend within 10% of budget / 24 after the first hour, the router's own choice at each λ."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mixllm.cli import cli
from mixllm.data import Dataset, load_dataset, make_routing_dataset, split_random
from mixllm.errors import ConfigError
from mixllm.policy.pacing import Budget
from mixllm.router import Router
from mixllm.simulate.pacing import PacingDay, _choose, _lines, _plot, _seed_run, _stream, day_run


@pytest.fixture(scope="module")
def fitted(data_dir: Path) -> tuple[Router, Dataset, Dataset]:
    """A router fitted on the first half of the rows, the data and the other half."""
    bench = load_dataset(data_dir / "routerbench" / "routerbench_0shot_subset.csv")
    train, test = split_random(bench, seed=0)
    router = Router("mixllm", embedder="hashing", seed=0).fit(train)
    return router, bench, test


def test_a_paced_day_keeps_its_budget_and_spreads_it(
    fitted: tuple[Router, Dataset, Dataset], tmp_path: Path
) -> None:
    router, bench, test = fitted
    day = PacingDay()
    run = _seed_run(router, bench, test, day, seed=0)
    budget = run["budget_usd"]
    assert run["paced"]["spend"] <= budget + 1e-9 and run["paced"]["refused"] == 0
    hourly = np.array([h["spend"] for h in run["paced"]["hours"]]) / (budget / 24)
    assert np.all(np.abs(hourly[1:] - 1) < 0.10), hourly.round(2).tolist()
    assert run["max_dev_after_first_hour"] == pytest.approx(np.abs(hourly[1:] - 1).max())
    fixed = np.array([h["spend"] for h in run["fixed"]["hours"]]) / (budget / 24)
    assert np.abs(fixed - 1).max() > 0.5  # spend as the traffic comes: what pacing is for
    lams = [h["lam"] for h in run["paced"]["hours"]]
    assert lams[13] > 3 * lams[3]  # busy afternoon, quiet night
    assert run["mbpp_share_in_burst"] > 0.5
    text = "\n".join(_lines([run], day))
    assert "| 0 |" in text and f"{budget:.4f}" in text
    assert _plot(run, tmp_path / "pacing.png").stat().st_size > 1000


def test_each_choice_is_the_routers_own_at_that_lam(
    fitted: tuple[Router, Dataset, Dataset],
) -> None:
    router, bench, test = fitted
    s = _stream(router, bench, test, PacingDay(queries=500), seed=2)
    prompts = [str(p) for p in test.prompts]
    for i in (0, 7, 99):
        for lam in (0.0, 30.0, 3000.0):
            assert router.route(prompts[s.rows[i]], lam=lam).llm == s.llms[_choose(s, i, lam, None)]
    # under a budget too small for anything, every query is refused and nothing is spent
    starved = day_run(s, budget=Budget(usd=float(s.worst.min()) / 2, period="day"), lam=1.0)
    assert starved["spend"] == 0.0 and starved["refused"] == len(s.times)


def test_a_burst_task_the_data_lacks_is_named(tmp_path: Path) -> None:
    ds = make_routing_dataset(n_queries=60, n_llms=3, seed=4)
    rows = [
        {"query_id": str(o.query_id), "prompt": o.prompt, "llm": o.llm, "quality": o.quality,
         "cost_usd": o.cost_usd}
        for o in ds.outcomes() if o.quality is not None
    ]  # fmt: skip
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = ["simulate", "pacing", "--data", str(data), "--report", str(tmp_path / "r"),
            "--embedder", "hashing"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "burst task 'mbpp'" in result.output
    with pytest.raises(ConfigError, match="burst_start=20"):
        PacingDay(burst_start=20, burst_hours=5)
