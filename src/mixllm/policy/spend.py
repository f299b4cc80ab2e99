"""A batch budget that holds on the money actually spent, not only on the predicted costs.

:class:`~mixllm.policy.budget.BudgetSolver` keeps the *predicted* total within the budget. What
the answers then cost differs: an answer's length is predicted as a typical (median-like) one,
and lengths are skewed, so recorded costs run a little above the predictions. A router fitted
with a target has out-of-fold predictions of its training queries (the calibration's cross-fit);
:func:`spend_errors` measures there, per LLM, how recorded cost relates to predicted cost:

    recorded = ratio × predicted + e,   Var(e) = (spread × predicted)²

with ``ratio = Σ recorded / Σ predicted`` and ``spread² = Σ (recorded − ratio × predicted)² /
Σ predicted²`` over the LLM's recorded queries; the ratio's standard error is then
``ratio_se = spread × sqrt(Σ predicted²) / Σ predicted``. For an assignment that sends
predicted costs P_j in all to LLM j, the spend is expected to be Σ_j ratio_j × P_j, with a
variance of Σ (spread × predicted)² over the queries (their own errors, independent) plus
Σ_j (ratio_se_j × P_j)² (the ratios' errors, shared by all of an LLM's queries).

A budget picks, per query, LLMs whose cost looks low for their quality, and among those the
ones whose cost is *predicted* too low more often than not: the chosen answers cost more than
their ratio says. The calibration routes its out-of-fold predictions at each λ of its grid, so
it also measures that **selection** factor per λ: Σ recorded / Σ ratio × predicted over the
chosen answers. The expected spend is multiplied by the factor at the λ that binds the budget.

:func:`hold_within_budget` plans on the expected costs and lowers the budget it plans with
until the expected spend plus z standard deviations (z the normal quantile of ``confidence``)
is within the budget: the spend stays within it with probability about ``confidence``, as far
as the batch is like the training queries and its answers' errors are independent (measured in
docs/results.md, where answers to the queries of one task share errors).

>>> errs = SpendErrors({"a": (1.1, 0.2, 0.0), "b": (1.0, 0.0, 0.0)})
>>> p = Prediction(("a", "b"), np.array([[0.9, 0.5], [0.8, 0.6]]), np.array([[2.0, 1.0]] * 2))
>>> held = hold_within_budget(p, 4.0, errs, confidence=0.95)
>>> held.choice.tolist(), round(held.expected_usd, 3), round(held.upper_usd, 3)
([0, 1], 3.2, 3.858)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, DataError
from mixllm.policy.budget import BudgetSolver, check_budget
from mixllm.policy.targets import check_confidence
from mixllm.types import Prediction

__all__ = ["Held", "SpendErrors", "hold_within_budget", "spend_errors"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Most halvings of the planned budget's search (it stops once within 1e-9 of it).
_SEARCH_STEPS = 40


@dataclass(frozen=True)
class SpendErrors:
    """Per LLM, ``(ratio, spread, ratio_se)`` of recorded against predicted cost, and the
    selection factor per λ of ``lams`` (ascending; none: 1) (see the module). An LLM without
    any (one added after fitting) gets the largest of each among the others, the cautious
    guess."""

    by_llm: Mapping[str, tuple[float, float, float]]
    lams: tuple[float, ...] = ()
    selection: tuple[float, ...] = ()

    def for_llms(self, llms: Sequence[str]) -> FloatArray:
        """Rows ratio, spread and ratio_se, a column per LLM of ``llms``: shape (3, len(llms))."""
        if not self.by_llm:
            raise DataError("no spend errors were measured (no recorded costs); expected some")
        known = np.array(list(self.by_llm.values()), dtype=np.float64)
        top_ratio, top_spread, top_se = known.max(axis=0).tolist()
        worst = (top_ratio, top_spread, top_se)
        rows = [self.by_llm.get(m, worst) for m in llms]
        return np.array(rows, dtype=np.float64).reshape(len(llms), 3).T

    def factor(self, lam: float) -> float:
        """The selection factor at ``lam``, interpolated on the grid (1 without one)."""
        if not self.lams:
            return 1.0
        return float(np.interp(lam, self.lams, self.selection))

    def bound(
        self, llms: Sequence[str], predicted_usd: Sequence[float], confidence: float, lam: float
    ) -> tuple[float, float]:
        """Expected spend and its upper bound at ``confidence`` of sending query i, whose
        predicted cost is ``predicted_usd[i]``, to ``llms[i]``, chosen at ``lam``."""
        names = sorted(set(llms))
        cols = np.array([names.index(m) for m in llms], dtype=np.int64)
        z = NormalDist().inv_cdf(check_confidence(confidence))
        cost = np.asarray(predicted_usd, dtype=np.float64)
        return _bound(cost, cols, self.for_llms(names), z, self.factor(lam))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, read back by :meth:`from_dict`."""
        return {
            "llms": {m: [float(x) for x in v] for m, v in self.by_llm.items()},
            "lams": list(self.lams),
            "selection": list(self.selection),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpendErrors:
        """The errors written by :meth:`to_dict` (``KeyError``/``ValueError`` if malformed)."""
        out = {}
        for m, values in data["llms"].items():
            numbers = [float(x) for x in values]
            ratio, spread, se = numbers if len(numbers) == 3 else (math.nan,) * 3
            if not (ratio > 0 and spread >= 0 and se >= 0 and math.isfinite(ratio + spread + se)):
                raise ValueError(
                    f"spend errors of {m!r} are {values!r}; expected [ratio > 0, spread >= 0, "
                    "ratio_se >= 0]"
                )
            out[str(m)] = (ratio, spread, se)
        lams = tuple(float(x) for x in data["lams"])
        selection = tuple(float(x) for x in data["selection"])
        if len(lams) != len(selection) or not all(f > 0 and math.isfinite(f) for f in selection):
            raise ValueError("spend selection factors: expected one finite factor > 0 per λ")
        return cls(out, lams, selection)


def spend_errors(
    predicted_usd: NDArray[Any],
    recorded_usd: NDArray[Any],
    llms: Sequence[str],
    *,
    chosen: NDArray[np.int64] | None = None,
    lams: NDArray[Any] | None = None,
) -> SpendErrors:
    """Per LLM, the ratio, spread and ratio_se of ``recorded_usd`` against ``predicted_usd``
    (both (queries × LLMs); NaN recorded cells are skipped, as are LLMs never recorded or
    predicted free); with ``chosen`` (a row of columns per λ of ``lams``, ascending), the
    selection factor per λ.

    >>> pred = np.array([[1.0], [2.0], [3.0]])
    >>> e = spend_errors(pred, pred * np.array([[1.0], [1.5], [1.25]]), ["a"])
    >>> [round(x, 4) for x in e.by_llm["a"]]
    [1.2917, 0.14, 0.0873]
    """
    pred = np.asarray(predicted_usd, dtype=np.float64)
    rec = np.asarray(recorded_usd, dtype=np.float64)
    if pred.shape != rec.shape or pred.ndim != 2 or pred.shape[1] != len(llms):
        raise DataError(f"costs have shapes {pred.shape}, {rec.shape} for {len(llms)} LLMs")
    out = {}
    for j, name in enumerate(llms):
        seen = np.isfinite(rec[:, j]) & np.isfinite(pred[:, j])
        p, r = pred[seen, j], rec[seen, j]
        total = math.fsum(p.tolist())
        if total <= 0:
            continue
        ratio = math.fsum(r.tolist()) / total
        squares = math.fsum((p**2).tolist())
        spread = math.sqrt(math.fsum(((r - ratio * p) ** 2).tolist()) / squares)
        out[name] = (ratio, spread, spread * math.sqrt(squares) / total)
    errors = SpendErrors(out)
    if chosen is None or lams is None or not out:
        return errors
    expected = pred * errors.for_llms(llms)[0]
    rows = np.arange(len(pred))[None, :]
    r, e = rec[rows, chosen], expected[rows, chosen]
    seen = np.isfinite(r) & np.isfinite(e)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(seen, r, 0.0).sum(axis=1) / np.where(seen, e, 0.0).sum(axis=1)
    factor = np.where(np.isfinite(factor) & (factor > 0), factor, 1.0)
    grid = tuple(float(x) for x in np.asarray(lams, dtype=np.float64))
    return SpendErrors(out, grid, tuple(factor.tolist()))


class Held(NamedTuple):
    """A budgeted assignment held at a confidence: the column of ``pred.llms`` per query, the
    expected spend, its upper bound at the confidence, and the λ that binds the planned
    budget (on the expected costs)."""

    choice: IntArray
    expected_usd: float
    upper_usd: float
    lam: float


def hold_within_budget(
    pred: Prediction,
    budget_usd: float,
    errors: SpendErrors,
    *,
    confidence: float,
    candidates: Sequence[str] | None = None,
) -> Held:
    """The budgeted assignment whose spend stays within ``budget_usd`` with probability about
    ``confidence`` (see the module).

    :class:`~mixllm.errors.ConfigError` for a bad budget or confidence, or a budget that even
    each query's cheapest LLM would pass at that confidence (the message names both).
    """
    budget, z = check_budget(budget_usd), NormalDist().inv_cdf(check_confidence(confidence))
    stats = errors.for_llms(pred.llms)
    solver = BudgetSolver(
        Prediction(pred.llms, pred.quality, pred.cost_usd * stats[0]), candidates=candidates
    )
    rows = np.arange(len(solver))

    def bound(plan: float) -> Held:
        choice, lam = solver.assign(plan), solver.multiplier(plan)
        factor = errors.factor(lam)
        mean, upper = _bound(pred.cost_usd[rows, choice], choice, stats, z, factor)
        return Held(choice, mean, upper, lam)

    low, high = solver.min_spend_usd, max(solver.min_spend_usd, min(budget, solver.max_spend_usd))
    best = bound(low)
    if best.upper_usd > budget:
        raise ConfigError(
            f"budget_usd={budget:.6g} cannot be held at confidence={confidence:g}: sending each "
            f"of the {len(solver)} queries to its cheapest LLM may cost up to "
            f"${best.upper_usd:.6g}"
        )
    top = bound(high)
    if top.upper_usd <= budget:
        return top
    for _ in range(_SEARCH_STEPS):  # the largest planned budget whose bound holds
        if high - low <= 1e-9 * high:
            break
        mid = (low + high) / 2
        trial = bound(mid)
        if trial.upper_usd <= budget:
            low, best = mid, trial
        else:
            high = mid
    return best


def _bound(
    cost: FloatArray, cols: IntArray, stats: FloatArray, z: float, factor: float
) -> tuple[float, float]:
    """Expected spend of predicted costs ``cost`` sent to columns ``cols`` of ``stats`` (rows
    ratio, spread, ratio_se) with selection ``factor``, and that plus ``z`` standard deviations
    (see the module)."""
    ratio, spread, se = stats
    per_llm = np.bincount(cols, weights=cost, minlength=stats.shape[1])
    mean = math.fsum((ratio * per_llm).tolist())
    var = math.fsum(((spread[cols] * cost) ** 2).tolist()) + math.fsum(
        ((se * per_llm) ** 2).tolist()
    )
    return factor * mean, factor * (mean + z * math.sqrt(var))
