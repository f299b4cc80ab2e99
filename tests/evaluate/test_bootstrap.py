"""Bootstrap intervals: enough resamples, deterministic for a seed, around the point estimate."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.evaluate.bootstrap import (
    MIN_RESAMPLES,
    bootstrap_frontier,
    interval,
    resample_counts,
)
from mixllm.evaluate.metrics import Yardstick, frontier_metrics

YARD = Yardstick(0.4, 1e-4, 0.9, 1e-3)


def _sweep(n: int = 300, n_lam: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A router that buys quality with cost: run l calls the pricey LLM on a share l/(n_lam-1)."""
    rng = np.random.default_rng(seed)
    weak = (rng.random(n) < 0.4).astype(float)
    strong = np.maximum(weak, (rng.random(n) < 0.85).astype(float))
    order = np.argsort(weak - strong + 0.01 * rng.random(n))  # biggest gain first
    quality, cost = np.tile(weak, (n_lam, 1)), np.full((n_lam, n), 1e-4)
    for lam in range(n_lam):
        top = order[: round(n * lam / (n_lam - 1))]
        quality[lam, top], cost[lam, top] = strong[top], 1e-3
    return quality, cost


def test_too_few_resamples_are_rejected() -> None:
    with pytest.raises(ConfigError, match="at least 200"):
        resample_counts(10, MIN_RESAMPLES - 1, seed=0)
    with pytest.raises(ConfigError, match="0 test queries"):
        resample_counts(0, 500, seed=0)


def test_resample_counts_draw_n_queries_per_row_and_follow_the_seed() -> None:
    a, b, c = (resample_counts(50, 300, seed=s) for s in (7, 7, 8))
    assert a.shape == (300, 50)
    assert (a.sum(axis=1) == 50).all()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_interval_is_a_percentile_range_of_defined_values() -> None:
    assert interval([3.0] * 10) == (3.0, 3.0)
    assert interval([None, None]) == (None, None)
    lo, hi = interval([None, *[float(i) for i in range(101)]])
    assert (lo, hi) == pytest.approx((2.5, 97.5))


def test_intervals_contain_the_point_estimate_and_repeat_for_a_seed() -> None:
    quality, cost = _sweep()
    point = frontier_metrics(cost.mean(axis=1), quality.mean(axis=1), YARD)
    counts = resample_counts(quality.shape[1], 400, seed=1)
    boots = bootstrap_frontier(quality, cost, YARD, counts)
    assert len(boots) == 400
    lo, hi = interval([b.aiq for b in boots])
    assert lo is not None and hi is not None
    assert lo <= point.aiq <= hi
    assert hi - lo < 0.2
    for k, value in enumerate(point.quality_at_budget_pct):
        lo_k, hi_k = interval([b.quality_at_budget_pct[k] for b in boots])
        assert value is not None and lo_k is not None and hi_k is not None
        assert lo_k <= value <= hi_k
    lo_a, hi_a = interval([b.apgr for b in boots])
    assert lo_a is not None and hi_a is not None and point.apgr is not None
    assert lo_a <= point.apgr <= hi_a
    again = bootstrap_frontier(quality, cost, YARD, resample_counts(quality.shape[1], 400, seed=1))
    assert again == boots


def test_missing_quality_counts_as_zero_in_resamples() -> None:
    quality = np.array([[1.0, np.nan, 1.0, np.nan]])
    cost = np.full((1, 4), 1e-4)
    counts = resample_counts(4, MIN_RESAMPLES, seed=0)
    boots = bootstrap_frontier(quality, cost, Yardstick(0.5, 1e-4, 1.0, 1e-4), counts)
    expected = counts @ np.array([1.0, 0.0, 1.0, 0.0]) / 4
    assert [b.aiq for b in boots] == pytest.approx(expected.tolist())


def test_two_llm_shares_and_shape_errors() -> None:
    quality, cost = _sweep(n=100, n_lam=5)
    strong = cost > 5e-4
    counts = resample_counts(100, MIN_RESAMPLES, seed=0)
    boots = bootstrap_frontier(quality, cost, YARD, counts, strong_chosen=strong)
    assert all(b.apgr is not None and b.apgr >= 0.5 - 1e-9 for b in boots)
    with pytest.raises(ValueError, match="disagree"):
        bootstrap_frontier(quality[:, :50], cost[:, :50], YARD, counts)
