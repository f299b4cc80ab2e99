"""Lower confidence bounds on a mean from bounded i.i.d. draws, for the quality target of
:mod:`mixllm.policy.calibration`: the empirical Bernstein bound on the expected value (the long
run), and a bound on the mean of a given number of future draws."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["bernstein_lower_bound", "horizon_lower_bound"]

FloatArray = NDArray[np.float64]


def bernstein_lower_bound(
    mean: FloatArray, var: FloatArray, n: FloatArray, span: float, delta: float
) -> FloatArray:
    """Empirical Bernstein lower bound on E[X] for ``n`` i.i.d. draws of X in a range of width
    ``span`` with sample ``mean`` and unbiased variance ``var``: it holds with probability at
    least 1 − ``delta`` (Maurer & Pontil, 2009, theorem 4). ``-inf`` where n < 2.

    >>> b = bernstein_lower_bound(np.array([0.5]), np.array([0.25]), np.array([1000.0]), 1.0, 0.1)
    >>> bool(0.4 < b[0] < 0.5)
    True
    """
    log = math.log(2 / delta)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(2 * np.maximum(var, 0.0) * log / n) + 7 * span * log / (3 * (n - 1))
    return np.where(n >= 2, mean - width, -np.inf)


def horizon_lower_bound(
    mean: FloatArray,
    var: FloatArray,
    n: FloatArray,
    bounds: tuple[float, float],
    delta: float,
    horizon: int,
) -> FloatArray:
    """A lower bound on the mean of ``horizon`` future draws of X, from ``n`` past ones with
    sample ``mean`` and unbiased variance ``var``, X within ``bounds`` = (a, b): the future mean
    is at least the bound with probability at least 1 − ``delta``. ``-inf`` where n < 2.

    Assumptions: the n + ``horizon`` draws are i.i.d. With R = b − a, δ split δ/4 + δ/4 + δ/2:

    1. σ² ≤ E[X²] ≤ σ̄², by Bernstein's inequality on X² in [0, max(a², b²)] (whose variance
       is at most max(a², b²) E[X²]) at δ/4;
    2. E[X] ≥ mean − √(2 σ̄² ln(4/δ) / n) − R ln(4/δ) / (3n), Bernstein at δ/4 given 1
       (at δ/2 this bound on E[X] is as strict as the empirical Bernstein one);
    3. a mean of ``horizon`` = m fresh draws ≥ E[X] − √(2 σ̄² ln(2/δ) / m) − R ln(2/δ) / (3m),
       Bernstein at δ/2 given 1; the fresh draws are independent of the past ones, so this
       also holds for a choice (of λ) made from them.

    Tested λ by λ in a fixed order (:meth:`Calibration.lam_for`), steps 1-2 are a test of "E[X]
    is at least step 3's deviation", so fixed-sequence testing keeps the total at δ. The bound
    is never above :func:`bernstein_lower_bound` at ``delta`` (the long run), and falls as the
    horizon shortens.

    >>> args = np.array([0.1]), np.array([0.04]), np.array([2000.0]), (-0.9, 1.0), 0.1
    >>> [round(float(horizon_lower_bound(*args, m)[0]), 4) for m in (100, 500, 10**6)]
    [0.0012, 0.0512, 0.0824]
    """
    a, b = bounds
    span, square = b - a, max(a * a, b * b)
    n = np.asarray(n, dtype=np.float64)
    log_past, log_future = math.log(4 / delta), math.log(2 / delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        second_moment = np.maximum(var, 0.0) * (n - 1) / n + mean**2
        k = np.sqrt(2 * square * log_past / n)
        sigma = (k + np.sqrt(k**2 + 4 * (second_moment + square * log_past / (3 * n)))) / 2
        past = sigma * np.sqrt(2 * log_past / n) + span * log_past / (3 * n)
        future = sigma * np.sqrt(2 * log_future / horizon) + span * log_future / (3 * horizon)
        bound = np.minimum(mean - past - future, bernstein_lower_bound(mean, var, n, span, delta))
    return np.where(n >= 2, bound, -np.inf)
