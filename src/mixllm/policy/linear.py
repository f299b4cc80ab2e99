"""Per-LLM logistic regression on the query embedding (RouterBench's linear router).

Quality may be 0/1 (RouterBench) or graded in [0, 1] (MT-Bench score / 10): each observed cell
becomes a positive row with weight q and a negative row with weight 1 − q, so the model is fitted
with the soft-label cross-entropy and 0/1 data reduces to plain logistic regression.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy.state import Arrays, BasePredictor, JSONValue, cost_arrays, restore_cost
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import sigmoid, standardize, standardize_fit
from mixllm.predict.learners import soft_rows as learned_soft_rows
from mixllm.predict.threads import one_blas_thread
from mixllm.types import Prediction, QueryBatch

__all__ = ["LogisticPredictor"]

FloatArray = NDArray[np.float64]
_EPS = 1e-6


def soft_rows(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rows, 0/1 labels and weights encoding soft targets ``y`` (NaN rows and zero weights
    dropped; see :func:`mixllm.predict.learners.soft_rows`).

    >>> _, labels, weights = soft_rows(np.zeros((2, 1)), np.array([1.0, 0.25]))
    >>> labels.tolist(), weights.tolist()
    ([1.0, 1.0, 0.0], [1.0, 0.25, 0.75])
    """
    seen = np.isfinite(y)
    return learned_soft_rows(x[seen], y[seen])


def fit_logistic_path(
    x: FloatArray, y: FloatArray, Cs: Sequence[float], max_iter: int
) -> list[tuple[FloatArray, float]]:
    """Coefficients and intercept of a soft-label logistic regression for each C in ``Cs``
    (ascending; each fit warm-starts from the previous one). A NaN intercept (zero
    coefficients) marks a constant column (one label only) whose value is the caller's to pick.
    """
    from sklearn.exceptions import ConvergenceWarning  # heavy: imported on first fit
    from sklearn.linear_model import LogisticRegression

    rows, labels, weights = soft_rows(x, y)
    if len(np.unique(labels)) < 2:
        return [(np.zeros(x.shape[1]), float("nan")) for _ in Cs]
    model = LogisticRegression(max_iter=max_iter, warm_start=True)
    out = []
    # lbfgs may stop at max_iter on separable folds; the fitted model is still usable.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        for C in Cs:
            model.set_params(C=C).fit(rows, labels, sample_weight=weights)
            out.append((np.array(model.coef_[0], dtype=np.float64), float(model.intercept_[0])))
    return out


def _constant(y: FloatArray, default: float) -> float:
    seen = np.isfinite(y)
    return float(y[seen].mean()) if seen.any() else default


def _log_loss(p: FloatArray, y: FloatArray) -> float:
    """Summed soft-label log loss over the observed cells of ``y``."""
    seen = np.isfinite(y)
    p, t = np.clip(p[seen], _EPS, 1 - _EPS), y[seen]
    return float(-(t * np.log(p) + (1 - t) * np.log(1 - p)).sum())


class LogisticPredictor(BasePredictor):
    """One logistic regression per LLM on the standardised query embedding → P(good answer).

    Parameters
    ----------
    C:
        Inverse L2 strength; ``None`` picks it per LLM from ``C_grid`` by ``cv``-fold
        cross-validation (held-out soft log loss; ties to the smaller C).
    C_grid, cv, max_iter, seed:
        Candidates for C, number of folds, lbfgs iterations, fold shuffling seed.

    An LLM whose observed training quality is constant (always right or always wrong) is
    predicted as that constant; one with no observed outcome gets the mean over all LLMs.
    Cost comes from :class:`~mixllm.predict.cost.MeanLengthCostModel`.
    """

    name = "logistic"
    kind: ClassVar[str] = "logistic"
    _param_names = ("C", "C_grid", "cv", "max_iter", "seed")

    def __init__(
        self,
        C: float | None = None,
        *,
        C_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
        cv: int = 3,
        max_iter: int = 500,
        seed: int = 0,
    ) -> None:
        self.C = C
        self.C_grid = tuple(C_grid)
        self.cv = cv
        self.max_iter = max_iter
        self.seed = seed

    def _check_params(self) -> None:
        grid = self.C_grid if self.C is None else (self.C,)
        if not grid or min(grid) <= 0:
            raise ConfigError(f"C={self.C!r}, C_grid={self.C_grid!r}; expected C values > 0")
        if self.C is None and self.cv < 2:
            raise ConfigError(f"cv={self.cv!r}; expected at least 2 folds")

    @one_blas_thread("sklearn.linear_model", "scipy.optimize")
    def fit(self, train: Dataset, queries: QueryBatch) -> LogisticPredictor:
        """Fit the per-LLM models (after choosing C by CV when ``C`` is None) and the costs."""
        self._check_params()
        raw = self._check_train(train, queries)
        self.mean_, self.scale_ = standardize_fit(raw)
        x = standardize(raw, self.mean_, self.scale_)
        default = _constant(train.quality.ravel(), 0.0)
        n_llms = len(train.llms)
        self.C_ = np.zeros(n_llms)
        self.coef_ = np.zeros((n_llms, x.shape[1]))
        self.intercept_ = np.zeros(n_llms)
        self.constant_ = np.full(n_llms, np.nan)
        for j in range(n_llms):
            y = train.quality[:, j]
            self.C_[j] = self.C if self.C is not None else self._tune_c(x, y, default)
            [(self.coef_[j], self.intercept_[j])] = fit_logistic_path(
                x, y, [self.C_[j]], self.max_iter
            )
            if np.isnan(self.intercept_[j]):
                self.constant_[j], self.intercept_[j] = _constant(y, default), 0.0
        self.cost_model_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        self.llms_ = train.llms
        return self

    def _tune_c(self, x: FloatArray, y: FloatArray, default: float) -> float:
        seen = np.flatnonzero(np.isfinite(y))
        if len(seen) < 2:
            return float(max(self.C_grid))
        rng = np.random.default_rng(self.seed)
        folds = np.array_split(rng.permutation(seen), min(self.cv, len(seen)))
        grid = sorted(self.C_grid)
        losses = np.zeros(len(grid))
        for val in folds:
            tr = np.setdiff1d(seen, val)
            const = _constant(y[tr], default)
            for g, (coef, b) in enumerate(fit_logistic_path(x[tr], y[tr], grid, self.max_iter)):
                p = sigmoid(x[val] @ coef + b) if np.isfinite(b) else np.full(len(val), const)
                losses[g] += _log_loss(p, y[val])
        return float(grid[int(np.argmin(losses))])

    def _input_dim(self) -> int:
        return len(self.mean_)

    def predict(self, queries: QueryBatch) -> Prediction:
        """P(good answer) per LLM; cost from prompt tokens and mean output length."""
        x = standardize(self._check_queries(queries), self.mean_, self.scale_)
        quality = sigmoid(x @ self.coef_.T + self.intercept_)
        quality = np.where(np.isnan(self.constant_), quality, self.constant_)
        return self._prediction(quality, self.cost_model_.predict(queries.prompt_tokens))

    def _state(self) -> tuple[dict[str, object], Arrays]:
        arrays: Arrays = {
            "mean": self.mean_,
            "scale": self.scale_,
            "C": self.C_,
            "coef": self.coef_,
            "intercept": self.intercept_,
            "constant": self.constant_,
        }
        return {}, {**arrays, **cost_arrays(self.cost_model_)}

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        for attr in ("mean", "scale", "C", "coef", "intercept", "constant"):
            setattr(self, attr + "_", np.asarray(arrays[attr], dtype=np.float64))
        self.cost_model_ = restore_cost(arrays)
