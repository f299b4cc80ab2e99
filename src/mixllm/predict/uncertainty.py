"""Uncertainty bonus (MixLLM §3.3, LinUCB): how little an LLM has seen queries like this one.

For LLM l, A_l = ridge · I + Σ e eᵀ over the embeddings e it was trained or updated on; the
bonus of a query e is sqrt(eᵀ A_l⁻¹ e). It is large in directions the LLM has rarely seen and
shrinks as feedback arrives. The policy multiplies it by its exploration weight α.

:class:`UncertaintyModel` is :class:`~mixllm.predict.online.OnlineRidge` with no regression
targets: A_l⁻¹ computed once at fit (Cholesky solve), updated in O(d²) by Sherman–Morrison, each
distinct matrix's bonus computed once. The MixLLM router itself keeps an ``OnlineRidge`` whose
statistics give both this bonus and its online corrections.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import DataError, PersistError
from mixllm.predict.online import OnlineRidge

__all__ = ["UncertaintyModel"]


class UncertaintyModel(OnlineRidge):
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
        super().__init__(ridge, n_targets=0)

    def fit(  # type: ignore[override]
        self, X: NDArray[Any], observed: NDArray[Any]
    ) -> UncertaintyModel:
        """A_l⁻¹ from the rows of ``X`` (n, d) where ``observed[:, l]`` (n, L) is true."""
        x = np.asarray(X, dtype=np.float64)
        obs = np.asarray(observed)
        if obs.shape[:1] != (len(x),) or obs.ndim != 2 or obs.dtype != np.bool_:
            raise DataError(f"observed has shape {obs.shape}, dtype {obs.dtype}; "
                            f"expected booleans of shape ({len(x)}, n_llms)")  # fmt: skip
        if x.ndim != 2 or not np.isfinite(x).all():
            raise DataError(f"embeddings have shape {x.shape} or non-finite values; "
                            "expected finite (n, dim)")  # fmt: skip
        super().fit(x, obs, np.zeros((len(x), obs.shape[1], 0)))
        return self

    def update(  # type: ignore[override]
        self, llm_index: int, e: NDArray[Any]
    ) -> None:
        """Add the observation(s) ``e`` ((d,) or (m, d)) to LLM ``llm_index``: A ← A + e eᵀ."""
        self._check_fitted()
        self._check_llm(llm_index)
        for row in self._rows(e):
            super().update(llm_index, row, np.zeros(0))

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
        empty = np.zeros((a_inv.shape[0], 0, a_inv.shape[1]))
        model.a_inv_, model.counts_, model.b_, model.theta_ = a_inv, counts, empty, empty.copy()
        model._changed()
        return model
