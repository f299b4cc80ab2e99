"""Fitting one LLM's head of each model kind, for a path of hyper-parameter values at once.

Targets are either probabilities in [0, 1] (``"prob"``: answer quality, 0/1 or graded) or real
numbers (``"real"``: log output tokens). Graded quality is handled by every kind: the random
forest and kNN average it directly (squared error is the Brier score), the logistic and boosted
classifiers see each observed cell as a positive row with weight q and a negative row with
weight 1 − q (soft-label cross-entropy; 0/1 data reduces to the plain fit).

Each kind tunes one hyper-parameter; :func:`fit_path` returns one head per value so that cross
validation scores the whole grid from one fit where the method allows (the logistic path is
warm-started, boosting keeps its first n trees, kNN shares one neighbour search).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import threadpoolctl  # type: ignore[import-untyped]
from numpy.typing import NDArray

from mixllm.errors import ConfigError
from mixllm.predict.forest import TreeEnsemble
from mixllm.predict.heads import ConstantHead, ForestHead, Head, KNNHead, LinearHead
from mixllm.predict.neighbours import unit_rows

__all__ = ["DEFAULT_GRIDS", "Target", "TreeSettings", "fit_path", "soft_rows"]

FloatArray = NDArray[np.float64]
Target = Literal["prob", "real"]

#: Hyper-parameter tuned per kind, and its default candidates.
DEFAULT_GRIDS: dict[str, tuple[float, ...]] = {
    "mean": (0.0,),  # no parameter
    "logistic": (0.1, 1.0, 10.0),  # inverse L2 strength C
    "ridge": (1.0, 10.0, 100.0),  # L2 strength alpha
    "rf": (5.0, 20.0),  # min_samples_leaf
    "hgb": (25.0, 50.0, 100.0),  # number of boosting iterations
    "knn": (10.0, 20.0, 50.0, 100.0),  # number of neighbours k
}
_TARGETS: dict[str, tuple[Target, ...]] = {
    "mean": ("prob", "real"),
    "logistic": ("prob",),
    "ridge": ("real",),
    "rf": ("prob", "real"),
    "hgb": ("prob", "real"),
    "knn": ("prob", "real"),
}


@dataclass(frozen=True)
class TreeSettings:
    """Sizes of the tree models (fixed; only the grid parameter is tuned).

    Random forest: ``n_trees`` trees, each on a ``max_samples`` bootstrap fraction, sqrt(d)
    features per split. Boosting: learning rate 0.05, at most 7 leaves, 32 bins, 20 rows per
    leaf, L2 1.0 (small trees: the data are a few thousand rows of a few hundred dimensions).
    """

    n_trees: int = 100
    max_samples: float = 0.5
    n_jobs: int = 1


def soft_rows(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rows, 0/1 labels and weights encoding soft targets ``y`` (zero weights dropped).

    >>> _, labels, weights = soft_rows(np.zeros((2, 1)), np.array([1.0, 0.25]))
    >>> labels.tolist(), weights.tolist()
    ([1.0, 1.0, 0.0], [1.0, 0.25, 0.75])
    """
    rows = np.concatenate([x, x])
    labels = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    weights = np.concatenate([y, 1.0 - y])
    keep = weights > 0
    return rows[keep], labels[keep], weights[keep]


def fit_path(
    kind: str,
    x: FloatArray,
    y: FloatArray,
    *,
    target: Target,
    grid: Sequence[float],
    seed: int = 0,
    trees: TreeSettings | None = None,
    embed_dim: int | None = None,
) -> list[Head]:
    """Heads of ``kind`` fitted on rows ``x`` and targets ``y``, one per ``grid`` value.

    Targets must be finite, except for kNN, which keeps rows with a NaN target (so LLMs fitted
    on the same queries share their rows) and skips them. A constant target gives constant
    heads. ``embed_dim``: the leading columns of ``x`` that kNN compares (default: all).

    >>> x = np.eye(4)[[0, 0, 1, 1]]
    >>> [float(h.predict(x[:1])[0]) for h in fit_path("knn", x, np.array([1.0, 1, 0, 0]),
    ...  target="prob", grid=[2, 4])]
    [1.0, 0.5]
    """
    if target not in _TARGETS.get(kind, ()):
        known = sorted(k for k, t in _TARGETS.items() if target in t)
        raise ConfigError(f"model kind {kind!r} for {target} targets; known: {known}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    seen = np.isfinite(y)
    if not seen.any() or len(x) != len(y) or (kind != "knn" and not seen.all()):
        raise ValueError(f"fit_path needs matching rows and finite targets; got {x.shape}, "
                         f"{y.shape} with {int((~seen).sum())} NaN")  # fmt: skip
    if kind == "mean" or np.ptp(y[seen]) == 0:
        observed = y[seen]
        value = np.log1p(np.expm1(observed).mean()) if target == "real" else observed.mean()
        return [ConstantHead(float(value)) for _ in grid]
    trees = trees or TreeSettings()
    if kind == "logistic":
        return _logistic(x, y, grid)
    if kind == "ridge":
        return _ridge(x, y, grid)
    if kind == "rf":
        return [_forest(x, y, int(leaf), seed, trees) for leaf in grid]
    if kind == "hgb":
        return _boosting(x, y, [int(n) for n in grid], target, seed, trees.n_jobs)
    emb = unit_rows(x[:, :embed_dim]).astype(np.float32)
    return [KNNHead(emb, y, min(int(k), int(seen.sum()))) for k in grid]


def _logistic(x: FloatArray, y: FloatArray, Cs: Sequence[float]) -> list[Head]:
    """Soft-label logistic regression for each C, warm-started along the sorted path."""
    from sklearn.exceptions import ConvergenceWarning  # heavy: imported on first fit
    from sklearn.linear_model import LogisticRegression

    rows, labels, weights = soft_rows(x, y)
    model = LogisticRegression(max_iter=1000, warm_start=True)
    heads: dict[float, Head] = {}
    # lbfgs may stop at max_iter on separable folds; the fitted model is still usable.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        for C in sorted(set(Cs)):
            model.set_params(C=C).fit(rows, labels, sample_weight=weights)
            coef = np.array(model.coef_[0], dtype=np.float64)
            heads[C] = LinearHead(coef, float(model.intercept_[0]), logistic=True)
    return [heads[C] for C in Cs]


def _ridge(x: FloatArray, y: FloatArray, alphas: Sequence[float]) -> list[Head]:
    """Ridge regression (unpenalised intercept) for each alpha, from one SVD."""
    mean_x, mean_y = x.mean(axis=0), y.mean()
    u, s, vt = _svd(x - mean_x)
    uty = u.T @ (y - mean_y)
    heads: list[Head] = []
    for alpha in alphas:
        coef = vt.T @ (s / (s**2 + alpha) * uty)
        heads.append(LinearHead(coef, float(mean_y - mean_x @ coef), logistic=False))
    return heads


def _svd(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Thin SVD. LAPACK's divide and conquer (numpy's) fails to converge on some degenerate
    matrices (many identical rows: prompts that share a long preamble, truncated to the same
    tokens); the QR-based driver is slower but converges."""
    try:
        u, s, vt = np.linalg.svd(x, full_matrices=False)
    except np.linalg.LinAlgError:
        from scipy.linalg import svd  # type: ignore[import-untyped]

        u, s, vt = svd(x, full_matrices=False, lapack_driver="gesvd")
    return u, s, vt


def _forest(x: FloatArray, y: FloatArray, leaf: int, seed: int, trees: TreeSettings) -> Head:
    """Random forest (MixLLM §3.2's quality predictor): regression trees on the target, so a
    0/1 target gives P(good) as the mean of leaf fractions and graded quality works as is."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(
        n_estimators=trees.n_trees,
        max_features="sqrt",
        max_samples=trees.max_samples if len(y) >= 4 else None,
        min_samples_leaf=leaf,
        random_state=seed,
        n_jobs=trees.n_jobs,
    ).fit(x.astype(np.float32), y)
    return ForestHead(TreeEnsemble.from_random_forest(model), logistic=False)


def _boosting(
    x: FloatArray, y: FloatArray, n_iters: Sequence[int], target: Target, seed: int, n_jobs: int
) -> list[Head]:
    """Gradient boosting with small trees; one fit, each grid value keeps its first n trees.

    OpenMP is limited to ``n_jobs`` threads: on a busy machine its spinning threads made these
    small fits several times slower.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    settings = {
        "learning_rate": 0.05,
        "max_iter": max(n_iters),
        "max_leaf_nodes": 7,
        "max_bins": 32,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
        "early_stopping": False,
        "random_state": seed,
    }
    with threadpoolctl.threadpool_limits(limits=n_jobs, user_api="openmp"):
        if target == "prob":
            rows, labels, weights = soft_rows(x, y)
            clf = HistGradientBoostingClassifier(**settings)
            clf.fit(rows, labels, sample_weight=weights)
            return [
                ForestHead(TreeEnsemble.from_hist_gradient_boosting(clf, n), True) for n in n_iters
            ]
        reg = HistGradientBoostingRegressor(**settings).fit(x, y)
    return [ForestHead(TreeEnsemble.from_hist_gradient_boosting(reg, n), False) for n in n_iters]
