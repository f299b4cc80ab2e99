"""95% bootstrap intervals over test queries for the frontier metrics (``docs/metrics.md``).

One resample draws ``n`` test queries with replacement; every router in a report is measured on
the same resamples (the same seed gives the same draws), so their intervals are paired.

The **yardstick is held fixed**: the reference and cheapest LLMs' mean quality and cost (hence the
AIQ cost range, the 100% marks and APGR's weak and strong qualities) come from the full test split,
exactly as for the point estimate. The intervals therefore show how much a router's own numbers
move with the sample of queries, measured against one fixed ruler, and a number in a report means
the same thing with or without its interval.

Vectorised: a resample is a row of query counts, so the per-λ means of all resamples are one
matrix product ``counts @ quality.T / n``; only the hull of each resample's (at most ``n_lam``)
mean points is computed one resample at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mixllm.errors import ConfigError
from mixllm.evaluate.metrics import BUDGETS_PCT, FrontierMetrics, Yardstick, frontier_metrics

__all__ = ["MIN_RESAMPLES", "Estimate", "bootstrap_frontier", "interval", "resample_counts"]

#: The fewest resamples a report may use (``docs/metrics.md``: at least 200).
MIN_RESAMPLES = 200


@dataclass(frozen=True)
class Estimate:
    """A point estimate on the full test split with its 95% bootstrap interval.

    ``None`` marks a value that is undefined (e.g. APGR when the weak LLM is as good as the
    strong); ``low``/``high`` are ``None`` without resamples or when no resample defined it.
    """

    value: float | None
    low: float | None = None
    high: float | None = None


def resample_counts(n: int, n_boot: int, seed: int) -> NDArray[np.float64]:
    """How often each of ``n`` queries is drawn in each of ``n_boot`` resamples, shape (n_boot, n).

    >>> c = resample_counts(5, 200, seed=0)
    >>> c.shape, bool((c.sum(axis=1) == 5).all())
    ((200, 5), True)
    """
    if n_boot < MIN_RESAMPLES:
        raise ConfigError(f"n_boot={n_boot!r}; expected at least {MIN_RESAMPLES} resamples")
    if n < 1:
        raise ConfigError(f"cannot resample {n} test queries; expected at least 1")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    flat = (idx + np.arange(n_boot)[:, None] * n).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def interval(values: Sequence[float | None], *, level: float = 0.95) -> tuple[float | None, ...]:
    """Percentile interval (low, high) of the defined values; (None, None) if none is defined.

    >>> interval([float(i) for i in range(201)])
    (5.0, 195.0)
    """
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (None, None)
    tail = round(50.0 * (1.0 - level), 9)
    lo, hi = np.percentile(v, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def bootstrap_frontier(
    quality: ArrayLike,
    cost_usd: ArrayLike,
    yard: Yardstick,
    counts: NDArray[np.float64],
    *,
    strong_chosen: ArrayLike | None = None,
    budgets_pct: Sequence[float] = BUDGETS_PCT,
) -> list[FrontierMetrics]:
    """The frontier metrics of each resample of a router's sweep.

    Parameters
    ----------
    quality, cost_usd:
        Chosen outcome per λ and test query, shape (n_lam, n); a ``NaN`` quality counts as 0.
    yard:
        The fixed yardstick of the report (from the full test split).
    counts:
        Query counts per resample from :func:`resample_counts`, shape (n_boot, n).
    strong_chosen:
        For two-LLM APGR: 1 where the strong LLM was chosen, shape (n_lam, n).
    """
    q = np.nan_to_num(np.asarray(quality, dtype=np.float64), nan=0.0)
    c = np.asarray(cost_usd, dtype=np.float64)
    if q.shape != c.shape or q.ndim != 2 or q.shape[1] != counts.shape[1]:
        raise ValueError(f"quality {q.shape}, cost {c.shape} and counts {counts.shape} disagree")
    n = counts.shape[1]
    mean_q, mean_c = counts @ q.T / n, counts @ c.T / n
    shares = None
    if strong_chosen is not None:
        shares = counts @ np.asarray(strong_chosen, dtype=np.float64).T / n
    return [
        frontier_metrics(
            mean_c[b],
            mean_q[b],
            yard,
            strong_shares=None if shares is None else shares[b],
            budgets_pct=budgets_pct,
        )
        for b in range(counts.shape[0])
    ]
