"""Output length and cost prediction (MixLLM §3.2): per LLM, how many tokens it will answer a
query with, and the cost that implies at its list prices.

:class:`LengthModel` regresses log(1 + output tokens) on the query embedding and the prompt's
log token count, per LLM, and back-transforms; ``kind="auto"`` picks the kind with the lowest
cross-validated mean absolute error in tokens. :func:`cost_from_tokens` is the paper's cost
formula and :func:`cost_errors` compares predicted with recorded costs per LLM.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import DataError
from mixllm.predict.heads import Params
from mixllm.predict.learners import Target
from mixllm.predict.perllm import PerLLMModel, check_features

__all__ = ["CostError", "LengthModel", "cost_errors", "cost_from_tokens", "tokens_from_cost"]

FloatArray = NDArray[np.float64]


class LengthModel(PerLLMModel):
    """Per-LLM output token regressors, kind chosen by cross-validated MAE in tokens.

    Parameters
    ----------
    kind:
        ``"auto"`` (choose among the four below by CV), ``"mean"`` (each LLM's mean output
        length: the :class:`~mixllm.predict.MeanLengthCostModel` baseline), ``"ridge"``
        (ridge regression), ``"hgb"`` (histogram gradient boosting) or ``"knn"`` (mean log
        length of the nearest training queries).
    select, cv, seed, grids, n_trees, n_jobs:
        As for :class:`~mixllm.predict.QualityModel`.

    Features are the embedding plus the standardised log prompt token count (kNN uses the
    embedding only); a missing prompt count counts as the training mean. Regressors predict
    log(1 + tokens), so the back-transformed prediction is a typical (median-like) length; the
    ``mean`` kind predicts the arithmetic mean.

    Examples
    --------
    >>> x = np.eye(2)[[0, 1] * 20]
    >>> tokens = np.where(x[:, :1] > 0, 10.0, 100.0)
    >>> m = LengthModel("knn", grids={"knn": [5]}).fit(x, np.full(40, 50.0), tokens)
    >>> m.predict(np.eye(2), np.array([50.0, 50.0])).round(1).tolist()
    [[10.0], [100.0]]
    """

    _target: ClassVar[Target] = "real"
    _kinds: ClassVar[tuple[str, ...]] = ("mean", "ridge", "hgb", "knn")

    def fit(
        self, X: NDArray[Any], prompt_tokens: NDArray[Any], output_tokens: NDArray[Any]
    ) -> LengthModel:
        """Fit one regressor per column of ``output_tokens`` (n, L), NaN where unknown."""
        x = check_features(X)
        out = _check_tokens(output_tokens, len(x))
        ptok = np.log1p(_check_prompt(prompt_tokens, len(x)))
        seen = np.isfinite(ptok)
        self.log_prompt_mean_ = float(ptok[seen].mean()) if seen.any() else 0.0
        std = float(ptok[seen].std()) if seen.any() else 0.0
        self.log_prompt_scale_ = std if std > 1e-12 else 1.0
        seen_out = np.isfinite(out)
        self.prior_tokens_ = float(out[seen_out].mean()) if seen_out.any() else 0.0
        self._fit_columns(self._features(x, prompt_tokens), np.log1p(out))
        return self

    def add_llm(
        self, X: NDArray[Any], prompt_tokens: NDArray[Any], output_tokens: NDArray[Any]
    ) -> int:
        """Fit a regressor for a new LLM from its own rows; returns its column index."""
        self._check_fitted()
        x = check_features(X)
        out = _check_tokens(np.asarray(output_tokens, dtype=np.float64).reshape(-1, 1), len(x))
        return self._add_column(self._features(x, prompt_tokens), np.log1p(out[:, 0]))

    def predict(self, X: NDArray[Any], prompt_tokens: NDArray[Any]) -> FloatArray:
        """Predicted output tokens, shape (n, n_llms), >= 0."""
        self._check_fitted()
        z = self._features(check_features(X), prompt_tokens)
        out: FloatArray = np.maximum(np.expm1(self._predict_raw(z)), 0.0)
        return out

    def _features(self, x: FloatArray, prompt_tokens: NDArray[Any]) -> FloatArray:
        ptok = np.log1p(_check_prompt(prompt_tokens, len(x)))
        scaled = (ptok - self.log_prompt_mean_) / self.log_prompt_scale_
        return np.concatenate([x, np.where(np.isfinite(scaled), scaled, 0.0)[:, None]], axis=1)

    def _embed_dim(self) -> int:
        return int(self.dim_) - 1  # the last feature is the prompt length

    def _loss(self, pred: FloatArray, y: FloatArray) -> FloatArray:
        out: FloatArray = np.abs(np.expm1(pred) - np.expm1(y)[:, None])
        return out

    def _constant(self, y: FloatArray) -> float:
        return float(np.log1p(np.expm1(y).mean() if len(y) else self.prior_tokens_))

    def _extra_state(self) -> Params:
        return {
            "log_prompt_mean_": self.log_prompt_mean_,
            "log_prompt_scale_": self.log_prompt_scale_,
            "prior_tokens_": self.prior_tokens_,
        }

    def _restore_extra(self, params: Mapping[str, Any]) -> None:
        for name in ("log_prompt_mean_", "log_prompt_scale_", "prior_tokens_"):
            setattr(self, name, float(params[name]))


def _check_tokens(tokens: NDArray[Any], n: int) -> FloatArray:
    t = np.asarray(tokens, dtype=np.float64)
    if t.ndim != 2 or len(t) != n:
        raise DataError(f"output_tokens has shape {t.shape}; expected ({n}, n_llms)")
    if (t < 0).any():
        raise DataError("output_tokens has negative values; expected counts >= 0 or NaN")
    return t


def _check_prompt(prompt_tokens: NDArray[Any], n: int) -> FloatArray:
    p = np.asarray(prompt_tokens, dtype=np.float64)
    if p.shape != (n,):
        raise DataError(f"prompt_tokens has shape {p.shape}; expected ({n},)")
    if (p < 0).any():
        raise DataError("prompt_tokens has negative values; expected counts >= 0 or NaN")
    return p


def cost_from_tokens(
    prompt_tokens: NDArray[Any],
    output_tokens: NDArray[Any],
    price_in: NDArray[Any],
    price_out: NDArray[Any],
) -> FloatArray:
    """Cost in USD (MixLLM §3.2): prompt tokens × input price + output tokens × output price,
    prices in USD per million tokens; shape (n, L).

    >>> cost_from_tokens(np.array([1000.0]), np.array([[10.0, 0.0]]),
    ...                  np.array([1.0, 2.0]), np.array([3.0, 4.0])).tolist()
    [[0.00103, 0.002]]
    """
    p = np.asarray(prompt_tokens, dtype=np.float64).reshape(-1, 1)
    o = np.asarray(output_tokens, dtype=np.float64)
    out: FloatArray = (p * np.asarray(price_in, float) + o * np.asarray(price_out, float)) / 1e6
    return out


def tokens_from_cost(
    prompt_tokens: NDArray[Any],
    cost_usd: NDArray[Any],
    price_in: NDArray[Any],
    price_out: NDArray[Any],
) -> FloatArray:
    """Output tokens that :func:`cost_from_tokens` would price at ``cost_usd`` (shape (n, L));
    NaN for an LLM whose output is free (its cost says nothing about length).

    >>> tokens_from_cost(np.array([1000.0]), np.array([[0.00103, 0.002]]),
    ...                  np.array([1.0, 2.0]), np.array([3.0, 0.0])).round(6).tolist()
    [[10.0, nan]]
    """
    p = np.asarray(prompt_tokens, dtype=np.float64).reshape(-1, 1)
    pin, pout = np.asarray(price_in, float), np.asarray(price_out, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = (np.asarray(cost_usd, float) * 1e6 - p * pin) / pout
    return np.where(pout > 0, out, np.nan)


@dataclass(frozen=True)
class CostError:
    """How far predicted costs are from recorded ones for one LLM (over its recorded queries)."""

    llm: str
    n: int
    mean_cost_usd: float
    mae_usd: float
    median_rel_error: float  # median of |predicted − recorded| / recorded (recorded > 0)


def cost_errors(
    predicted_usd: NDArray[Any], recorded_usd: NDArray[Any], llms: Sequence[str]
) -> list[CostError]:
    """Per-LLM error of predicted against recorded cost; NaN recorded cells are skipped.

    >>> [e.mae_usd for e in cost_errors(np.array([[1.0], [2.0]]), np.array([[2.0], [2.0]]),
    ...                                 ["a"])]
    [0.5]
    """
    pred = np.asarray(predicted_usd, dtype=np.float64)
    rec = np.asarray(recorded_usd, dtype=np.float64)
    if pred.shape != rec.shape or pred.ndim != 2 or pred.shape[1] != len(llms):
        raise DataError(f"costs have shapes {pred.shape}, {rec.shape} for {len(llms)} LLMs")
    rows = []
    for j, name in enumerate(llms):
        seen = np.isfinite(rec[:, j])
        p, r = pred[seen, j], rec[seen, j]
        rel = np.abs(p - r)[r > 0] / r[r > 0]
        rows.append(
            CostError(
                llm=name,
                n=int(seen.sum()),
                mean_cost_usd=float(r.mean()) if len(r) else float("nan"),
                mae_usd=float(np.abs(p - r).mean()) if len(r) else float("nan"),
                median_rel_error=float(np.median(rel)) if len(rel) else float("nan"),
            )
        )
    return rows
