"""``cascade-router``: call cheap LLMs first, then route on their answers.

A cascade and a router at once: after the first, cheap call(s), the answers are features (as in
the answer scorers of FrugalGPT, Chen, Zaharia and Zou, 2023, arXiv 2305.05176, and AutoMix,
Aggarwal et al., 2023, arXiv 2310.12963) of a predictor of *every* LLM's quality on the query,
and the router picks by predicted quality − λ · cost, as MixLLM's choice rule does (here
among keeping one of the answers in hand, at no further cost, and calling one more LLM). Where
a cascade only decides "accept or go to the next in line", this one may jump to any LLM.

Departures and choices: each LLM's quality is predicted by a logistic regression on the query
embedding and :func:`~mixllm.policy.answers.answer_features` of the cheap answers, fitted on
the training split's recorded outcomes (quality >= 0.5 counts as right); the cost of a further
call is that LLM's mean training cost on the query's task (over all queries where tasks are
unknown). The first LLMs, unless given, are the ``n_first`` cheapest of the training split's
cost/quality Pareto front. At most one LLM is called after the first ones. The cost of a query
is that of every call made. Data without recorded answers raises
:class:`~mixllm.policy.batch.LacksDataError`.

The knob is λ (quality per USD), swept from large (keep the cheap answers) to 0 (call the LLM
of best predicted quality when it beats the answers in hand).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy._cascade import (
    Scorer,
    cheap_pareto,
    check_fitted,
    check_llms,
    check_queries,
    mean_cost,
    strongest,
)
from mixllm.policy.answers import answer_features, extract_all, require_responses
from mixllm.policy.batch import BatchRun
from mixllm.types import QueryBatch

__all__ = ["CascadeRouterPolicy"]

FloatArray = NDArray[np.float64]


class CascadeRouterPolicy:
    """Cheap calls first, then a router that reads their answers (module docstring).

    Parameters
    ----------
    first:
        The LLMs called first, in order; ``None`` (default): chosen on the training split.
    n_first:
        How many are chosen when ``first`` is ``None``.
    C:
        Inverse L2 strength of the quality models' logistic regressions.
    """

    name = "cascade-router"
    knob = "lam"

    def __init__(
        self, first: Sequence[str] | None = None, *, n_first: int = 2, C: float = 0.5
    ) -> None:
        if first is not None and len(first) < 1:
            raise ConfigError("cascade-router: first is empty; expected at least one LLM")
        if n_first < 1:
            raise ConfigError(f"cascade-router: n_first {n_first!r} is below 1")
        self.first = None if first is None else list(first)
        self.n_first, self.C = n_first, C
        self.first_: list[str] = []
        self.llms_: tuple[str, ...] = ()
        self.models_: list[Scorer] = []
        self.cost_by_task_: dict[str, FloatArray] = {}
        self.cost_: FloatArray = np.zeros(0)
        self.scale_ = 1.0
        self._memo: tuple[Dataset, QueryBatch, FloatArray] | None = None

    def _x(self, ds: Dataset, queries: QueryBatch) -> FloatArray:
        resp = require_responses(ds, self.first_, self.name)
        feats = answer_features(resp, extract_all(resp, ds.tasks), ds.tasks)
        return np.hstack([np.asarray(queries.embeddings, dtype=np.float64), feats])

    def fit(self, train: Dataset, queries: QueryBatch) -> CascadeRouterPolicy:
        """Choose the first LLMs (unless given) and fit one quality model per LLM."""
        check_queries(train, queries, self.name)
        if self.first is not None:
            self.first_ = check_llms(train, self.first, "cascade-router first")
        else:
            strong = strongest(train)
            cheap = cheap_pareto(train, strong)
            if not cheap:
                raise ConfigError(
                    f"cascade-router: no LLM of {train.name} is cheaper than {strong!r}"
                )
            self.first_ = cheap[: self.n_first]
        self.llms_ = train.llms
        x = self._x(train, queries)
        self.models_ = [Scorer(self.C).fit(x, train.quality[:, j]) for j in range(train.n_llms)]
        self.cost_ = mean_cost(train)
        self.cost_by_task_ = {}
        for task in train.task_names:
            rows = np.asarray(train.tasks == task)
            sub = np.asarray(train.cost_usd, dtype=np.float64)[rows]
            seen = np.isfinite(sub).sum(axis=0)
            self.cost_by_task_[task] = np.where(
                seen > 0, np.nansum(sub, axis=0) / np.maximum(seen, 1), self.cost_
            )
        self.scale_ = float(self.cost_[train.llm_index(strongest(train))])
        self._memo = None
        return self

    def predict(self, test: Dataset, queries: QueryBatch) -> FloatArray:
        """Predicted quality of every LLM (columns of the training split) on ``test``."""
        check_fitted(bool(self.models_), self.name)
        if self._memo is not None and self._memo[0] is test and self._memo[1] is queries:
            return self._memo[2]
        check_queries(test, queries, self.name)
        check_llms(test, self.llms_, "cascade-router LLMs")
        x = self._x(test, queries)
        pred = np.stack([m.predict(x) for m in self.models_], axis=1)
        self._memo = (test, queries, pred)
        return pred

    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]:
        """``n`` values of λ from one that keeps every cheap answer down to 0."""
        check_fitted(bool(self.models_), self.name)
        scaled = np.geomspace(1e3, 1e-3, max(n - 1, 1)) / self.scale_
        return [*(float(v) for v in scaled), 0.0]

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun:
        """Every query of ``test``: the first calls, then the choice at λ = ``knob``."""
        lam = float(knob)
        if not (lam >= 0 and not math.isnan(lam)):
            raise ConfigError(f"{self.name}: lam {knob!r} is not a number >= 0")
        pred = self.predict(test, queries)
        n = len(test)
        cols = [test.llm_index(m) for m in self.llms_]
        first = [self.llms_.index(m) for m in self.first_]
        extra = np.stack([self.cost_by_task_.get(str(t), self.cost_) for t in test.tasks])
        value = pred - (0.0 if math.isinf(lam) else lam) * extra
        if math.isinf(lam):
            value[:, :] = -np.inf
        value[:, first] = pred[:, first]  # answers in hand cost nothing more
        pick = np.argmax(value, axis=1)
        cost_grid = np.asarray(test.cost_usd, dtype=np.float64)
        first_cols = [cols[f] for f in first]
        cost = cost_grid[:, first_cols].sum(axis=1)
        called = ~np.isin(pick, first)
        choice = np.asarray([cols[p] for p in pick], dtype=np.int64)
        cost[called] += cost_grid[np.arange(n)[called], choice[called]]
        calls = np.full(n, len(first), dtype=np.int64) + called
        quality = np.asarray(test.quality, dtype=np.float64)[np.arange(n), choice]
        return BatchRun(choice=choice, quality=quality, cost_usd=cost, calls=calls)
