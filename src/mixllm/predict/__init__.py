"""Predictors' building blocks (layer L2): per-LLM cost from prices and token counts, feature
scaling and the masked log loss the learned quality models share, and a BLAS thread limit for
training code."""

from __future__ import annotations

from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import masked_log_loss, sigmoid, standardize, standardize_fit
from mixllm.predict.threads import one_blas_thread

__all__ = [
    "MeanLengthCostModel",
    "masked_log_loss",
    "one_blas_thread",
    "sigmoid",
    "standardize",
    "standardize_fit",
]
