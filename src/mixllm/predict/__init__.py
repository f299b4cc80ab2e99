"""Predictors (layer L2, MixLLM §3.2–3.3): per-LLM answer quality, output length → cost, and the
LinUCB uncertainty bonus, all on query embeddings.

- :class:`QualityModel`: P(good answer) per LLM; random forest (the paper's), logistic, gradient
  boosting or kNN, chosen by cross-validated Brier score (``kind="auto"``).
- :class:`LengthModel`: output tokens per LLM (mean, ridge, boosting or kNN on log tokens);
  :func:`cost_from_tokens` turns tokens into USD, :func:`cost_errors` scores predicted costs.
- :class:`UncertaintyModel`: sqrt(eᵀ A_l⁻¹ e) per LLM with rank-one updates.
- :class:`MeanLengthCostModel`: the mean-output-length cost baseline.

Every fitted model saves as ``get_state() -> (JSON-able params, arrays)`` and restores with
``from_state`` (no pickle: tree ensembles are stored as node arrays, :class:`TreeEnsemble`).
Also here: the masked log loss and feature scaling the learned routers share, cosine
neighbours, and a BLAS thread limit for training code.
"""

from __future__ import annotations

from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import masked_log_loss, sigmoid, standardize, standardize_fit
from mixllm.predict.forest import TreeEnsemble
from mixllm.predict.length import CostError, LengthModel, cost_errors, cost_from_tokens
from mixllm.predict.neighbours import nearest, top_k, unit_rows
from mixllm.predict.quality import QualityModel, brier_score, expected_calibration_error
from mixllm.predict.threads import one_blas_thread
from mixllm.predict.uncertainty import UncertaintyModel

__all__ = [
    "CostError",
    "LengthModel",
    "MeanLengthCostModel",
    "QualityModel",
    "TreeEnsemble",
    "UncertaintyModel",
    "brier_score",
    "cost_errors",
    "cost_from_tokens",
    "expected_calibration_error",
    "masked_log_loss",
    "nearest",
    "one_blas_thread",
    "sigmoid",
    "standardize",
    "standardize_fit",
    "top_k",
    "unit_rows",
]
