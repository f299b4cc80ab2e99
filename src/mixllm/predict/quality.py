"""Quality prediction (MixLLM §3.2): per LLM, the probability of a good answer to a query.

The paper fits one random forest per LLM on the query embedding. :class:`QualityModel` offers
that (``kind="rf"``) beside a soft-label logistic regression, gradient boosting and kNN, and by
default (``kind="auto"``) picks the kind with the lowest cross-validated Brier score on the
training data. Quality may be 0/1 or graded in [0, 1] (MT-Bench score / 10).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import DataError
from mixllm.predict.heads import Params
from mixllm.predict.learners import Target
from mixllm.predict.perllm import PerLLMModel, check_features

__all__ = ["QualityModel", "brier_score", "expected_calibration_error"]

FloatArray = NDArray[np.float64]


class QualityModel(PerLLMModel):
    """Per-LLM quality predictors with a kind chosen by cross-validated Brier score.

    Parameters
    ----------
    kind:
        ``"auto"`` (choose by CV among the four below), ``"rf"`` (random forest, the paper's
        choice), ``"logistic"`` (soft-label logistic regression), ``"hgb"`` (histogram
        gradient boosting) or ``"knn"`` (mean quality of the nearest training queries);
        ``"mean"`` (each LLM's training mean) is a baseline.
    select:
        ``"dataset"`` (default): one kind for all LLMs, the lowest CV Brier averaged over
        LLMs; ``"llm"``: each LLM its own best kind. On RouterBench the per-LLM choice had the
        same test Brier (0.1888) but its mix of kinds cost 20× more per query (0.3 ms against
        0.013 ms), and the prediction cost would depend on the data.
    cv, seed:
        Folds and fold-shuffling / model seed; fits are deterministic given ``seed``.
    grids:
        Overrides of the tuned hyper-parameter's candidates per kind (see
        :data:`~mixllm.predict.learners.DEFAULT_GRIDS`).
    n_trees, n_jobs:
        Random forest size and scikit-learn jobs.

    Attributes
    ----------
    kind_:
        The kind chosen for the dataset (the kind itself when not ``"auto"``).
    kinds_:
        Kind used per LLM (``"constant"`` for an LLM with too few observations or one class:
        it predicts its observed mean, shrunk towards ``prior_`` by one pseudo-observation).
    cv_scores_:
        Mean CV Brier score per kind, an array over LLMs (NaN where not cross-validated).
    prior_:
        Mean observed quality over all LLMs, the prediction for an LLM never observed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 4))
    >>> q = np.stack([(x[:, 0] > 0), np.ones(200)], axis=1).astype(float)
    >>> m = QualityModel("logistic").fit(x, q)
    >>> p = m.predict(np.array([[3.0, 0, 0, 0], [-3.0, 0, 0, 0]]))
    >>> p.round(2).tolist(), m.kinds_
    ([[1.0, 1.0], [0.0, 1.0]], ['logistic', 'constant'])
    """

    _target: ClassVar[Target] = "prob"
    _kinds: ClassVar[tuple[str, ...]] = ("rf", "logistic", "hgb", "knn")

    def fit(self, X: NDArray[Any], quality: NDArray[Any]) -> QualityModel:
        """Fit one predictor per column of ``quality`` (n, L) in [0, 1], NaN where unknown."""
        x = check_features(X)
        q = _check_quality(quality, len(x))
        seen = np.isfinite(q)
        self.prior_ = float(q[seen].mean()) if seen.any() else 0.5
        self._fit_columns(x, q)
        return self

    def add_llm(self, X: NDArray[Any], quality: NDArray[Any]) -> int:
        """Fit a head for a new LLM from its own rows; the others are untouched. Returns its
        column index. The kind is ``kind_`` (``select="llm"``: chosen by CV on these rows)."""
        self._check_fitted()
        x = check_features(X)
        q = _check_quality(np.asarray(quality, dtype=np.float64).reshape(-1, 1), len(x))
        return self._add_column(x, q[:, 0])

    def predict(self, X: NDArray[Any]) -> FloatArray:
        """P(good answer), shape (n, n_llms), in [0, 1]."""
        out: FloatArray = np.clip(self._predict_raw(check_features(X)), 0.0, 1.0)
        return out

    def _loss(self, pred: FloatArray, y: FloatArray) -> FloatArray:
        out: FloatArray = (np.clip(pred, 0.0, 1.0) - y[:, None]) ** 2
        return out

    def _constant(self, y: FloatArray) -> float:
        return float((y.sum() + self.prior_) / (len(y) + 1))

    def _extra_state(self) -> Params:
        return {"prior_": self.prior_}

    def _restore_extra(self, params: Mapping[str, Any]) -> None:
        self.prior_ = float(params["prior_"])


def _check_quality(quality: NDArray[Any], n: int) -> FloatArray:
    q = np.asarray(quality, dtype=np.float64)
    if q.ndim != 2 or len(q) != n:
        raise DataError(f"quality has shape {q.shape}; expected ({n}, n_llms)")
    if ((q < 0) | (q > 1)).any():
        raise DataError("quality has values outside [0, 1]; expected NaN for unknown")
    return q


def brier_score(pred: FloatArray, quality: FloatArray) -> FloatArray:
    """Mean squared error per LLM over the observed cells (NaN for an LLM with none).

    >>> brier_score(np.array([[0.5, 1.0]]), np.array([[1.0, np.nan]])).tolist()
    [0.25, nan]
    """
    seen = np.isfinite(quality)
    err = np.where(seen, (pred - np.where(seen, quality, 0.0)) ** 2, 0.0)
    count = seen.sum(axis=0)
    out: FloatArray = np.where(count > 0, err.sum(axis=0) / np.maximum(count, 1), np.nan)
    return out


def expected_calibration_error(pred: FloatArray, quality: FloatArray, n_bins: int = 10) -> float:
    """Expected calibration error over all observed cells: the mean |predicted − observed|
    quality in ``n_bins`` equal-width probability bins, weighted by the bins' sizes.

    >>> pred, quality = np.array([0.2, 0.2, 0.9]), np.array([0.0, 1.0, 1.0])
    >>> round(expected_calibration_error(pred, quality), 4)  # (2 × |0.2 − 0.5| + |0.9 − 1|) / 3
    0.2333
    """
    seen = np.isfinite(quality)
    p, y = np.asarray(pred, dtype=np.float64)[seen], np.asarray(quality, dtype=np.float64)[seen]
    if not len(p):
        return float("nan")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.sum() * abs(p[inside].mean() - y[inside].mean())
    return float(total / len(p))
