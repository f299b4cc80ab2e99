"""The numpy MLP: gradients, early stopping, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.policy import MLPPredictor, choose
from mixllm.policy.mlp import _init, _loss_grad
from tests.policy.conftest import Split, make_set


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 4))
    y = rng.random((7, 3))
    y[0, 1] = np.nan
    w = _init(4, 5, np.array([0.3, 0.5, 0.7]), rng)
    w[1] += 0.1  # keep ReLUs away from their kink
    _, grads = _loss_grad(x, y, w, 0.1)
    eps = 1e-6
    for a, g in zip(w, grads):
        for idx in [(0,) * a.ndim, tuple(s - 1 for s in a.shape)]:
            a[idx] += eps
            up = _loss_grad(x, y, w, 0.1)[0]
            a[idx] -= 2 * eps
            down = _loss_grad(x, y, w, 0.1)[0]
            a[idx] += eps
            assert g[idx] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-8)


def test_early_stopping_and_seeds(two_clusters: Split) -> None:
    train, qtrain, test, qtest = two_clusters
    predictor = MLPPredictor(hidden=32, max_epochs=500, patience=5).fit(train, qtrain)
    assert predictor.n_epochs_ < 500
    pred = predictor.predict(qtest)
    assert test.quality[np.arange(len(test)), choose(pred, 0.0)].mean() > 0.8
    other = MLPPredictor(hidden=32, max_epochs=500, patience=5, seed=1).fit(train, qtrain)
    assert not np.array_equal(other.predict(qtest).quality, pred.quality)


def test_trains_without_a_hold_out_on_tiny_sets() -> None:
    ds, qb = make_set(12)
    predictor = MLPPredictor(hidden=8, max_epochs=30).fit(ds, qb)
    assert 1 <= predictor.n_epochs_ <= 30


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"hidden": 0}, "hidden=0"), ({"validation_fraction": 1.0}, "validation_fraction=1.0")],
)
def test_bad_parameters_are_reported_at_fit(kwargs: dict[str, object], message: str) -> None:
    ds, qb = make_set(20)
    with pytest.raises(ConfigError, match=message):
        MLPPredictor(**kwargs).fit(ds, qb)  # type: ignore[arg-type]
