"""An empty AIQ range is said (report files and context), and quality at λ = 0 with its gain
over the best single LLM is measured for every router."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.split import split_random
from mixllm.evaluate import Report, evaluate, write_report
from tests.evaluate.fakes import FakeEmbedder, make_three


def _evaluate(ds: Dataset) -> Report:
    train, test = split_random(ds, seed=0)
    return evaluate(
        train, test, routers=["oracle", "knn"], embedder=FakeEmbedder(), n_lams=5, n_boot=200
    )


def _with_costs(per_llm: list[float], n: int = 60) -> Dataset:
    ds = make_three(n)
    return replace(ds, cost_usd=np.tile(per_llm, (n, 1)))


@pytest.fixture(scope="module")
def normal() -> Report:
    return _evaluate(make_three(60))


def test_no_warning_when_the_range_is_wide(normal: Report) -> None:
    assert normal.context.warnings == ()
    assert normal.context.best_single == "ref"


def test_quality_at_lam0_and_gain_over_the_best_single_llm(normal: Report) -> None:
    best = normal.row("single:ref")
    assert best.quality_at_lam0.value == pytest.approx(normal.context.best_single_quality)
    assert best.gain_over_best_single.value == pytest.approx(0.0, abs=1e-12)
    assert best.gain_over_best_single.low == pytest.approx(0.0, abs=1e-12)
    cheap = normal.row("single:cheap")
    assert cheap.gain_over_best_single.value == pytest.approx(
        cheap.quality_at_lam0.value - normal.context.best_single_quality
    )
    oracle = normal.row("oracle")  # picks a correct LLM whenever one exists
    assert oracle.gain_over_best_single.value > 0
    low = oracle.gain_over_best_single.low
    assert low is not None and low >= 0.0  # never below the best LLM on any query
    assert oracle.quality_at_lam0.value == pytest.approx(oracle.max_quality)


def test_equal_prices_are_warned_and_written(tmp_path: Path) -> None:
    report = _evaluate(_with_costs([2e-4, 2e-4, 2e-4]))
    (warning,) = report.context.warnings
    assert "every LLM costs the same ($0.000200 per query)" in warning
    assert "quality at λ = 0" in warning and "(ref)" in warning
    write_report(report, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert f"**Warning:** {warning}" in md
    assert "## Best quality (λ = 0)" in md
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["context"]["warnings"] == [warning]
    assert data["context"]["best_single"]["llm"] == "ref"
    oracle = next(r for r in data["routers"] if r["name"] == "oracle")
    assert oracle["gain_over_best_single"]["value"] > 0


def test_best_llm_that_is_also_the_cheapest_is_warned() -> None:
    report = _evaluate(_with_costs([3e-4, 2e-4, 1e-4]))
    (warning,) = report.context.warnings
    assert "the reference LLM ref is also the cheapest" in warning
