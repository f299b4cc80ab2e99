"""What the cascades (:mod:`mixllm.policy.cascade`, :mod:`~mixllm.policy.cascade_vote`,
:mod:`~mixllm.policy.cascade_router`) and :mod:`~mixllm.policy.uncertainty_small` share: which
LLM is strong and which are cheap on a training split, a reliability scorer, the area under a
frontier (to compare candidate chains on the training split) and checks of knobs and names."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError, NotFittedError
from mixllm.predict.threads import one_blas_thread
from mixllm.types import QueryBatch

__all__ = [
    "TOP",
    "Scorer",
    "cheap_pareto",
    "check_fitted",
    "check_llms",
    "check_queries",
    "check_threshold",
    "folds_of",
    "frontier_area",
    "mean_cost",
    "mean_quality",
    "strongest",
]

FloatArray = NDArray[np.float64]


def mean_quality(ds: Dataset) -> FloatArray:
    """Mean recorded quality per LLM (missing outcomes left out; 0 for an LLM with none)."""
    q = np.asarray(ds.quality, dtype=np.float64)
    seen = np.isfinite(q).sum(axis=0)
    return np.where(seen > 0, np.nansum(q, axis=0) / np.maximum(seen, 1), 0.0)


def mean_cost(ds: Dataset) -> FloatArray:
    """Mean recorded cost per LLM (missing left out; ``inf`` for an LLM with none)."""
    c = np.asarray(ds.cost_usd, dtype=np.float64)
    seen = np.isfinite(c).sum(axis=0)
    return np.where(seen > 0, np.nansum(c, axis=0) / np.maximum(seen, 1), np.inf)


def strongest(ds: Dataset) -> str:
    """The LLM of best mean quality on ``ds`` (ties: the cheaper), the cascades' last resort."""
    q, c = mean_quality(ds), mean_cost(ds)
    return ds.llms[min(range(ds.n_llms), key=lambda j: (-q[j], c[j]))]


def cheap_pareto(ds: Dataset, strong: str, *, max_cost_share: float = 1.0) -> list[str]:
    """The LLMs cheaper than ``strong`` (at most ``max_cost_share`` of its mean cost) that no
    cheaper LLM matches in mean quality, cheapest first."""
    q, c = mean_quality(ds), mean_cost(ds)
    limit = max_cost_share * c[ds.llm_index(strong)]
    order = sorted((j for j in range(ds.n_llms) if c[j] < limit), key=lambda j: (c[j], -q[j]))
    out: list[str] = []
    best = -np.inf
    for j in order:
        if ds.llms[j] != strong and q[j] > best:
            out.append(ds.llms[j])
            best = q[j]
    return out


def check_llms(ds: Dataset, names: Sequence[str], what: str) -> list[str]:
    """``names`` if each is an LLM of ``ds``; :class:`ConfigError` naming the unknown ones."""
    unknown = [m for m in names if m not in ds.llms]
    if unknown:
        raise ConfigError(f"{what}: unknown LLMs {unknown}; {ds.name} has {list(ds.llms)}")
    return list(names)


def check_threshold(knob: float, policy: str) -> float:
    """``knob`` as a float if it is a threshold in [0, 1]; :class:`ConfigError` otherwise."""
    value = float(knob)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ConfigError(f"{policy}: threshold {knob!r} is not in [0, 1]")
    return value


def check_fitted(fitted: bool, policy: str) -> None:
    """:class:`NotFittedError` unless ``fitted``."""
    if not fitted:
        raise NotFittedError(f"{policy} is not fitted; call fit(train, queries) first")


def check_queries(ds: Dataset, queries: QueryBatch, policy: str) -> None:
    """:class:`DataError` unless ``queries`` has one row per query of ``ds``."""
    if len(queries) != len(ds):
        raise DataError(
            f"{policy}: {len(queries)} queries for {len(ds)} rows of {ds.name}; expected one "
            "query per row"
        )


#: Highest score a :class:`Scorer` gives, so a threshold of 1 escalates every query.
TOP = math.nextafter(1.0, 0.0)


class Scorer:
    """Probability that an answer is right (recorded quality >= 0.5) from features: a
    standardised L2 logistic regression; a constant where training saw one class only.
    Scores lie in [0, 1), so a threshold of 0 accepts every answer and 1 none."""

    def __init__(self, C: float = 0.5, max_iter: int = 300) -> None:
        self.C, self.max_iter = C, max_iter
        self.model: Any = None
        self.constant = 0.5

    @one_blas_thread("sklearn.linear_model")
    def fit(self, x: FloatArray, quality: FloatArray) -> Scorer:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        seen = np.isfinite(quality)
        x, y = x[seen], (quality[seen] >= 0.5).astype(int)
        if len(y) == 0 or y.min() == y.max():
            self.model, self.constant = None, float(y.mean()) if len(y) else 0.5
            return self
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter)
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            self.model = model.fit(x, y)
        return self

    def predict(self, x: FloatArray) -> FloatArray:
        if self.model is None:
            p = np.full(len(x), self.constant)
        else:
            p = np.asarray(self.model.predict_proba(x)[:, 1], dtype=np.float64)
        out: FloatArray = np.clip(p, 0.0, TOP)
        return out


def folds_of(n: int, k: int, seed: int) -> list[NDArray[np.int64]]:
    """``k`` seeded folds of ``range(n)`` (each row in exactly one)."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[f::k]) for f in range(k)]


def frontier_area(
    costs: Sequence[float], qualities: Sequence[float], lo: float, hi: float
) -> float:
    """Mean quality of the upper concave frontier of (cost, quality) points over [lo, hi]:
    0 below the cheapest point, flat past the last (the shape of AIQ, for comparing candidate
    chains on a training split).

    >>> round(frontier_area([1.0, 2.0, 3.0], [0.5, 0.9, 0.8], 1.0, 3.0), 6)
    0.8
    """
    pts = sorted(zip(costs, qualities, strict=True))
    hull: list[tuple[float, float]] = []
    for p in pts:
        if hull and p[1] <= hull[-1][1]:
            continue
        if hull and p[0] == hull[-1][0]:
            hull.pop()
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    if not hull or hi <= lo:
        return 0.0
    xs = np.array([h[0] for h in hull])
    ys = np.array([h[1] for h in hull])
    grid = np.linspace(lo, hi, 401)
    vals = np.where(grid < xs[0], 0.0, np.interp(grid, xs, ys))
    return float(np.trapezoid(vals, grid) / (hi - lo))
