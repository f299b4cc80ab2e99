"""The terms of MixLLM's meta decision maker (§3.3), as pure functions on (queries × LLMs) arrays.

score = quality − λ·cost + α·uncertainty − β·latency penalty, where the penalty grows
exponentially with the LLM's current waiting time and an LLM whose wait reaches τ is not chosen.
Optional per-call limits remove candidates (a maximum predicted cost). Ties go to the cheaper
LLM, then to the first name in sorted order, so every decision is reproducible.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["choose_masked", "latency_penalty", "trade_off", "uncertainty_bonus"]

FloatArray = NDArray[np.float64]


def trade_off(quality: FloatArray, cost_usd: FloatArray, lam: float) -> FloatArray:
    """s_trade = quality − λ·cost (MixLLM §3.3).

    >>> trade_off(np.array([[0.9, 0.5]]), np.array([[0.01, 0.001]]), 10.0).round(3).tolist()
    [[0.8, 0.49]]
    """
    return quality - float(lam) * cost_usd


def uncertainty_bonus(uncertainty: FloatArray | None, alpha: float) -> FloatArray | float:
    """α·sqrt(eᵀA⁻¹e), the LinUCB exploration bonus (MixLLM §3.3); ``uncertainty`` is the sqrt."""
    if uncertainty is None or alpha == 0:
        return 0.0
    return float(alpha) * uncertainty


def latency_penalty(wait_s: FloatArray, beta: float, tau_s: float) -> FloatArray:
    """β·(exp(wait/τ) − 1): zero for an idle LLM, growing exponentially with its waiting time
    (MixLLM §3.3, latency penalty; the −1 keeps an idle pool's scores unchanged).

    >>> latency_penalty(np.array([0.0, 10.0]), 0.1, 10.0).round(4).tolist()
    [0.0, 0.1718]
    """
    wait = np.asarray(wait_s, dtype=np.float64)
    if beta == 0 or not math.isfinite(tau_s):
        return np.zeros_like(wait)
    return float(beta) * np.expm1(np.minimum(wait / tau_s, 50.0))


def choose_masked(
    scores: FloatArray,
    cost_usd: FloatArray,
    llms: tuple[str, ...],
    allowed: NDArray[np.bool_] | None,
) -> NDArray[np.int64]:
    """Column of the best allowed score per row; ties to the lower cost, then the lower name.

    A row with no allowed column falls back to all columns (the caller decides what "allowed"
    means and documents the fallback); ``allowed=None`` allows every column.
    """
    if scores.shape[1] == 0:
        raise ValueError("no LLMs to choose from")
    s = scores
    if allowed is not None and not allowed.all():
        allowed = np.where(allowed.any(axis=1, keepdims=True), allowed, True)
        s = np.where(allowed, scores, -np.inf)
    tied = s >= s.max(axis=1, keepdims=True) - 1e-12
    by_name = _name_order(tuple(llms))
    cost = np.where(tied, cost_usd, np.inf)[:, by_name]
    out: NDArray[np.int64] = by_name[np.argmin(cost, axis=1)]
    return out


@functools.lru_cache(maxsize=64)
def _name_order(llms: tuple[str, ...]) -> NDArray[np.int64]:
    """Column indices of ``llms`` in sorted name order (memoised: a router's pool rarely
    changes, and sorting the names cost more than the rest of a decision's choice)."""
    order: NDArray[np.int64] = np.argsort(np.array(llms, dtype=str), kind="stable").astype(np.int64)
    order.flags.writeable = False
    return order
