"""One LLM per query for a whole batch under a total budget: a multiple-choice knapsack.

Routing at a willingness to pay λ decides each query alone; a user with a budget for a batch
wants the assignment of highest total predicted quality whose total predicted cost stays within
it. That is a multiple-choice knapsack (one item, an LLM, per query). :class:`BudgetSolver`
solves it the Lagrangian way:

1. For each query, the LLMs on the upper convex hull of its (cost, quality) points, from the
   cheapest up: the choices a query makes as λ falls from ∞ to 0. Each step up the hull has a
   slope Δquality / Δcost, falling along the hull.
2. Starting from every query at its cheapest LLM, the steps of all queries are taken in order of
   slope, steepest first, while the total stays within the budget. Stopping at the first step
   that does not fit is the choice at the multiplier λ that binds the budget (the exact form of
   bisecting λ to the budget: ties in slope are split query by query).
3. The budget left over is spent greedily: repeatedly, the upgrade (to any LLM of higher
   predicted quality, on the hull or not) with the best Δquality / Δcost among those that still
   fit, until none fits.

The result is within one query's quality gain of the optimum (the gap of the linear relaxation),
so on batches of hundreds of queries it is optimal to a fraction of a percent. The total
predicted cost never passes the budget; with known costs (predicted = realised) neither does
the realised spend.

>>> import numpy as np
>>> from mixllm.types import Prediction
>>> p = Prediction(("small", "big"), np.array([[0.5, 0.9], [0.6, 0.7]]),
...                np.array([[1.0, 3.0], [1.0, 3.0]]))
>>> assign_within_budget(p, 4.0).tolist()
[1, 0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, DataError
from mixllm.types import Prediction

__all__ = ["BudgetSolver", "assign_within_budget", "check_budget"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Tries at a budget lowered by the rounding overshoot before keeping 1e-9 of it unspent.
_ROUNDING_TRIES = 3


def check_budget(budget_usd: object) -> float:
    """``budget_usd`` as a float; :class:`~mixllm.errors.ConfigError` unless it is a number ≥ 0.

    >>> check_budget(2)
    2.0
    >>> check_budget(float("nan"))
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: budget_usd=nan; expected a number >= 0 (USD)
    """
    if isinstance(budget_usd, bool) or not isinstance(budget_usd, (int, float, np.number)):
        raise ConfigError(f"budget_usd={budget_usd!r}; expected a number >= 0 (USD)")
    value = float(budget_usd)
    if not value >= 0:  # NaN fails too
        raise ConfigError(f"budget_usd={value!r}; expected a number >= 0 (USD)")
    return value


class BudgetSolver:
    """The budgeted assignment of one batch, for any number of budgets (see the module).

    The hull of every query is built once, so tracing the front of total quality against total
    cost over many budgets costs one sort plus a cheap pass per budget.

    Parameters
    ----------
    pred:
        Predicted quality and cost per query and LLM; only ``quality`` and ``cost_usd`` count.
    candidates:
        The LLMs that may be chosen (default: all of ``pred.llms``); the columns returned index
        ``pred.llms`` all the same.
    """

    def __init__(self, pred: Prediction, *, candidates: Sequence[str] | None = None) -> None:
        sub = pred if candidates is None else pred.select(list(candidates))
        self.llms = pred.llms
        self.columns_ = np.array([pred.llms.index(m) for m in sub.llms], dtype=np.int64)
        q = np.asarray(sub.quality, dtype=np.float64)
        c = np.asarray(sub.cost_usd, dtype=np.float64)
        if not (np.isfinite(q).all() and np.isfinite(c).all()):
            raise DataError("predictions hold NaN or infinite quality or cost; expected finite")
        if (c < 0).any():
            raise DataError(f"predicted costs down to {c.min():g} USD; expected >= 0")
        self.quality_, self.cost_ = q, c
        n = len(q)
        self.start_ = _cheapest(q, c)
        rows = np.arange(n)
        self.min_spend_usd = math.fsum(c[rows, self.start_].tolist())
        who, frm, to, dq, dc, self.slopes_ = _hull_steps(q, c, self.start_)
        self.steps_ = (who, frm, to, dq, dc)
        top = _after(self.start_, self.steps_[0], self.steps_[2], len(self.steps_[0]))
        self.max_spend_usd = math.fsum(c[rows, top].tolist())

    def __len__(self) -> int:
        return len(self.quality_)

    def assign(self, budget_usd: float) -> IntArray:
        """Column of ``pred.llms`` chosen for each query, total predicted cost ≤ ``budget_usd``.

        :class:`~mixllm.errors.ConfigError` for a budget that is not a number ≥ 0, or one below
        the cheapest assignment (the message names both).
        """
        return self.columns_[self._choose(budget_usd)]

    def _choose(self, budget_usd: float) -> IntArray:
        """:meth:`assign` in the candidates' own column order."""
        budget = check_budget(budget_usd)
        if self.min_spend_usd > budget:
            raise ConfigError(
                f"budget_usd={budget:.6g} is below ${self.min_spend_usd:.6g}, the predicted cost "
                f"of sending each of the {len(self)} queries to its cheapest LLM"
            )
        rows, plan = np.arange(len(self)), budget
        for attempt in range(_ROUNDING_TRIES + 1):
            choice = self._plan(plan if attempt < _ROUNDING_TRIES else budget * (1 - 1e-9))
            picked = self.cost_[rows, choice]
            spend = max(math.fsum(picked.tolist()), float(picked.sum()))
            if spend <= budget:
                break
            # Sums rounded past the budget: plan again a little below it.
            plan -= 2 ** (attempt + 1) * (spend - budget)
        return choice

    def _plan(self, budget: float) -> IntArray:
        choice = self.start_.copy()
        left = budget - self.min_spend_usd
        if left <= 0 or len(self) == 0:
            return choice
        who, to, dc = self.steps_[0], self.steps_[2], self.steps_[4]
        # Steps are steepest first and Δcost > 0, so those that fit form a prefix: the choice at
        # the multiplier that binds the budget.
        # (Sums may round past the budget by a few ulps: _choose checks and plans again.)
        n_taken = int(np.searchsorted(np.cumsum(dc), left * (1 + 1e-12), side="right"))
        if n_taken:
            choice = _after(choice, who, to, n_taken)
            left -= math.fsum(dc[:n_taken].tolist())
        self._fill(choice, left)
        return choice

    def multiplier(self, budget_usd: float) -> float:
        """The λ that binds ``budget_usd``: the slope Δquality / Δcost of the steepest step up
        a hull that the budget leaves out (0 when every query gets its best LLM). Routing each
        query at this λ alone would spend at most the budget; :meth:`assign` spends the rest."""
        left = check_budget(budget_usd) - self.min_spend_usd
        dc, slopes = self.steps_[4], self.slopes_
        n_taken = int(np.searchsorted(np.cumsum(dc), left * (1 + 1e-12), side="right"))
        return float(slopes[n_taken]) if n_taken < len(slopes) else 0.0

    def _fill(self, choice: IntArray, left: float) -> None:
        """Spend ``left`` on upgrades, best Δquality / Δcost first, each query at most once a
        round, until none fits (bounded: each upgrade raises a query's quality strictly)."""
        q, c = self.quality_, self.cost_
        rows = np.arange(len(q))
        for _ in range(q.shape[1] * len(q) + 1):
            dq = q - q[rows, choice][:, None]
            dc = c - c[rows, choice][:, None]
            fits = (dq > 0) & (dc <= left)
            if not fits.any():
                return
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(fits, np.where(dc > 0, dq / dc, np.inf), -np.inf)
            best = ratio.argmax(axis=1)
            who = np.flatnonzero(fits.any(axis=1))
            who = who[np.argsort(-ratio[who, best[who]], kind="stable")]
            moved = False
            for i in who.tolist():
                j = int(best[i])
                step = float(dc[i, j])
                if step <= left:
                    choice[i] = j
                    left -= step
                    moved = True
            if not moved:
                return

    def front(self, budgets_usd: Sequence[float]) -> list[tuple[float, float, IntArray]]:
        """For each budget: total predicted cost, total predicted quality and the assignment
        (columns of ``pred.llms``)."""
        rows = np.arange(len(self))
        out = []
        for b in budgets_usd:
            choice = self._choose(b)
            cost = math.fsum(self.cost_[rows, choice].tolist())
            quality = math.fsum(self.quality_[rows, choice].tolist())
            out.append((cost, quality, self.columns_[choice]))
        return out


def assign_within_budget(
    pred: Prediction, budget_usd: float, *, candidates: Sequence[str] | None = None
) -> IntArray:
    """Column of ``pred.llms`` per query maximising total predicted quality with total predicted
    cost ≤ ``budget_usd`` (see the module; :class:`BudgetSolver` for many budgets at once).

    >>> p = Prediction(("a", "b"), np.array([[0.2, 0.9]]), np.array([[0.01, 0.05]]))
    >>> assign_within_budget(p, 0.001)
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: budget_usd=0.001 is below $0.01, the predicted cost of sending each of the 1 queries to its cheapest LLM
    """  # noqa: E501
    return BudgetSolver(pred, candidates=candidates).assign(budget_usd)


def _cheapest(q: FloatArray, c: FloatArray) -> IntArray:
    """Per query, the cheapest column; among equally cheap ones, the best predicted quality."""
    cheapest = c == c.min(axis=1, keepdims=True)
    return np.asarray(np.where(cheapest, q, -np.inf).argmax(axis=1), dtype=np.int64)


def _hull_steps(
    q: FloatArray, c: FloatArray, start: IntArray
) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray, FloatArray]:
    """The steps up every query's upper convex hull from ``start``, steepest first overall:
    (query, from column, to column, Δquality, Δcost, slope), each query's steps in hull order.

    Gift wrapping, vectorised over queries: from the current point, the next is the one of
    highest slope among the costlier points of higher quality (among equal slopes, the cheaper,
    so collinear points each make a step).
    """
    n, k = q.shape
    rows = np.arange(n)
    cur = start.copy()
    prev = np.full(n, np.inf)  # each query's previous slope: slopes may only fall along a hull
    parts: list[tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray, FloatArray, IntArray]]
    parts = []
    for level in range(k):
        dq = q - q[rows, cur][:, None]
        dc = c - c[rows, cur][:, None]
        up = (dq > 0) & (dc > 0)
        live = np.flatnonzero(up.any(axis=1))
        if len(live) == 0:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(up[live], dq[live] / dc[live], -np.inf)
        top = slope.max(axis=1, keepdims=True)
        # Among the steepest, the cheapest (collinear points are visited one by one).
        nxt = np.where(slope >= top, c[live], np.inf).argmin(axis=1).astype(np.int64)
        # Rounding may make a collinear step look steeper than the one before it.
        prev[live] = np.minimum(prev[live], top[:, 0])
        parts.append(
            (
                live.astype(np.int64), cur[live], nxt, dq[live, nxt], dc[live, nxt],
                prev[live].copy(), np.full(len(live), level, dtype=np.int64),
            )
        )  # fmt: skip
        cur = cur.copy()
        cur[live] = nxt
    if not parts:
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        return empty_i, empty_i, empty_i, empty_f, empty_f, empty_f
    who, frm, to, dq_s, dc_s, slopes, lvl = (np.concatenate(p) for p in zip(*parts))
    # Steepest first; equal slopes by query then hull level, so each query's steps stay in order
    # (slopes fall along a hull, so a query's later step never sorts before its earlier one).
    order = np.lexsort((lvl, who, -slopes))
    return who[order], frm[order], to[order], dq_s[order], dc_s[order], slopes[order]


def _after(start: IntArray, who: IntArray, to: IntArray, n_taken: int) -> IntArray:
    """Each query's column after the first ``n_taken`` steps: a query's steps come in hull
    order, so its last step taken is where it ends up."""
    out = start.copy()
    if n_taken:
        last = n_taken - 1 - np.unique(who[:n_taken][::-1], return_index=True)[1]
        out[who[last]] = to[last]
    return out
