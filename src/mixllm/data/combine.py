"""Combine datasets: :func:`concat` stacks the queries of several, over the union of their LLMs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset, FloatArray, _full
from mixllm.errors import DataError
from mixllm.types import LLM

__all__ = ["concat"]


def concat(datasets: Sequence[Dataset], *, name: str | None = None) -> Dataset:
    """One dataset holding the queries of all ``datasets``; LLMs are the union (missing → NaN)."""
    if not datasets:
        raise DataError("no datasets to concatenate")
    if len(datasets) == 1:
        return datasets[0]
    llms = tuple(dict.fromkeys(m for d in datasets for m in d.llms))
    parts = [_widen(d, llms) for d in datasets]
    has_resp = any(d.responses is not None for d in datasets)
    has_domains = any(d.domains is not None for d in datasets)

    def cat(attr: str) -> NDArray[Any]:
        return np.concatenate([getattr(p, attr) for p in parts])

    prices: dict[str, LLM] = {}
    for d in datasets:
        prices.update(d.prices)
    return Dataset(
        query_ids=cat("query_ids"),
        prompts=cat("prompts"),
        llms=llms,
        quality=cat("quality"),
        cost_usd=cat("cost_usd"),
        prompt_tokens=cat("prompt_tokens"),
        output_tokens=cat("output_tokens"),
        latency_s=cat("latency_s"),
        tasks=cat("tasks"),
        name=name or "+".join(d.name for d in datasets),
        prices=prices,
        responses=cat("responses") if has_resp else None,
        domains=np.concatenate([_domains(d) for d in datasets]) if has_domains else None,
    )


def _domains(ds: Dataset) -> NDArray[np.object_]:
    """``ds.domains``, or ``None`` for each query when it has none."""
    return np.full(len(ds), None, dtype=object) if ds.domains is None else ds.domains


def _widen(ds: Dataset, llms: tuple[str, ...]) -> Dataset:
    """``ds`` with columns for ``llms`` (a superset of its own), unknown cells NaN/None."""
    n = len(ds)
    cols = {m: j for j, m in enumerate(ds.llms)}

    def grid(a: FloatArray) -> FloatArray:
        out = _full(n, len(llms))
        for j, m in enumerate(llms):
            if m in cols:
                out[:, j] = a[:, cols[m]]
        return out

    responses = np.full((n, len(llms)), None, dtype=object)
    if ds.responses is not None:
        for j, m in enumerate(llms):
            if m in cols:
                responses[:, j] = ds.responses[:, cols[m]]
    return replace(
        ds,
        llms=llms,
        quality=grid(ds.quality),
        cost_usd=grid(ds.cost_usd),
        output_tokens=grid(ds.output_tokens),
        latency_s=grid(ds.latency_s),
        responses=responses,
    )
