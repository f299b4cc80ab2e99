"""The matrix-factorisation router: objective gradient and a two-LLM (RouteLLM-style) set."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.policy import MatrixFactorizationPredictor, choose
from mixllm.policy.mf import _objective
from tests.policy.conftest import make_set, split


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.random((6, 2))
    y[2, 0] = np.nan
    dim = 3
    theta = rng.normal(size=dim * 4 + 2 * dim + 2)
    _, grad = _objective(theta, x, y, dim, 0.05)
    eps = 1e-6
    for i in range(len(theta)):
        step = np.zeros_like(theta)
        step[i] = eps
        numeric = (
            _objective(theta + step, x, y, dim, 0.05)[0]
            - _objective(theta - step, x, y, dim, 0.05)[0]
        ) / (2 * eps)
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_strong_weak_pair_routes_by_query() -> None:
    # "strong" is good everywhere, "weak" only on one of two clusters: route there to save cost.
    ds, qb = make_set(400, llms=["weak", "strong"], seed=6)
    quality = np.array(ds.quality)
    quality[:, 1] = (np.random.default_rng(0).random(len(ds)) < 0.9).astype(float)
    ds = replace(ds, quality=quality)
    train, qtrain, test, qtest = split(ds, qb, 300)
    pred = MatrixFactorizationPredictor(seed=2).fit(train, qtrain).predict(qtest)
    weak_good = test.quality[:, 0] == 1
    gap = pred.quality[:, 1] - pred.quality[:, 0]
    assert gap[weak_good].mean() < gap[~weak_good].mean() - 0.3
    assert test.quality[np.arange(len(test)), choose(pred, 0.0)].mean() > 0.8


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"dim": 0}, "dim=0"), ({"alpha": -1.0}, "alpha=-1.0")]
)
def test_bad_parameters_are_reported_at_fit(kwargs: dict[str, object], message: str) -> None:
    ds, qb = make_set(20)
    with pytest.raises(ConfigError, match=message):
        MatrixFactorizationPredictor(**kwargs).fit(ds, qb)  # type: ignore[arg-type]
