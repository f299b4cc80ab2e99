"""Uncertainty bonus (MixLLM §3.3, LinUCB): how little an LLM has seen queries like this one.

For LLM l, A_l = ridge · I + Σ e eᵀ over the embeddings e it was trained or updated on; the
bonus of a query e is sqrt(eᵀ A_l⁻¹ e). It is large in directions the LLM has rarely seen and
shrinks as feedback arrives. The policy multiplies it by its exploration weight α.

A_l⁻¹ is kept, not A_l: it is computed once at :meth:`UncertaintyModel.fit` (Cholesky solve)
and each new observation updates it in O(d²) with the Sherman–Morrison formula.

LLMs trained on the same rows have the same A_l⁻¹ (on RouterBench 10 of 11 do), so
:meth:`UncertaintyModel.bonus` computes each distinct matrix once; the distinct matrices are
found on the first call after a change and kept until the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, DataError, NotFittedError, PersistError
from mixllm.predict.threads import one_blas_thread

__all__ = ["UncertaintyModel"]

FloatArray = NDArray[np.float64]


class UncertaintyModel:
    """One LinUCB matrix A_l⁻¹ per LLM.

    Parameters
    ----------
    ridge:
        The prior's weight: A_l starts as ``ridge`` · I, so an unseen direction has bonus
        ‖e‖ / sqrt(ridge).

    Attributes
    ----------
    a_inv_:
        Array (n_llms, d, d) of the inverses A_l⁻¹.
    counts_:
        Observations per LLM (fit rows plus updates).

    Examples
    --------
    >>> m = UncertaintyModel().fit(np.eye(2)[[0, 0, 0]], np.ones((3, 1), dtype=bool))
    >>> m.bonus(np.eye(2)).round(3).tolist()  # seen three times along x, never along y
    [[0.5], [1.0]]
    >>> m.update(0, np.array([0.0, 1.0]))
    >>> m.bonus(np.eye(2)).round(3).tolist()
    [[0.5], [0.707]]
    """

    def __init__(self, ridge: float = 1.0) -> None:
        self.ridge = ridge
        self._distinct: tuple[FloatArray, NDArray[np.intp]] | None = None

    def _changed(self) -> None:
        """Forget what :meth:`bonus` derived from ``a_inv_``; every method that changes
        ``a_inv_`` calls this (code that writes ``a_inv_`` directly must call it too)."""
        self._distinct = None

    def _check_fitted(self) -> None:
        if not hasattr(self, "a_inv_"):
            raise NotFittedError("UncertaintyModel is not fitted yet; call fit(X, observed) first")

    @property
    def dim_(self) -> int:
        self._check_fitted()
        return int(self.a_inv_.shape[1])

    @property
    def n_llms_(self) -> int:
        self._check_fitted()
        return int(self.a_inv_.shape[0])

    @one_blas_thread()
    def fit(self, X: NDArray[Any], observed: NDArray[Any]) -> UncertaintyModel:
        """A_l⁻¹ from the rows of ``X`` (n, d) where ``observed[:, l]`` (n, L) is true."""
        if not (isinstance(self.ridge, int | float) and self.ridge > 0):
            raise ConfigError(f"ridge={self.ridge!r}; expected a number > 0")
        x = self._rows(X)
        obs = np.asarray(observed)
        if obs.shape[:1] != (len(x),) or obs.ndim != 2 or obs.dtype != np.bool_:
            raise DataError(f"observed has shape {obs.shape}, dtype {obs.dtype}; "
                            f"expected booleans of shape ({len(x)}, n_llms)")  # fmt: skip
        d = x.shape[1]
        eye = np.eye(d)
        self.a_inv_ = np.empty((obs.shape[1], d, d))
        for j in range(obs.shape[1]):
            rows = x[obs[:, j]]
            a = self.ridge * eye + rows.T @ rows
            l_inv = np.linalg.solve(np.linalg.cholesky(a), eye)  # A = L Lᵀ, A⁻¹ = L⁻ᵀ L⁻¹
            self.a_inv_[j] = l_inv.T @ l_inv
        self.counts_ = obs.sum(axis=0).astype(np.int64)
        self._changed()
        return self

    def _rows(self, X: NDArray[Any]) -> FloatArray:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or not np.isfinite(x).all():
            raise DataError(f"embeddings have shape {x.shape} or non-finite values; "
                            "expected finite (n, dim)")  # fmt: skip
        if hasattr(self, "a_inv_") and x.shape[1] != self.dim_:
            raise DataError(f"embeddings have dimension {x.shape[1]}; fitted on {self.dim_}")
        return x

    def bonus(self, X: NDArray[Any]) -> FloatArray:
        """sqrt(eᵀ A_l⁻¹ e) for each row e of ``X`` and each LLM l: shape (n, n_llms)."""
        self._check_fitted()
        x = self._rows(X)
        stacked, column = self._distinct if self._distinct is not None else self._find_distinct()
        d = x.shape[1]
        # One matrix product against the distinct A⁻¹ stacked (U·d, d): a single BLAS call, as
        # stacked @ x.T (the product against a transposed view is ~30x slower for one row).
        t = (stacked @ x.T).reshape(len(stacked) // d, d, len(x))
        quad = np.einsum("udn,nd->nu", t, x)
        out: FloatArray = np.sqrt(np.maximum(quad, 0.0))
        return out if len(column) == out.shape[1] else out[:, column]

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

    def update(self, llm_index: int, e: NDArray[Any]) -> None:
        """Add the observation(s) ``e`` ((d,) or (m, d)) to LLM ``llm_index``: A ← A + e eᵀ,
        applied to A⁻¹ by Sherman–Morrison, O(d²) per row."""
        self._check_llm(llm_index)
        a_inv = self.a_inv_[llm_index]
        for row in self._rows(e):
            v = a_inv @ row
            a_inv -= np.outer(v, v) / (1.0 + row @ v)
            self.counts_[llm_index] += 1
        self._changed()

    def add_llm(self) -> int:
        """A new LLM with no observations (A = ridge · I); returns its index."""
        self._check_fitted()
        fresh = np.eye(self.dim_) / self.ridge
        self.a_inv_ = np.concatenate([self.a_inv_, fresh[None]])
        self.counts_ = np.append(self.counts_, 0)
        self._changed()
        return self.n_llms_ - 1

    def remove_llm(self, j: int) -> None:
        """Forget LLM ``j``; the later ones shift left."""
        self._check_llm(j)
        self.a_inv_ = np.delete(self.a_inv_, j, axis=0)
        self.counts_ = np.delete(self.counts_, j)
        self._changed()

    def _check_llm(self, j: int) -> None:
        self._check_fitted()
        if not 0 <= j < self.n_llms_:
            raise DataError(f"LLM index {j}; the model has {self.n_llms_} LLMs")

    # -- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, float], dict[str, NDArray[Any]]]:
        """``({"ridge": ...}, {"a_inv": (L, d, d), "counts": (L,)})`` for :meth:`from_state`."""
        self._check_fitted()
        return {"ridge": float(self.ridge)}, {"a_inv": self.a_inv_, "counts": self.counts_}

    @classmethod
    def from_state(
        cls, params: Mapping[str, Any], arrays: Mapping[str, NDArray[Any]]
    ) -> UncertaintyModel:
        """The model saved by :meth:`get_state`."""
        try:
            model = cls(float(params["ridge"]))
            a_inv = np.array(arrays["a_inv"], dtype=np.float64)
            counts = np.array(arrays["counts"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise PersistError(f"UncertaintyModel state is malformed: {exc!r}") from None
        ok = a_inv.ndim == 3 and a_inv.shape[1] == a_inv.shape[2] and np.isfinite(a_inv).all()
        if not ok or counts.shape != a_inv.shape[:1]:
            raise PersistError(
                f"UncertaintyModel state: a_inv {a_inv.shape}, counts {counts.shape}; "
                "expected (L, d, d) finite and (L,)"
            )
        model.a_inv_, model.counts_ = a_inv, counts
        model._changed()
        return model
