"""Standardising, the logistic link and the masked log loss."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.predict.features import masked_log_loss, sigmoid, standardize, standardize_fit


def test_standardize_handles_constant_columns() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    mean, scale = standardize_fit(x)
    np.testing.assert_allclose(standardize(x, mean, scale), [[-1.0, 0.0], [1.0, 0.0]])


def test_sigmoid_is_stable() -> None:
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = sigmoid(np.array([-1e4, 0.0, 1e4]))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])


def test_masked_log_loss_gradient() -> None:
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(4, 3)), rng.random((4, 3))
    y[1, 2] = np.nan
    _, grad = masked_log_loss(z, y)
    assert grad[1, 2] == 0.0
    eps = 1e-6
    for idx in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[idx] = eps
        numeric = (masked_log_loss(z + step, y)[0] - masked_log_loss(z - step, y)[0]) / (2 * eps)
        assert grad[idx] == pytest.approx(numeric, rel=1e-5, abs=1e-9)
    assert masked_log_loss(z, np.full((4, 3), np.nan)) == (0.0, pytest.approx(np.zeros((4, 3))))
