"""The metrics of docs/metrics.md against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import DataError
from mixllm.evaluate.metrics import (
    Yardstick,
    aiq,
    apgr,
    cost_to_match_pct,
    cost_to_reach,
    frontier_metrics,
    hull_quality_at,
    quality_at_budget_pct,
    run_metrics,
    share_hull,
    upper_hull,
)

NAN = float("nan")


def test_run_metrics_counts_missing_as_zero() -> None:
    m = run_metrics([1.0, NAN, 0.5, NAN], [0.1, 0.2, 0.3, 0.4])
    assert m.quality == pytest.approx(0.375)
    assert m.cost_usd == pytest.approx(0.25)
    assert m.n_missing == 2


def test_run_metrics_rejects_missing_cost_and_bad_shapes() -> None:
    with pytest.raises(DataError, match="1 chosen costs are missing"):
        run_metrics([1.0, 0.0], [0.1, NAN])
    with pytest.raises(ValueError, match="equal-length"):
        run_metrics([1.0], [0.1, 0.2])


def test_upper_hull_of_a_few_points() -> None:
    costs = [1.0, 2.0, 3.0, 4.0, 2.0, 1.5]
    quals = [0.2, 0.6, 0.7, 0.65, 0.5, 0.3]
    hull = upper_hull(costs, quals)
    # (1.5, .3) and (2, .5) lie under the hull; (4, .65) costs more for less and is cut.
    assert hull.costs.tolist() == [1.0, 2.0, 3.0]
    assert hull.qualities.tolist() == [0.2, 0.6, 0.7]


def test_upper_hull_drops_collinear_and_equal_cost_points() -> None:
    hull = upper_hull([1.0, 2.0, 3.0, 3.0], [0.0, 0.5, 1.0, 0.2])
    assert hull.costs.tolist() == [1.0, 3.0]
    assert hull.qualities.tolist() == [0.0, 1.0]
    flat = upper_hull([1.0, 2.0], [0.5, 0.5])  # equal quality: the cheaper point only
    assert flat.costs.tolist() == [1.0]
    one = upper_hull([2.0, 2.0], [0.3, 0.3])
    assert (one.costs.tolist(), one.qualities.tolist()) == ([2.0], [0.3])


def test_upper_hull_is_a_concave_non_decreasing_cover_of_the_points() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        c, q = rng.random(12), rng.random(12)
        hull = upper_hull(c, q)
        assert np.all(np.diff(hull.costs) > 0)
        assert np.all(np.diff(hull.qualities) >= 0)
        slopes = np.diff(hull.qualities) / np.diff(hull.costs)
        assert np.all(np.diff(slopes) <= 1e-12)  # concave
        for x, y in zip(c, q):
            assert hull_quality_at(hull, x) >= y - 1e-12
        assert set(zip(hull.costs.tolist(), hull.qualities.tolist())) <= set(zip(c, q))


def test_upper_hull_rejects_empty_or_nan() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        upper_hull([], [])
    with pytest.raises(ValueError, match="finite"):
        upper_hull([1.0], [NAN])


def test_hull_quality_below_between_and_past_the_points() -> None:
    hull = upper_hull([2.0, 4.0], [0.4, 0.8])
    assert hull_quality_at(hull, 1.999) == 0.0  # below the router's cheapest point
    assert hull_quality_at(hull, 2.0) == pytest.approx(0.4)
    assert hull_quality_at(hull, 3.0) == pytest.approx(0.6)
    assert hull_quality_at(hull, 4.0) == pytest.approx(0.8)
    assert hull_quality_at(hull, 100.0) == pytest.approx(0.8)  # flat past the last point


def test_aiq_of_a_known_piecewise_function() -> None:
    hull = upper_hull([2.0, 4.0], [0.4, 0.8])
    # [1, 2): 0; [2, 4]: mean 0.6 over width 2; [4, 5]: 0.8 -> (0 + 1.2 + 0.8) / 4
    assert aiq(hull, 1.0, 5.0) == pytest.approx(0.5)
    assert aiq(hull, 2.0, 4.0) == pytest.approx(0.6)
    assert aiq(hull, 0.0, 1.0) == 0.0  # all below the cheapest point
    assert aiq(hull, 5.0, 9.0) == pytest.approx(0.8)  # all past the last point
    assert aiq(hull, 3.0, 3.0) == pytest.approx(0.6)  # zero width: the value there
    with pytest.raises(ValueError, match="reversed"):
        aiq(hull, 2.0, 1.0)


def test_aiq_is_exact_not_sampled() -> None:
    hull = upper_hull([1.0, 1.3, 2.9, 7.0], [0.1, 0.5, 0.8, 0.9])
    # 0 on [.5, 1); trapezoids .3 x .3 + 1.6 x .65 + 4.1 x .85; then 1 x .9 -> 5.515 over 7.5
    assert aiq(hull, 0.5, 8.0) == pytest.approx(5.515 / 7.5, abs=1e-12)
    sampled = np.mean([hull_quality_at(hull, x) for x in np.linspace(0.5, 8.0, 20_001)])
    assert aiq(hull, 0.5, 8.0) == pytest.approx(float(sampled), abs=1e-3)


YARD = Yardstick(
    cheapest_quality=0.4, cheapest_cost_usd=1.0, reference_quality=0.8, reference_cost_usd=10.0
)


def test_quality_at_budget_interpolates_as_percent_of_reference() -> None:
    hull = upper_hull([1.0, 5.0], [0.4, 0.8])
    assert quality_at_budget_pct(hull, YARD, 10.0) == pytest.approx(50.0)  # cost 1: 0.4
    assert quality_at_budget_pct(hull, YARD, 20.0) == pytest.approx(62.5)  # cost 2: 0.5
    assert quality_at_budget_pct(hull, YARD, 50.0) == pytest.approx(100.0)
    assert quality_at_budget_pct(upper_hull([3.0], [0.8]), YARD, 20.0) == 0.0


def test_cost_to_match_interpolates_or_says_never() -> None:
    assert cost_to_match_pct(upper_hull([1.0, 5.0], [0.4, 0.8]), YARD) == pytest.approx(50.0)
    # reaches 0.8 on the segment (1, .4)-(5, .9): 1 + 4 x 0.4 / 0.5 = 4.2
    assert cost_to_match_pct(upper_hull([1.0, 5.0], [0.4, 0.9]), YARD) == pytest.approx(42.0)
    assert cost_to_match_pct(upper_hull([1.0, 5.0], [0.4, 0.7]), YARD) is None
    assert cost_to_reach(upper_hull([2.0], [0.9]), 0.5) == 2.0


def test_apgr_of_linear_interpolation_is_one_half() -> None:
    line = upper_hull([1.0, 10.0], [0.4, 0.8])  # mixing cheapest and reference
    assert apgr(line, YARD) == pytest.approx(0.5)
    shares = np.linspace(0.0, 1.0, 11)
    assert apgr(line, YARD, shares=share_hull(shares, 0.4 + 0.4 * shares, YARD)) == pytest.approx(
        0.5
    )


def test_apgr_of_an_oracle_like_router_exceeds_one_half() -> None:
    good = upper_hull([1.0, 2.0, 10.0], [0.4, 0.75, 0.8])
    assert apgr(good, YARD) is not None
    assert apgr(good, YARD) > 0.5  # type: ignore[operator]
    shares = share_hull([0.2, 0.5], [0.7, 0.8], YARD)
    # hull (0,.4) (.2,.7) (.5,.8), flat to 1: area .11 + .225 + .4 = .735 -> (.735-.4)/.4
    assert apgr(good, YARD, shares=shares) == pytest.approx(0.8375)


def test_apgr_share_axis_is_completed_by_all_weak_and_all_strong() -> None:
    # a router worse than mixing: the hull of the two trivial policies is the floor
    assert apgr(upper_hull([5.0], [0.5]), YARD, shares=share_hull([0.5], [0.5], YARD)) == (
        pytest.approx(0.5)
    )
    same = Yardstick(0.8, 1.0, 0.8, 10.0)
    assert apgr(upper_hull([1.0], [0.8]), same) is None


def test_frontier_metrics_combines_the_parts() -> None:
    m = frontier_metrics([1.0, 5.0, 7.0], [0.4, 0.8, 0.7], YARD, budgets_pct=(10.0, 20.0))
    hull = upper_hull([1.0, 5.0], [0.4, 0.8])
    assert m.aiq == pytest.approx(aiq(hull, 1.0, 10.0))
    assert m.quality_at_budget_pct == pytest.approx((50.0, 62.5))
    assert m.cost_to_match_pct == pytest.approx(50.0)
    assert m.apgr == pytest.approx((m.aiq - 0.4) / 0.4)
