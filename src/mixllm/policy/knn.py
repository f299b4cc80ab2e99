"""k-nearest-neighbour router (RouterBench's kNN): cosine neighbours among the training queries
predict each LLM's quality and cost as the neighbours' mean recorded outcome."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, PersistError
from mixllm.policy.state import Arrays, BasePredictor, JSONValue
from mixllm.predict.features import column_means
from mixllm.predict.neighbours import nearest, unit_rows
from mixllm.predict.threads import one_blas_thread
from mixllm.types import Prediction, QueryBatch

__all__ = ["KNNPredictor"]

FloatArray = NDArray[np.float64]
_CHUNK = 256  # query rows per similarity block: bounds memory at a few × _CHUNK × n_train


def _running_means(values: FloatArray, nb: NDArray[np.int64], fallback: FloatArray) -> FloatArray:
    """Mean of the first 1..k neighbours' values per LLM, ignoring NaN: shape (m, k, L).

    Where no neighbour among the first j has a value, ``fallback`` (per LLM) is used.
    """
    vals = values[nb]  # (m, k, L)
    seen = np.isfinite(vals)
    total = np.cumsum(np.where(seen, vals, 0.0), axis=1)
    count = np.cumsum(seen, axis=1)
    means: FloatArray = np.where(count > 0, total / np.maximum(count, 1), fallback)
    return means


def _folds(n: int, cv: int, rng: np.random.Generator) -> Iterator[tuple[NDArray[np.int64], ...]]:
    perm = rng.permutation(n)
    for val in np.array_split(perm, cv):
        yield np.setdiff1d(perm, val), val


class KNNPredictor(BasePredictor):
    """Cosine k-nearest neighbours on the query embeddings.

    Predicted quality (cost) of an LLM is the mean recorded quality (cost) of the ``k`` nearest
    training queries, ignoring missing outcomes; an LLM none of the neighbours has an outcome
    for gets its training mean.

    Parameters
    ----------
    k:
        Number of neighbours; ``None`` picks it from ``k_grid`` by ``cv``-fold cross-validation
        on the training split, minimising the quality MSE (Brier score for 0/1 quality) over
        observed cells, averaged over LLMs. Ties go to the smaller ``k``.
    k_grid, cv, seed:
        Candidates for ``k`` (clipped to the fold size), number of folds, fold shuffling seed.

    Attributes
    ----------
    k_:
        The number of neighbours used; ``cv_mse_`` maps each candidate to its CV error.
    """

    name = "knn"
    kind: ClassVar[str] = "knn"
    _param_names = ("k", "k_grid", "cv", "seed")

    def __init__(
        self,
        k: int | None = None,
        *,
        k_grid: Sequence[int] = (5, 10, 20, 50, 100),
        cv: int = 5,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.k_grid = tuple(k_grid)
        self.cv = cv
        self.seed = seed

    def _check_params(self) -> None:
        if self.k is not None and (not isinstance(self.k, int | np.integer) or self.k < 1):
            raise ConfigError(f"k={self.k!r}; expected a positive integer or None (tuned by CV)")
        if self.k is None and (not self.k_grid or min(self.k_grid) < 1):
            raise ConfigError(f"k_grid={self.k_grid!r}; expected positive integers")
        if self.k is None and self.cv < 2:
            raise ConfigError(f"cv={self.cv!r}; expected at least 2 folds")

    @one_blas_thread()
    def fit(self, train: Dataset, queries: QueryBatch) -> KNNPredictor:
        """Store the training embeddings and outcomes; pick ``k`` by CV when not given."""
        self._check_params()
        x = unit_rows(self._check_train(train, queries))
        self.embeddings_ = x.astype(np.float32)
        self._train = self.embeddings_.astype(np.float64)  # compute copy, not saved
        self.quality_ = np.array(train.quality, dtype=np.float64)
        self.cost_usd_ = np.array(train.cost_usd, dtype=np.float64)
        self.mean_quality_ = column_means(self.quality_, 0.0)
        self.mean_cost_usd_ = column_means(self.cost_usd_, 0.0)
        self.cv_mse_: dict[int, float] = {}
        if self.k is not None:
            self.k_ = min(int(self.k), len(train))
        else:
            self.k_ = self._tune_k(self._train)
        self.llms_ = train.llms
        return self

    def _tune_k(self, x: FloatArray) -> int:
        n = len(x)
        if n < 2:
            return 1
        cv = min(self.cv, n)
        rng = np.random.default_rng(self.seed)
        folds = list(_folds(n, cv, rng))
        smallest = min(len(tr) for tr, _ in folds)
        grid = sorted({min(int(k), smallest) for k in self.k_grid})
        sq_err = np.zeros((len(grid), self.quality_.shape[1]))
        count = np.zeros(self.quality_.shape[1])
        for tr, val in folds:
            nb = nearest(x[val], x[tr], grid[-1])
            fallback = column_means(self.quality_[tr], 0.0)
            means = _running_means(self.quality_[tr], nb, fallback)  # (m, kmax, L)
            target = self.quality_[val]
            seen = np.isfinite(target)
            for g, k in enumerate(grid):
                diff = np.where(seen, means[:, k - 1] - np.where(seen, target, 0.0), 0.0)
                sq_err[g] += (diff**2).sum(axis=0)
            count += seen.sum(axis=0)
        has = count > 0
        mse = (sq_err[:, has] / count[has]).mean(axis=1) if has.any() else np.zeros(len(grid))
        self.cv_mse_ = {k: float(e) for k, e in zip(grid, mse)}
        return grid[int(np.argmin(mse))]

    def _input_dim(self) -> int:
        return int(self.embeddings_.shape[1])

    def predict(self, queries: QueryBatch) -> Prediction:
        """Mean outcome of the ``k_`` nearest training queries per LLM."""
        x = unit_rows(self._check_queries(queries))
        quality = np.zeros((len(x), len(self.llms_)))
        cost = np.zeros_like(quality)
        for start in range(0, len(x), _CHUNK):
            rows = slice(start, start + _CHUNK)
            nb = nearest(x[rows], self._train, self.k_)
            quality[rows] = _running_means(self.quality_, nb, self.mean_quality_)[:, -1]
            cost[rows] = _running_means(self.cost_usd_, nb, self.mean_cost_usd_)[:, -1]
        return self._prediction(quality, cost)

    def _state(self) -> tuple[dict[str, object], Arrays]:
        arrays: Arrays = {
            "embeddings": self.embeddings_,
            "quality": self.quality_,
            "cost_usd": self.cost_usd_,
            "mean_quality": self.mean_quality_,
            "mean_cost_usd": self.mean_cost_usd_,
        }
        return {"k_": self.k_}, arrays

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        k = params["k_"]
        if not isinstance(k, int):
            raise PersistError(f"saved k_={k!r}; expected an integer")
        self.k_ = k
        self.cv_mse_ = {}
        self.embeddings_ = np.asarray(arrays["embeddings"], dtype=np.float32)
        self._train = self.embeddings_.astype(np.float64)
        for attr in ("quality", "cost_usd", "mean_quality", "mean_cost_usd"):
            setattr(self, attr + "_", np.asarray(arrays[attr], dtype=np.float64))
