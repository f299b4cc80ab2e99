"""Per-LLM Bayesian linear regression updated one observation at a time (LinUCB's statistics).

For each LLM ``l`` the model keeps ``A_l = ridge·I + Σ w·x xᵀ`` as its inverse, and
``b_l = Σ w·x yᵀ`` for ``T`` targets at once (e.g. quality and cost). The posterior mean of the
weights is ``θ_l = A_l⁻¹ b_l`` (ridge regression on everything seen so far), and
``sqrt(xᵀ A_l⁻¹ x)`` is the width of the prediction at ``x`` in units of the noise (the LinUCB
bonus; Li et al., 2010). An observation updates ``A_l⁻¹`` in rank one (Sherman–Morrison), O(d²),
so learning online costs the same whatever was seen before. With ``discount`` γ < 1 every
update first scales ``A_l`` and ``b_l`` by γ: old observations fade and a drifting LLM is
re-learned (the prior fades too, so keep γ close to 1, e.g. 0.999).

LLMs observed on the same rows have the same A_l⁻¹ (offline, on RouterBench, 10 of 11 do), so
:meth:`OnlineRidge.bonus` computes each distinct matrix once; the distinct matrices are found
on the first call after a change and kept until the next one.

>>> import numpy as np
>>> m = OnlineRidge(ridge=1.0, n_targets=1).fit(np.zeros((0, 2)), np.zeros((0, 1), bool),
...                                             np.zeros((0, 1, 1)))
>>> m.update(0, np.array([1.0, 0.0]), np.array([2.0]))
>>> m.mean(np.array([[1.0, 0.0]])).round(3).tolist()  # ridge: 2 × 1/(1 + 1)
[[[1.0]]]
>>> m.bonus(np.array([[1.0, 0.0], [0.0, 1.0]])).round(3).tolist()
[[0.707], [1.0]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, DataError, NotFittedError, PersistError
from mixllm.predict.threads import one_blas_thread

__all__ = ["OnlineRidge"]

FloatArray = NDArray[np.float64]


class OnlineRidge:
    """Per-LLM ridge regression of ``n_targets`` targets, updated online (see module doc)."""

    def __init__(self, ridge: float = 1.0, n_targets: int = 1, discount: float = 1.0) -> None:
        if not (isinstance(ridge, int | float) and ridge > 0):
            raise ConfigError(f"ridge={ridge!r}; expected a number > 0")
        if not (isinstance(discount, int | float) and 0 < discount <= 1):
            raise ConfigError(f"discount={discount!r}; expected a number in (0, 1]")
        self.ridge = float(ridge)
        self.n_targets = int(n_targets)
        self.discount = float(discount)
        self._distinct: tuple[FloatArray, NDArray[np.intp]] | None = None

    def _changed(self, j: int | None = None) -> None:
        """Forget what :meth:`bonus` derived from ``a_inv_``; every method that changes
        ``a_inv_`` calls this (code that writes ``a_inv_`` directly must call it too). With
        ``j`` (only LLM ``j``'s matrix changed) the stacked distinct matrices are patched in
        O(d²) instead: ``j`` leaves the group it shared, or its own rows are overwritten."""
        if j is None or self._distinct is None:
            self._distinct = None
            return
        stacked, column = self._distinct
        d = self.a_inv_.shape[1]
        group = int(column[j])
        if np.count_nonzero(column == group) > 1:
            stacked = np.concatenate([stacked, self.a_inv_[j]])
            column = column.copy()
            column[j] = len(stacked) // d - 1
        else:
            stacked[group * d : (group + 1) * d] = self.a_inv_[j]
        self._distinct = (stacked, column)

    # -- fitting -------------------------------------------------------------------------------
    @one_blas_thread()
    def fit(self, X: NDArray[Any], observed: NDArray[Any], Y: NDArray[Any]) -> OnlineRidge:
        """Statistics from the rows of ``X`` (n, d) each LLM was observed on (``observed``, (n, L),
        boolean) with targets ``Y`` (n, L, T); unobserved cells are ignored."""
        x = np.asarray(X, dtype=np.float64)
        seen = np.asarray(observed, dtype=bool)
        y = np.nan_to_num(np.asarray(Y, dtype=np.float64))
        if x.ndim != 2 or seen.shape != (len(x), seen.shape[1]) or y.shape[:2] != seen.shape:
            raise DataError(f"X {x.shape}, observed {seen.shape} and Y {y.shape} do not match")
        n_llms, d = seen.shape[1], x.shape[1]
        eye = np.eye(d)
        self.a_inv_ = np.empty((n_llms, d, d))
        self.b_ = np.zeros((n_llms, self.n_targets, d))
        for j in range(n_llms):
            rows = x[seen[:, j]]
            l_inv = np.linalg.solve(np.linalg.cholesky(self.ridge * eye + rows.T @ rows), eye)
            self.a_inv_[j] = l_inv.T @ l_inv  # A = L Lᵀ, A⁻¹ = L⁻ᵀ L⁻¹
            self.b_[j] = y[seen[:, j], j, :].T @ rows
        self.counts_ = seen.sum(axis=0).astype(np.int64)
        self._refresh()
        self._changed()
        return self

    def _refresh(self, j: int | None = None) -> None:
        """Recompute θ = A⁻¹ b (all LLMs or LLM ``j``)."""
        if j is None:
            self.theta_ = np.einsum("lde,lte->ltd", self.a_inv_, self.b_)
        else:
            self.theta_[j] = self.b_[j] @ self.a_inv_[j].T

    @property
    def n_llms_(self) -> int:
        self._check_fitted()
        return int(self.a_inv_.shape[0])

    @property
    def dim_(self) -> int:
        self._check_fitted()
        return int(self.a_inv_.shape[1])

    def _check_fitted(self) -> None:
        if not hasattr(self, "a_inv_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit first")

    def _rows(self, X: NDArray[Any]) -> FloatArray:
        x = np.asarray(X, dtype=np.float64)
        x = x[None, :] if x.ndim == 1 else x
        if x.ndim != 2 or not np.isfinite(x).all():
            raise DataError(f"features of shape {x.shape} or not finite; expected finite (n, d)")
        if x.shape[1] != self.dim_:
            raise DataError(f"features have dimension {x.shape[1]}; fitted on {self.dim_}")
        return x

    # -- predicting ----------------------------------------------------------------------------
    def mean(self, X: NDArray[Any]) -> FloatArray:
        """Posterior mean prediction per row, LLM and target: shape (n, L, T)."""
        out: FloatArray = np.einsum("nd,ltd->nlt", self._rows(X), self.theta_)
        return out

    def bonus(self, X: NDArray[Any]) -> FloatArray:
        """``sqrt(xᵀ A_l⁻¹ x)`` per row and LLM: shape (n, L)."""
        self._check_fitted()
        x = self._rows(X)
        stacked, column = self._distinct if self._distinct is not None else self._find_distinct()
        d = x.shape[1]
        # One matrix product against the distinct A⁻¹ stacked (U·d, d): a single BLAS call, as
        # stacked @ x.T (the product against a transposed view is ~30x slower for one row).
        t = (stacked @ x.T).reshape(len(stacked) // d, d, len(x))
        out: FloatArray = np.sqrt(np.maximum(np.einsum("udn,nd->nu", t, x), 0.0))
        return out[:, column]  # (groups need not be in LLM order once updates split them)

    def _find_distinct(self) -> tuple[FloatArray, NDArray[np.intp]]:
        """The distinct A_l⁻¹ stacked (U·d, d), and for each LLM the index of its matrix."""
        n_llms, d, _ = self.a_inv_.shape
        distinct: list[int] = []
        column = np.empty(n_llms, dtype=np.intp)
        diagonals = np.diagonal(self.a_inv_, axis1=1, axis2=2)  # a cheap first test
        for j in range(n_llms):
            same = (
                u for u, k in enumerate(distinct)
                if np.array_equal(diagonals[j], diagonals[k])
                and np.array_equal(self.a_inv_[j], self.a_inv_[k])
            )  # fmt: skip
            column[j] = next(same, len(distinct))
            if column[j] == len(distinct):
                distinct.append(j)
        stacked = np.ascontiguousarray(self.a_inv_[distinct]).reshape(len(distinct) * d, d)
        self._distinct = (stacked, column)
        return self._distinct

    # -- learning ------------------------------------------------------------------------------
    def update(self, j: int, x: NDArray[Any], y: NDArray[Any], weight: float = 1.0) -> None:
        """Add one observation ``x`` (d,) with targets ``y`` (T,) to LLM ``j``."""
        self._check_llm(j)
        row = self._rows(x)[0]
        target = np.asarray(y, dtype=np.float64).reshape(self.n_targets)
        if not (np.isfinite(target).all() and weight > 0):
            raise DataError(f"targets {target.tolist()} with weight {weight!r}; expected finite")
        a_inv = self.a_inv_[j]
        if self.discount < 1.0:
            a_inv /= self.discount
            self.b_[j] *= self.discount
        v = a_inv @ row
        a_inv -= np.outer(v, v) * (weight / (1.0 + weight * (row @ v)))
        self.b_[j] += weight * target[:, None] * row[None, :]
        self.counts_[j] += 1
        self._refresh(j)
        self._changed(j)

    def add_llm(self, theta0: NDArray[Any] | None = None, *, prior_weight: float = 1.0) -> int:
        """A new LLM with nothing observed (A = prior_weight·ridge·I) and prior mean weights
        ``theta0`` ((T, d), default 0: b = prior_weight·ridge·θ₀); returns its index. A
        ``prior_weight`` below 1 is a weaker prior: a wider bonus, and feedback moves the mean
        sooner."""
        if not (prior_weight > 0 and np.isfinite(prior_weight)):
            raise ConfigError(f"prior_weight={prior_weight!r}; expected a number > 0")
        d = self.dim_
        theta = np.zeros((self.n_targets, d))
        if theta0 is not None:
            theta = np.asarray(theta0, dtype=np.float64).reshape(self.n_targets, d)
        ridge = self.ridge * prior_weight
        self.a_inv_ = np.concatenate([self.a_inv_, (np.eye(d) / ridge)[None]])
        self.b_ = np.concatenate([self.b_, ridge * theta[None]])
        self.theta_ = np.concatenate([self.theta_, theta[None]])
        self.counts_ = np.append(self.counts_, 0)
        self._changed()
        return self.n_llms_ - 1

    def remove_llm(self, j: int) -> None:
        """Forget LLM ``j``; later LLMs shift left."""
        self._check_llm(j)
        self.a_inv_ = np.delete(self.a_inv_, j, axis=0)
        self.b_ = np.delete(self.b_, j, axis=0)
        self.theta_ = np.delete(self.theta_, j, axis=0)
        self.counts_ = np.delete(self.counts_, j)
        self._changed()

    def _check_llm(self, j: int) -> None:
        if not 0 <= j < self.n_llms_:
            raise DataError(f"LLM index {j}; the model has {self.n_llms_} LLMs")

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, float], dict[str, NDArray[Any]]]:
        """Parameters and arrays for :meth:`from_state` (no pickle)."""
        self._check_fitted()
        params = {"ridge": self.ridge, "n_targets": self.n_targets, "discount": self.discount}
        arrays = {"a_inv": self.a_inv_, "b": self.b_, "theta": self.theta_, "counts": self.counts_}
        return params, arrays

    @classmethod
    def from_state(
        cls, params: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]
    ) -> OnlineRidge:
        """The model saved by :meth:`get_state`."""
        try:
            model = cls(float(params["ridge"]), int(params["n_targets"]), float(params["discount"]))
            a_inv = np.array(arrays["a_inv"], dtype=np.float64)
            b = np.array(arrays["b"], dtype=np.float64)
            theta = np.array(arrays["theta"], dtype=np.float64)
            counts = np.array(arrays["counts"], dtype=np.int64)
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise PersistError(f"OnlineRidge state is malformed: {exc!r}") from None
        n_llms = a_inv.shape[0] if a_inv.ndim == 3 else -1
        ok = (
            a_inv.ndim == 3
            and a_inv.shape[1] == a_inv.shape[2]
            and b.shape == (n_llms, model.n_targets, a_inv.shape[1])
            and theta.shape == b.shape
            and counts.shape == (n_llms,)
            and np.isfinite(a_inv).all()
            and np.isfinite(b).all()
            and np.isfinite(theta).all()
        )
        if not ok:
            raise PersistError(
                f"OnlineRidge state: a_inv {a_inv.shape}, b and theta {b.shape}, {theta.shape}, "
                f"counts {counts.shape}; expected (L, d, d), (L, T, d) twice and (L,), all finite"
            )
        # θ is restored as saved (not recomputed) so a loaded model predicts bit for bit the same.
        model.a_inv_, model.b_, model.theta_, model.counts_ = a_inv, b, theta, counts
        model._changed()
        return model
