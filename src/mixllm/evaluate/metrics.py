"""The metrics of ``docs/metrics.md``, in one place: per run, per frontier, and the yardstick.

Every number in a report (CLI, markdown, JSON, plots, tests) comes from these pure numpy
functions. Qualities are in the dataset's units (0..1), costs in USD per query.

* A **run** is one routing policy at one λ: :func:`run_metrics` (a missing outcome counts as
  quality 0 and is counted).
* A **frontier** is the sweep of runs of one router, reduced by :func:`upper_hull` to its
  non-decreasing upper convex hull (RouterBench). :func:`hull_quality_at` reads it: 0 below the
  router's cheapest point, linear between vertices, flat past its last vertex.
* :func:`aiq` integrates that piecewise-linear function exactly over a cost range and divides by
  the range's width.
* The **yardstick** (:class:`Yardstick`) holds the mean quality and cost on the test split of the
  cheapest single LLM and of the reference LLM; the AIQ range runs from the first's cost to the
  second's, the same range for every router in a report. :func:`frontier_metrics` computes AIQ,
  quality at each budget, cost to match and APGR from one sweep.
* **APGR** on two-LLM sets is averaged over the share of calls to the strong LLM, on a hull
  completed by the all-weak and all-strong policies (:func:`share_hull`); with more LLMs it is
  averaged over the AIQ cost range, with the cheapest and the reference LLM as weak and strong.

Bootstrap intervals of these numbers are in :mod:`mixllm.evaluate.bootstrap`; they resample
test queries and hold the yardstick fixed at its full-test-split values.

>>> hull = upper_hull([1.0, 2.0, 3.0], [0.5, 0.9, 0.8])
>>> hull.costs.tolist(), hull.qualities.tolist()
([1.0, 2.0], [0.5, 0.9])
>>> hull_quality_at(hull, 0.5), hull_quality_at(hull, 1.5), hull_quality_at(hull, 9.0)
(0.0, 0.7, 0.9)
>>> round(aiq(hull, 1.0, 3.0), 6)  # (0.7 x 1 + 0.9 x 1) / 2
0.8
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from mixllm.errors import DataError

__all__ = [
    "BUDGETS_PCT",
    "FrontierMetrics",
    "Hull",
    "RunMetrics",
    "Yardstick",
    "aiq",
    "apgr",
    "cost_to_match_pct",
    "cost_to_reach",
    "frontier_metrics",
    "hull_quality_at",
    "quality_at_budget_pct",
    "run_metrics",
    "share_hull",
    "upper_hull",
]

FloatArray = NDArray[np.float64]

#: Budgets, in % of the reference LLM's cost, at which every report reads the frontier.
BUDGETS_PCT: tuple[float, ...] = (10.0, 20.0, 25.0, 50.0)

_REL_TOL = 1e-9  # costs this close (relative) are the same cost (means of the same numbers)


@dataclass(frozen=True)
class RunMetrics:
    """One run: mean quality (missing counted as 0), mean USD cost, and how many were missing."""

    quality: float
    cost_usd: float
    n_missing: int


def run_metrics(chosen_quality: ArrayLike, chosen_cost: ArrayLike) -> RunMetrics:
    """Mean quality and cost of the chosen answers; a ``NaN`` quality counts as 0.

    >>> run_metrics([1.0, float("nan"), 0.5], [0.25, 0.5, 0.75])
    RunMetrics(quality=0.5, cost_usd=0.5, n_missing=1)
    """
    q = np.asarray(chosen_quality, dtype=np.float64)
    c = np.asarray(chosen_cost, dtype=np.float64)
    if q.shape != c.shape or q.ndim != 1 or q.size == 0:
        raise ValueError(f"expected two equal-length 1-d arrays, got shapes {q.shape}, {c.shape}")
    if np.isnan(c).any():
        raise DataError(f"{int(np.isnan(c).sum())} chosen costs are missing (NaN); impute first")
    missing = np.isnan(q)
    return RunMetrics(
        quality=float(np.where(missing, 0.0, q).mean()),
        cost_usd=float(c.mean()),
        n_missing=int(missing.sum()),
    )


@dataclass(frozen=True)
class Hull:
    """Vertices of a non-decreasing upper convex hull: costs ascending, qualities non-decreasing."""

    costs: FloatArray
    qualities: FloatArray


def _cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def upper_hull(costs: ArrayLike, qualities: ArrayLike) -> Hull:
    """The non-decreasing upper convex hull of the points (cost, quality), as RouterBench.

    Any point on a segment between two runs is reachable by mixing them, so the frontier is the
    upper hull; it starts at the cheapest point (the best one of equal cost) and stops at the
    cheapest point of highest quality (a costlier point of lower quality is never worth it).

    >>> upper_hull([3, 1, 2, 2], [1.0, 0.0, 0.4, 0.9]).qualities.tolist()
    [0.0, 0.9, 1.0]
    """
    c = np.asarray(costs, dtype=np.float64).ravel()
    q = np.asarray(qualities, dtype=np.float64).ravel()
    if c.shape != q.shape or c.size == 0:
        raise ValueError(f"expected equal, non-empty costs and qualities, got {c.size}, {q.size}")
    if not (np.isfinite(c).all() and np.isfinite(q).all()):
        raise ValueError("costs and qualities must be finite")
    order = np.lexsort((-q, c))  # by cost, then best quality first
    pts: list[tuple[float, float]] = []
    for p in zip(c[order].tolist(), q[order].tolist()):
        if pts and p[0] == pts[-1][0]:
            continue  # same cost, lower quality
        while len(pts) >= 2 and _cross(pts[-2], pts[-1], p) >= 0:
            pts.pop()
        pts.append(p)
    ys = [y for _, y in pts]
    pts = pts[: ys.index(max(ys)) + 1]
    return Hull(
        costs=np.array([x for x, _ in pts], dtype=np.float64),
        qualities=np.array([y for _, y in pts], dtype=np.float64),
    )


def hull_quality_at(hull: Hull, cost: float) -> float:
    """Quality of the frontier at ``cost``: 0 below its cheapest point, flat past its last.

    "Below" allows for rounding: a cost within 1e-9 (relative) of the cheapest point is at it.
    """
    if cost < hull.costs[0] * (1.0 - _REL_TOL):
        return 0.0
    return float(np.interp(cost, hull.costs, hull.qualities))


def _area(hull: Hull, lo: float, hi: float) -> float:
    """Exact integral of :func:`hull_quality_at` over [lo, hi] (piecewise linear)."""
    start = max(lo, float(hull.costs[0]))
    if hi <= start:
        return 0.0
    inner = hull.costs[(hull.costs > start) & (hull.costs < hi)]
    grid = np.concatenate([[start], inner, [hi]])
    return float(np.trapezoid(np.interp(grid, hull.costs, hull.qualities), grid))


def aiq(hull: Hull, c_lo: float, c_hi: float) -> float:
    """Average quality of the frontier over [c_lo, c_hi] (RouterBench's AIQ), integrated exactly.

    A zero-width range (the reference LLM is the cheapest) gives the quality at that cost.

    >>> aiq(upper_hull([2.0], [0.6]), 1.0, 3.0)  # 0 on [1, 2), 0.6 on [2, 3]
    0.3
    """
    if c_hi < c_lo:
        raise ValueError(f"cost range [{c_lo!r}, {c_hi!r}] is reversed")
    if c_hi == c_lo:
        return hull_quality_at(hull, c_hi)
    return _area(hull, c_lo, c_hi) / (c_hi - c_lo)


def cost_to_reach(hull: Hull, quality: float) -> float | None:
    """The lowest cost at which the frontier reaches ``quality``, or ``None`` if it never does."""
    q, c = hull.qualities, hull.costs
    tol = 1e-12
    if q[-1] < quality - tol:
        return None
    k = int(np.argmax(q >= quality - tol))
    if k == 0 or q[k] - q[k - 1] <= tol:
        return float(c[k])
    frac = (quality - q[k - 1]) / (q[k] - q[k - 1])
    return float(c[k - 1] + frac * (c[k] - c[k - 1]))


@dataclass(frozen=True)
class Yardstick:
    """What every router in a report is measured against (mean quality and cost on the test split).

    ``cheapest_*``: the cheapest single LLM (the AIQ range's low end, APGR's weak LLM);
    ``reference_*``: the reference LLM (the range's high end, APGR's strong LLM, 100%).
    """

    cheapest_quality: float
    cheapest_cost_usd: float
    reference_quality: float
    reference_cost_usd: float


def quality_at_budget_pct(hull: Hull, yard: Yardstick, budget_pct: float) -> float | None:
    """Frontier quality at ``budget_pct`` % of the reference cost, as % of reference quality."""
    if yard.reference_quality <= 0:
        return None
    q = hull_quality_at(hull, budget_pct / 100.0 * yard.reference_cost_usd)
    return 100.0 * q / yard.reference_quality


def cost_to_match_pct(hull: Hull, yard: Yardstick) -> float | None:
    """Lowest frontier cost reaching the reference quality, as % of reference cost (None: never)."""
    cost = cost_to_reach(hull, yard.reference_quality)
    if cost is None or yard.reference_cost_usd <= 0:
        return None
    return 100.0 * cost / yard.reference_cost_usd


def share_hull(shares: ArrayLike, qualities: ArrayLike, yard: Yardstick) -> Hull:
    """Hull of (share of calls to the strong LLM, quality) for two-LLM APGR, with both ends.

    Every router is completed by the two trivial policies, all calls to the weak LLM
    (0, q_weak) and all to the strong one (1, q_strong): a RouteLLM threshold router reaches them
    at its extreme thresholds and any router by mixing, so random mixing scores APGR 0.5.
    """
    s = np.concatenate([[0.0], np.asarray(shares, dtype=np.float64).ravel(), [1.0]])
    q = np.asarray(qualities, dtype=np.float64).ravel()
    return upper_hull(s, np.concatenate([[yard.cheapest_quality], q, [yard.reference_quality]]))


def apgr(hull: Hull, yard: Yardstick, *, shares: Hull | None = None) -> float | None:
    """Average performance gap recovered (RouteLLM), mean of (q − q_weak) / (q_strong − q_weak).

    The weak LLM is the cheapest, the strong one the reference. With ``shares`` (two-LLM sets:
    :func:`share_hull`) the mean runs over the share of calls to the strong LLM from 0 to 1;
    otherwise over the AIQ cost range of ``hull``, where it equals
    (AIQ − q_weak) / (q_strong − q_weak). ``None`` when the weak LLM is as good as the strong.

    >>> yard = Yardstick(0.5, 1.0, 0.9, 10.0)
    >>> line = upper_hull([1.0, 10.0], [0.5, 0.9])  # mixing weak and strong
    >>> round(apgr(line, yard), 6), round(apgr(line, yard, shares=share_hull([], [], yard)), 6)
    (0.5, 0.5)
    """
    gap = yard.reference_quality - yard.cheapest_quality
    if gap <= 0:
        return None
    if shares is not None:
        mean_q = aiq(shares, 0.0, 1.0)
    else:
        mean_q = aiq(hull, yard.cheapest_cost_usd, yard.reference_cost_usd)
    return (mean_q - yard.cheapest_quality) / gap


@dataclass(frozen=True)
class FrontierMetrics:
    """The per-router headline numbers of one sweep (see :func:`frontier_metrics`)."""

    aiq: float
    quality_at_budget_pct: tuple[float | None, ...]
    cost_to_match_pct: float | None
    apgr: float | None


def frontier_metrics(
    costs: ArrayLike,
    qualities: ArrayLike,
    yard: Yardstick,
    *,
    strong_shares: ArrayLike | None = None,
    budgets_pct: Sequence[float] = BUDGETS_PCT,
) -> FrontierMetrics:
    """AIQ, quality at each budget, cost to match and APGR of one sweep of mean runs.

    ``strong_shares`` (one per run: share of calls sent to the strong LLM) selects the two-LLM
    APGR over shares (:func:`share_hull`); without it APGR is averaged over the AIQ cost range.
    """
    hull = upper_hull(costs, qualities)
    shares = None if strong_shares is None else share_hull(strong_shares, qualities, yard)
    return FrontierMetrics(
        aiq=aiq(hull, yard.cheapest_cost_usd, yard.reference_cost_usd),
        quality_at_budget_pct=tuple(quality_at_budget_pct(hull, yard, b) for b in budgets_pct),
        cost_to_match_pct=cost_to_match_pct(hull, yard),
        apgr=apgr(hull, yard, shares=shares),
    )
