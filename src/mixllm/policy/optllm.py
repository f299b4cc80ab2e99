"""``optllm``: predict each LLM's success with a bootstrap ensemble, assign the batch in budget.

After OptLLM (Liu, Zhang, Miao, Le and Li, 2024, "OptLLM: Optimal Assignment of Queries to
Large Language Models", arXiv 2405.15130). Its two parts:

- **Prediction with robustness.** A multi-label model predicts, per query, the probability
  that each LLM answers it correctly. It is fitted on ``n_bootstrap`` bootstrap resamples of
  the training queries; the predictions are averaged, each model weighted by its accuracy on
  held-out queries, and their standard deviation measures the uncertainty. The robust
  prediction is the weighted mean + ``alpha`` × standard deviation (the paper's robustness
  parameter α; 0 keeps the mean).
- **Assignment of the whole query set.** OptLLM traces the Pareto front of total predicted
  quality against total cost for the batch, from the cheapest assignment to the one of highest
  predicted quality, and the user picks a point by budget.

How this one departs from the paper:

- The model per resample is one multi-output random forest (``n_trees`` trees of depth at most
  ``max_depth``) on the query embedding, regressing each LLM's recorded quality (for 0/1
  outcomes the same leaf frequencies as the paper's per-label forest classifiers, and graded
  quality works too); a missing outcome counts as its LLM's mean on the resample.
- Each model's weight is its accuracy (rounded prediction against rounded quality) on its own
  out-of-bag queries, where the paper holds out half the training set for all models.
- The front is traced exactly, not by the paper's search that destroys and rebuilds solutions:
  for each budget (the knob, in USD for the whole test split) the Lagrangian solver of
  :mod:`mixllm.policy.budget` gives the assignment of highest total predicted quality within
  it, which is a point of that front (to within one query's quality).
- The paper knows each query's cost before the call; here it is predicted by one more random
  forest on the embedding, regressing each LLM's recorded cost (relative to its mean). A
  cost model blind to the query (prices × mean answer length) will not do: the assignment
  sends to a dear LLM exactly the queries whose cost it underrates, and overspends.
  The realised spend of a run may still differ from its budget a little either way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError, NotFittedError
from mixllm.policy.batch import BatchRun
from mixllm.policy.budget import BudgetSolver
from mixllm.predict.features import column_means
from mixllm.types import Prediction, QueryBatch

__all__ = ["OptLLMPolicy"]

FloatArray = NDArray[np.float64]


class OptLLMPolicy:
    """OptLLM as a :class:`~mixllm.policy.batch.BatchPolicy` whose knob is the test split's
    budget in USD (see the module).

    Parameters
    ----------
    n_bootstrap:
        Bootstrap resamples, one model each (the paper uses 100).
    n_trees, max_depth:
        Size of each resample's random forest.
    alpha:
        Weight of the standard deviation in the robust prediction (mean + alpha × std).
    seed:
        Seed of the resamples and the forests.
    """

    name = "optllm"
    knob = "budget_usd"

    def __init__(
        self,
        *,
        n_bootstrap: int = 10,
        n_trees: int = 30,
        max_depth: int = 10,
        alpha: float = 0.0,
        seed: int = 0,
    ) -> None:
        for label, value in (("n_bootstrap", n_bootstrap), ("n_trees", n_trees)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{label}={value!r}; expected an integer >= 1")
        if not (isinstance(max_depth, int) and max_depth >= 1):
            raise ConfigError(f"max_depth={max_depth!r}; expected an integer >= 1")
        if not np.isfinite(alpha):
            raise ConfigError(f"alpha={alpha!r}; expected a finite number")
        self.n_bootstrap, self.n_trees, self.max_depth = n_bootstrap, n_trees, max_depth
        self.alpha, self.seed = float(alpha), seed

    # -- prediction ---------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> OptLLMPolicy:
        """Fit the bootstrap ensemble and the cost model on ``train`` (``queries`` row-aligned)."""
        from sklearn.ensemble import RandomForestRegressor  # heavy: imported on first fit

        train.require_quality("fitting optllm")
        if len(queries) != len(train):
            raise DataError(
                f"{len(queries)} queries for {len(train)} training rows; expected one each"
            )
        x = np.asarray(queries.embeddings, dtype=np.float64)
        y = np.asarray(train.quality, dtype=np.float64)
        n = len(y)
        rng = np.random.default_rng(self.seed)
        self.models_, weights = [], []
        for b in range(self.n_bootstrap):
            rows = rng.integers(0, n, n)
            target = _filled(y[rows])
            model = RandomForestRegressor(
                n_estimators=self.n_trees, max_depth=self.max_depth, max_features="sqrt",
                random_state=int(rng.integers(2**31)) + b, n_jobs=1,
            ).fit(x[rows], target)  # fmt: skip
            self.models_.append(model)
            out_of_bag = np.setdiff1d(np.arange(n), rows)
            weights.append(_accuracy(model.predict(x[out_of_bag]), y[out_of_bag]))
        w = np.asarray(weights, dtype=np.float64)
        self.weights_ = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
        self.llms_ = train.llms
        cost = np.asarray(train.cost_usd, dtype=np.float64)
        self.cost_scale_ = np.nan_to_num(column_means(cost), nan=0.0)
        scale = np.where(self.cost_scale_ > 0, self.cost_scale_, 1.0)
        self.cost_model_ = RandomForestRegressor(
            n_estimators=self.n_trees, max_depth=self.max_depth, max_features="sqrt",
            random_state=int(rng.integers(2**31)), n_jobs=1,
        ).fit(x, _filled(cost, 0.0) / scale)  # fmt: skip
        return self

    def predict(self, queries: QueryBatch) -> Prediction:
        """Robust predicted quality (weighted mean + alpha × std over the resamples; the std as
        ``uncertainty``) and predicted cost per query and LLM."""
        self._check_fitted()
        x = np.asarray(queries.embeddings, dtype=np.float64)
        k = len(self.llms_)
        each = np.stack([m.predict(x).reshape(len(x), k) for m in self.models_])
        mean = np.tensordot(self.weights_, each, axes=1)
        spread = each.std(axis=0)
        scale = np.where(self.cost_scale_ > 0, self.cost_scale_, 1.0)
        cost = np.maximum(self.cost_model_.predict(x).reshape(len(x), k), 0.0) * scale
        return Prediction(self.llms_, mean + self.alpha * spread, cost, uncertainty=spread)

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("this OptLLMPolicy is not fitted yet; call fit(train, queries)")

    # -- the batch ----------------------------------------------------------------------------
    def _solver(self, test: Dataset, queries: QueryBatch) -> BudgetSolver:
        """The solver for this test split's predictions (kept while the same split comes)."""
        self._check_fitted()
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0] is queries and cached[1] is test:
            solver: BudgetSolver = cached[2]
            return solver
        missing = [m for m in self.llms_ if m not in test.llms]
        if missing or len(queries) != len(test):
            raise DataError(
                f"{test.name}: optllm was fitted on {list(self.llms_)}; the test split has "
                f"{list(test.llms)} and {len(queries)} queries for {len(test)} rows"
            )
        solver = BudgetSolver(self.predict(queries))
        self._cached = (queries, test, solver)
        return solver

    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]:
        """``n`` budgets (USD, for the whole split), geometric from the cheapest predicted
        assignment to the one of highest predicted quality."""
        if n < 1:
            raise ConfigError(f"n={n!r}; expected at least 1 budget")
        solver = self._solver(test, queries)
        low, high = solver.min_spend_usd, solver.max_spend_usd
        if n == 1:
            return [high]
        budgets = np.geomspace(low, high, n) if low > 0 else np.linspace(low, high, n)
        budgets[0], budgets[-1] = low, high  # exactly the ends, whatever the rounding
        return [float(b) for b in budgets]

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun:
        """Assign every query of ``test`` within a predicted total cost of ``knob`` USD; the
        recorded quality and cost of the chosen LLM stand in for the call."""
        solver = self._solver(test, queries)
        chosen = solver.assign(knob)  # columns of self.llms_
        cols = np.array([test.llms.index(self.llms_[j]) for j in chosen.tolist()], dtype=np.int64)
        rows = np.arange(len(test))
        return BatchRun(
            choice=cols,
            quality=np.asarray(test.quality[rows, cols], dtype=np.float64),
            cost_usd=np.asarray(test.cost_usd[rows, cols], dtype=np.float64),
            calls=np.ones(len(test), dtype=np.int64),
        )


def _filled(y: FloatArray, empty: float = 0.5) -> FloatArray:
    """Missing values as their column's mean (``empty`` for a column with none)."""
    means = np.nan_to_num(column_means(y), nan=empty)
    return np.where(np.isfinite(y), y, means[None, :])


def _accuracy(pred: FloatArray, y: FloatArray) -> float:
    """Share of the observed cells where the rounded prediction matches the rounded quality
    (0.5 when nothing is observed, e.g. no out-of-bag query)."""
    pred = pred.reshape(y.shape)
    seen = np.isfinite(y)
    if not seen.any():
        return 0.5
    return float((np.round(pred[seen]) == np.round(y[seen])).mean())
