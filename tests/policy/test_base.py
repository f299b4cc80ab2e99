"""choose() and lambda_grid(): the one decision rule every router goes through."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.policy import choose, lambda_grid, scores
from mixllm.types import Prediction


def _pred(quality: list[list[float]], cost: list[list[float]], llms: tuple[str, ...]) -> Prediction:
    return Prediction(llms, np.array(quality, dtype=float), np.array(cost, dtype=float))


def test_scores_trade_quality_for_cost() -> None:
    p = _pred([[0.5, 0.9]], [[0.0, 0.2]], ("a", "b"))
    np.testing.assert_allclose(scores(p, 2.0), [[0.5, 0.5]])


def test_ties_go_to_the_cheaper_then_to_the_name() -> None:
    p = _pred([[0.5, 0.9, 0.9]], [[0.0, 0.2, 0.2]], ("c", "b", "a"))
    assert choose(p, 2.0).tolist() == [0]  # all score 0.5: cheapest wins
    q = _pred([[0.7, 0.7, 0.7]], [[0.1, 0.1, 0.1]], ("c", "b", "a"))
    assert choose(q, 1.0).tolist() == [2]  # same score and cost: lowest name
    r = _pred([[0.7, 0.7, 0.7]], [[0.1, 0.1, 0.1]], ("b", "a", "c"))
    assert choose(r, 1.0).tolist() == [1]  # the lowest name, not the first or last column


def test_choose_rejects_an_empty_pool() -> None:
    with pytest.raises(ValueError, match="no LLMs"):
        choose(_pred([[]], [[]], ()), 0.0)


def test_lambda_grid_spans_best_quality_to_cheapest() -> None:
    rng = np.random.default_rng(0)
    p = Prediction(("a", "b", "c"), rng.random((50, 3)), rng.random((50, 3)) * 0.01)
    grid = lambda_grid(p, 8)
    assert len(grid) == 8 and grid[0] == 0.0 and (np.diff(grid) > 0).all()
    best = p.quality.argmax(axis=1)
    assert (choose(p, 0.0) == best).all()
    assert (choose(p, float(grid[-1])) == p.cost_usd.argmin(axis=1)).all()


def test_lambda_grid_edge_cases() -> None:
    flat = _pred([[0.5, 0.5]], [[0.0, 0.0]], ("a", "b"))
    assert lambda_grid(flat, 1).tolist() == [0.0]
    assert len(lambda_grid(flat, 4)) == 4
    with pytest.raises(ValueError, match="n=0"):
        lambda_grid(flat, 0)
