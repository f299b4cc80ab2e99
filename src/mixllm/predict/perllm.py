"""The engine behind :class:`~mixllm.predict.QualityModel` and
:class:`~mixllm.predict.LengthModel`: one head per LLM, its kind chosen by cross-validation.

Cross-validation uses the training rows only. Queries are dealt into ``cv`` folds once (seeded),
and every LLM and every kind is scored on the same folds, so kinds are compared on equal terms.
Each kind's hyper-parameter is tuned per LLM on those folds; then the kind is chosen for the
whole dataset (``select="dataset"``: the lowest CV loss averaged over LLMs) or per LLM
(``select="llm"``). An LLM with fewer than ``max(2 * cv, 10)`` observed rows, or a constant
target, gets a constant head (see ``_constant``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, DataError, NotFittedError, PersistError
from mixllm.predict.heads import Arrays, ConstantHead, Head, JSONValue, Params
from mixllm.predict.headset import HeadSet
from mixllm.predict.learners import DEFAULT_GRIDS, Target, TreeSettings, fit_path
from mixllm.predict.threads import one_blas_thread

__all__ = ["PerLLMModel", "check_features"]

FloatArray = NDArray[np.float64]
M = TypeVar("M", bound="PerLLMModel")
_SELECT = ("dataset", "llm")


def check_features(x: NDArray[Any], name: str = "X") -> FloatArray:
    """``x`` as a finite float64 matrix (n, d), or a :class:`DataError` naming the problem."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"{name} has shape {arr.shape}; expected (n_queries, dim)")
    if not np.isfinite(arr).all():
        raise DataError(f"{name} has NaN or infinite values; expected finite embeddings")
    return arr


class PerLLMModel:
    """One head per LLM on a feature matrix, with CV model choice (see the module docstring)."""

    _target: ClassVar[Target] = "prob"
    _kinds: ClassVar[tuple[str, ...]] = ()  # candidates of kind="auto"

    def __init__(
        self,
        kind: str = "auto",
        *,
        select: str = "dataset",
        cv: int = 3,
        seed: int = 0,
        grids: Mapping[str, Sequence[float]] | None = None,
        n_trees: int = 100,
        n_jobs: int = 1,
    ) -> None:
        self.kind = kind
        self.select = select
        self.cv = cv
        self.seed = seed
        self.grids = {k: tuple(float(v) for v in g) for k, g in (grids or {}).items()}
        self.n_trees = n_trees
        self.n_jobs = n_jobs

    # -- subclass hooks ------------------------------------------------------------------------
    def _loss(self, pred: FloatArray, y: FloatArray) -> FloatArray:
        """Per-row loss of predictions ``pred`` (m, g) against targets ``y`` (m,)."""
        raise NotImplementedError

    def _constant(self, y: FloatArray) -> float:
        """The constant head's value for an LLM with too few (maybe zero) observed targets."""
        raise NotImplementedError

    def _embed_dim(self) -> int | None:
        """Leading feature columns that are the embedding (for kNN); ``None``: all."""
        return None

    # -- checks --------------------------------------------------------------------------------
    def _candidates(self) -> tuple[str, ...]:
        return self._kinds if self.kind == "auto" else (self.kind,)

    def _check_params(self) -> None:
        known = ("auto", *self._kinds)
        if self.kind not in known and self.kind != "mean":
            raise ConfigError(f"kind={self.kind!r}; known: {sorted(known)}")
        if self.select not in _SELECT:
            raise ConfigError(f"select={self.select!r}; known: {list(_SELECT)}")
        if not isinstance(self.cv, int) or self.cv < 2:
            raise ConfigError(f"cv={self.cv!r}; expected an integer >= 2 folds")
        for k, g in self.grids.items():
            if k not in DEFAULT_GRIDS or not g:
                raise ConfigError(f"grids[{k!r}]={g!r}; expected a non-empty grid for a kind")

    def _check_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(...) first")

    def _check_dim(self, z: FloatArray) -> None:
        if z.shape[1] != self.dim_:
            raise DataError(f"features have dimension {z.shape[1]}; fitted on {self.dim_}")

    @property
    def n_llms_(self) -> int:
        self._check_fitted()
        return len(self.heads_)

    # -- fitting -------------------------------------------------------------------------------
    def _grid(self, kind: str) -> tuple[float, ...]:
        return self.grids.get(kind, DEFAULT_GRIDS[kind])

    def _path(self, kind: str, z: FloatArray, y: FloatArray, grid: Sequence[float]) -> list[Head]:
        trees = TreeSettings(n_trees=self.n_trees, n_jobs=self.n_jobs)
        return fit_path(
            kind, z, y, target=self._target, grid=grid, seed=self.seed, trees=trees,
            embed_dim=self._embed_dim(),
        )  # fmt: skip

    def _cv_column(
        self, z: FloatArray, y: FloatArray, folds: NDArray[np.int64], kinds: Sequence[str]
    ) -> dict[str, tuple[float, float]]:
        """Per kind: (best mean CV loss, its grid value); empty when the column is too small."""
        seen = np.isfinite(y)
        if seen.sum() < max(2 * self.cv, 10) or np.ptp(y[seen]) == 0:
            return {}
        zs, ys, fs = z[seen], y[seen], folds[seen]
        out = {}
        for kind in kinds:
            grid = self._grid(kind)
            if len(grid) == 1 and len(kinds) == 1:
                return {kind: (float("nan"), grid[0])}
            loss = np.full((len(ys), len(grid)), np.nan)
            for f in np.unique(fs):
                tr, va = fs != f, fs == f
                heads = HeadSet(self._path(kind, zs[tr], ys[tr], grid))
                loss[va] = self._loss(heads.predict(zs[va]), ys[va])
            mean = np.nanmean(loss, axis=0)
            best = int(np.argmin(mean))  # ties: the first grid value
            out[kind] = (float(mean[best]), float(grid[best]))
        return out

    def _final_head(
        self, z: FloatArray, y: FloatArray, kind: str | None, value: float
    ) -> tuple[str, Head]:
        seen = np.isfinite(y)
        if kind is None:
            return "constant", ConstantHead(self._constant(y[seen]))
        if kind == "knn":  # all rows, so that the LLMs share them (see KNNHead)
            return kind, self._path(kind, z, y, [value])[0]
        return kind, self._path(kind, z[seen], y[seen], [value])[0]

    @one_blas_thread("sklearn.linear_model", "scipy.optimize")
    def _fit_columns(self, z: FloatArray, targets: FloatArray) -> None:
        """Cross-validate, choose kinds and fit one head per column of ``targets``."""
        self._check_params()
        n, n_llms = targets.shape
        self.dim_ = z.shape[1]
        folds = np.random.default_rng(self.seed).permutation(n) % self.cv
        kinds = self._candidates()
        cv = [self._cv_column(z, targets[:, j], folds, kinds) for j in range(n_llms)]
        self.cv_scores_ = {k: np.array([c.get(k, (np.nan, 0.0))[0] for c in cv]) for k in kinds}
        means = [
            np.nanmean(s) if np.isfinite(s).any() else np.inf for s in self.cv_scores_.values()
        ]
        self.kind_ = kinds[int(np.argmin(means))]
        self.heads_ = HeadSet()
        self.kinds_: list[str] = []
        self.values_: list[float] = []
        for j in range(n_llms):
            self._append(z, targets[:, j], cv[j])

    def _append(self, z: FloatArray, y: FloatArray, cv: Mapping[str, tuple[float, float]]) -> None:
        kind: str | None = None
        if cv:
            scores = {k: s for k, (s, _) in cv.items()}
            by_llm = min(scores, key=lambda k: scores[k] if np.isfinite(scores[k]) else np.inf)
            kind = self.kind_ if self.select == "dataset" and self.kind_ in cv else by_llm
        value = cv[kind][1] if kind is not None else float("nan")
        used, head = self._final_head(z, y, kind, value)
        self.heads_.append(head)
        self.kinds_.append(used)
        self.values_.append(value)

    @one_blas_thread("sklearn.linear_model", "scipy.optimize")
    def _add_column(self, z: FloatArray, y: FloatArray) -> int:
        self._check_fitted()
        self._check_dim(z)
        if y.shape != (len(z),):
            raise DataError(f"targets have shape {y.shape}; expected ({len(z)},)")
        folds = np.random.default_rng(self.seed).permutation(len(z)) % self.cv
        kinds = self._candidates() if self.select == "llm" else (self.kind_,)
        cv = self._cv_column(z, y, folds, kinds)
        for k, s in self.cv_scores_.items():
            self.cv_scores_[k] = np.append(s, cv.get(k, (np.nan, 0.0))[0])
        self._append(z, y, cv)
        return len(self.heads_) - 1

    def remove_llm(self, j: int) -> None:
        """Forget LLM column ``j`` (the others keep their heads and shift left)."""
        self._check_fitted()
        if not 0 <= j < len(self.heads_):
            raise DataError(f"LLM column {j}; the model has {len(self.heads_)} columns")
        self.heads_.pop(j)
        del self.kinds_[j], self.values_[j]
        self.cv_scores_ = {k: np.delete(s, j) for k, s in self.cv_scores_.items()}

    def _predict_raw(self, z: FloatArray) -> FloatArray:
        self._check_fitted()
        self._check_dim(z)
        return self.heads_.predict(z)

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[Params, Arrays]:
        """JSON-able parameters and named arrays; :meth:`from_state` restores the model."""
        self._check_fitted()
        head_params, arrays = self.heads_.get_state()
        grids: dict[str, JSONValue] = {k: list(g) for k, g in self.grids.items()}
        params: Params = {
            "kind": self.kind, "select": self.select, "cv": self.cv, "seed": self.seed,
            "grids": grids, "n_trees": self.n_trees, "n_jobs": self.n_jobs,
            "kind_": self.kind_, "kinds_": list(self.kinds_), "values_": _nan_to_none(self.values_),
            "cv_scores_": {k: _nan_to_none(s) for k, s in self.cv_scores_.items()},
            "dim_": self.dim_, "heads": head_params, **self._extra_state(),
        }  # fmt: skip
        return params, arrays

    @classmethod
    def from_state(cls: type[M], params: Mapping[str, Any], arrays: Mapping[str, Any]) -> M:
        """A fitted model equal to the one whose :meth:`get_state` gave these."""
        try:
            model = cls(
                params["kind"], select=params["select"], cv=params["cv"], seed=params["seed"],
                grids=params["grids"], n_trees=params["n_trees"], n_jobs=params["n_jobs"],
            )  # fmt: skip
            model._check_params()
            model.kind_ = str(params["kind_"])
            model.kinds_ = [str(k) for k in params["kinds_"]]
            model.values_ = [np.nan if v is None else float(v) for v in params["values_"]]
            model.cv_scores_ = {
                str(k): np.array([np.nan if v is None else v for v in s], dtype=np.float64)
                for k, s in params["cv_scores_"].items()
            }
            model.dim_ = int(params["dim_"])
            model._restore_extra(params)
            model.heads_ = HeadSet.from_state(params["heads"], arrays)
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise PersistError(
                f"{cls.__name__} state is incomplete or malformed: {exc!r}"
            ) from None
        if not len(model.kinds_) == len(model.values_) == len(model.heads_):
            raise PersistError(f"{cls.__name__} state: per-LLM lists differ in length")
        return model

    def _extra_state(self) -> Params:
        return {}

    def _restore_extra(self, params: Mapping[str, Any]) -> None:
        """Set subclass-specific fitted attributes from :meth:`_extra_state`'s output."""


def _nan_to_none(values: Sequence[float] | FloatArray) -> list[JSONValue]:
    return [None if not np.isfinite(v) else float(v) for v in values]
