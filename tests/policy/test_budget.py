"""The budgeted assignment (mixllm.policy.budget) on generated predictions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mixllm.errors import ConfigError, DataError
from mixllm.policy import choose
from mixllm.policy.budget import BudgetSolver, assign_within_budget, check_budget
from mixllm.types import Prediction


def _pred(n: int, k: int, seed: int, *, rounded: bool = False) -> Prediction:
    rng = np.random.default_rng(seed)
    q = rng.random((n, k))
    c = rng.random((n, k)) * np.arange(1, k + 1) / 100
    if rounded:  # ties and collinear points
        q, c = np.round(q, 1), np.round(c, 2)
    return Prediction(tuple(f"m{j}" for j in range(k)), q, c)


def _totals(p: Prediction, choice: np.ndarray) -> tuple[float, float]:
    rows = np.arange(len(choice))
    return math.fsum(p.cost_usd[rows, choice]), math.fsum(p.quality[rows, choice])


def _brute_force(p: Prediction, budget: float) -> float:
    n, k = p.quality.shape
    rows = np.arange(n)
    best = -math.inf
    for a in itertools.product(range(k), repeat=n):
        cols = np.array(a)
        if math.fsum(p.cost_usd[rows, cols]) <= budget:
            best = max(best, float(p.quality[rows, cols].sum()))
    return best


def test_near_optimal_on_tiny_instances() -> None:
    """Against brute force: never more than one query's quality range below the optimum (the
    gap of the linear relaxation), and exactly optimal in most cases."""
    exact = cases = 0
    for seed in range(60):
        p = _pred(1 + seed % 5, 1 + seed % 3, seed, rounded=seed % 2 == 0)
        solver = BudgetSolver(p)
        spread = float((p.quality.max(axis=1) - p.quality.min(axis=1)).max())
        for budget in np.linspace(solver.min_spend_usd, solver.max_spend_usd * 1.1, 6):
            spend, quality = _totals(p, solver.assign(float(budget)))
            best = _brute_force(p, float(budget))
            assert spend <= budget
            assert quality <= best + 1e-9
            assert best - quality <= spread + 1e-9
            exact += best - quality < 1e-9
            cases += 1
    assert exact / cases >= 0.9


@pytest.mark.parametrize("seed", range(4))
def test_spend_within_budget_and_quality_monotone(seed: int) -> None:
    p = _pred(300, 6, seed, rounded=seed % 2 == 1)
    solver = BudgetSolver(p)
    budgets = np.linspace(solver.min_spend_usd, solver.max_spend_usd, 25)
    totals = [_totals(p, solver.assign(float(b))) for b in budgets]
    assert all(spend <= b for (spend, _), b in zip(totals, budgets))
    qualities = [q for _, q in totals]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(qualities))
    # At the top, the best predicted quality of every query; at the bottom, the cheapest.
    assert qualities[-1] == pytest.approx(p.quality.max(axis=1).sum())
    assert totals[0][0] == pytest.approx(p.cost_usd.min(axis=1).sum())


def test_beats_per_query_lambda_at_the_same_spend() -> None:
    """The λ rule is itself a feasible assignment: at its spend, the solver does at least as
    well (both read the same predictions)."""
    p = _pred(400, 5, 7)
    solver = BudgetSolver(p)
    for lam in (1.0, 10.0, 30.0, 100.0):
        spend, quality = _totals(p, choose(p, lam))
        got_spend, got_quality = _totals(p, solver.assign(spend))
        assert got_spend <= spend
        assert got_quality >= quality - 1e-9


def test_front_matches_assign() -> None:
    p = _pred(50, 4, 3)
    solver = BudgetSolver(p)
    budgets = [solver.min_spend_usd, 0.5 * (solver.min_spend_usd + solver.max_spend_usd)]
    for (cost, quality, cols), b in zip(solver.front(budgets), budgets):
        assert (cols == solver.assign(b)).all()
        assert (cost, quality) == pytest.approx(_totals(p, cols))


def test_candidates_respected() -> None:
    p = _pred(100, 5, 11)
    cols = assign_within_budget(p, math.inf, candidates=["m1", "m3"])
    assert set(cols.tolist()) <= {1, 3}
    sub = p.quality[:, [1, 3]]
    assert (p.quality[np.arange(100), cols] == sub.max(axis=1)).all()


def test_ties_go_to_the_cheaper_llm() -> None:
    p = Prediction(("a", "b"), np.array([[0.5, 0.5]]), np.array([[0.02, 0.01]]))
    assert assign_within_budget(p, math.inf).tolist() == [1]


def test_budget_below_cheapest_names_both_numbers() -> None:
    p = Prediction(("a", "b"), np.array([[0.2, 0.9]] * 3), np.array([[0.01, 0.05]] * 3))
    with pytest.raises(ConfigError, match=r"budget_usd=0\.02 is below \$0\.03"):
        assign_within_budget(p, 0.02)
    assert assign_within_budget(p, 0.03).tolist() == [0, 0, 0]


@pytest.mark.parametrize("bad", [-1.0, math.nan, "10", None, True])
def test_bad_budget(bad: object) -> None:
    with pytest.raises(ConfigError, match="expected a number >= 0"):
        check_budget(bad)


def test_non_finite_predictions_refused() -> None:
    p = Prediction(("a",), np.array([[math.nan]]), np.array([[0.1]]))
    with pytest.raises(DataError, match="NaN"):
        BudgetSolver(p)
