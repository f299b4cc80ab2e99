"""Helpers of MixLLM's features: a faster :meth:`~mixllm.embed.DomainProjection.transform` (one
decision projects one query, where the number of numpy calls is what costs), the constant
feature of the online corrections, one feedback's query as a batch, and the price arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.embed.tagged import DomainProjection
from mixllm.types import QueryBatch

__all__ = ["one_query", "price_arrays", "project", "with_bias"]

FloatArray = NDArray[np.float64]


def project(projection: DomainProjection, x: NDArray[np.float32]) -> NDArray[np.float32]:
    """``projection.transform(x)``, the same arithmetic in a third of the numpy calls (a
    quarter of one decision's predict time went to the calls); tests check both agree to float32
    rounding. Input it would reject goes to ``transform`` for its error."""
    if x.ndim != 2 or x.shape[1] != len(projection.mean_) or not np.isfinite(x).all():
        return projection.transform(x)
    z: NDArray[np.float32] = _unit_rows((x - projection.mean_) @ projection.W_)
    if projection.input_weight > 0:
        head = np.float32(projection.input_weight) * _unit_rows(x)
        z = np.concatenate([head, z], axis=1).astype(np.float32, copy=False)
    return _unit_rows(z)


def _unit_rows(m: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows over their length (at least 1e-12), the length as ``numpy.linalg.norm`` computes it
    (as :func:`mixllm.embed.tagged` does)."""
    norm = np.sqrt(np.add.reduce(m * m, axis=1, keepdims=True))
    # (no typing.cast here: its subscripted type is built on every call, ~3 µs a decision)
    out: NDArray[np.float32] = m / np.maximum(norm, np.float32(1e-12))  # type: ignore[assignment]
    return out


def with_bias(f: NDArray[Any]) -> NDArray[np.float64]:
    """Features (rows, or one row) as float64 rows with a constant 1 appended (the intercept of
    the online corrections and of the linear bandits)."""
    rows = np.atleast_2d(np.asarray(f, dtype=np.float64))
    return np.concatenate([rows, np.ones((len(rows), 1))], axis=1)


def one_query(embedding: NDArray[Any], prompt_tokens: float) -> QueryBatch:
    """The query of one feedback (its embedding and prompt tokens) as a batch of one."""
    e = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
    return QueryBatch(("feedback",), ("",), e, np.array([prompt_tokens], dtype=np.float64))


def price_arrays(train: Dataset) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """Input and output prices per LLM of ``train`` (USD per million tokens), and which LLMs
    can be costed from predicted tokens (priced, with output tokens and prompt tokens known)."""
    llms = [train.llm(m) for m in train.llms]
    price_in = np.array([m.price_in_per_mtok for m in llms], dtype=np.float64)
    price_out = np.array([m.price_out_per_mtok for m in llms], dtype=np.float64)
    has_tokens = np.isfinite(train.output_tokens).any(axis=0)
    priced = (price_in > 0) | (price_out > 0)
    return price_in, price_out, has_tokens & priced & np.isfinite(train.prompt_tokens).any()
