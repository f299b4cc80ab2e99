"""Numeric helpers the learned quality models share: standardising features, the logistic link
and the masked soft-label log loss (missing outcomes are NaN and simply do not count)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["column_means", "masked_log_loss", "sigmoid", "standardize", "standardize_fit"]

FloatArray = NDArray[np.float64]


def column_means(a: NDArray[np.floating], default: float = float("nan")) -> FloatArray:
    """Mean of each column over its finite values; ``default`` where a column has none.

    >>> column_means(np.array([[1.0, np.nan], [3.0, np.nan]]), 0.0).tolist()
    [2.0, 0.0]
    """
    seen = np.isfinite(a)
    total = np.where(seen, a, 0.0).sum(axis=0)
    out: FloatArray = np.where(
        seen.any(axis=0), total / np.maximum(seen.sum(axis=0), 1), default
    ).astype(np.float64)
    return out


def standardize_fit(x: NDArray[np.floating]) -> tuple[FloatArray, FloatArray]:
    """Column mean and scale of ``x`` (scale 1 where a column is constant).

    >>> mean, scale = standardize_fit(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> mean.tolist(), scale.tolist()
    ([1.0, 1.0], [1.0, 1.0])
    """
    x64 = np.asarray(x, dtype=np.float64)
    mean = x64.mean(axis=0)
    scale = x64.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return mean, scale


def standardize(x: NDArray[np.floating], mean: FloatArray, scale: FloatArray) -> FloatArray:
    """``(x - mean) / scale`` in float64."""
    out: FloatArray = (np.asarray(x, dtype=np.float64) - mean) / scale
    return out


def sigmoid(z: FloatArray) -> FloatArray:
    """The logistic function, without overflow warnings for large ``|z|``.

    >>> sigmoid(np.array([0.0, 1000.0, -1000.0])).tolist()
    [0.5, 1.0, 0.0]
    """
    out: FloatArray = np.exp(-np.logaddexp(0.0, -z))
    return out


def masked_log_loss(logits: FloatArray, targets: FloatArray) -> tuple[float, FloatArray]:
    """Mean cross-entropy of ``sigmoid(logits)`` against soft targets in [0, 1], over the
    cells where ``targets`` is not NaN, and its gradient with respect to ``logits``.

    >>> loss, grad = masked_log_loss(np.zeros((1, 2)), np.array([[1.0, np.nan]]))
    >>> round(loss, 4), grad.tolist()
    (0.6931, [[-0.5, 0.0]])
    """
    observed = ~np.isnan(targets)
    n_obs = max(int(observed.sum()), 1)
    y = np.where(observed, targets, 0.0)
    cell = np.logaddexp(0.0, logits) - y * logits
    loss = float(np.where(observed, cell, 0.0).sum() / n_obs)
    grad: FloatArray = np.where(observed, sigmoid(logits) - y, 0.0) / n_obs
    return loss, grad
