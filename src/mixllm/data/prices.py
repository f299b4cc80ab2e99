"""Per-LLM token prices fitted to recorded costs, and RouterBench's published list prices.

RouterBench priced every answer as ``prompt_tokens × price_in + output_tokens × price_out`` with
``cl100k_base`` token counts of the prompt and the response. Fitting those two prices per LLM by
non-negative least squares on the shared 0-shot file reproduces ``total_cost`` exactly
(R² = 1, largest relative error ~1e-15) and finds the list prices below.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.types import LLM

__all__ = ["ROUTERBENCH_LIST_PRICES", "PriceFit", "fit_llm_price", "fit_prices", "fitted_llms"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


def _list(name: str, price_in: float, price_out: float) -> tuple[str, LLM]:
    return name, LLM(name, price_in_per_mtok=price_in, price_out_per_mtok=price_out)


#: USD per million tokens (input, output) for the 11 RouterBench LLMs, as the providers listed
#: them in early 2024; the fit on ``routerbench_0shot_subset.csv`` finds exactly these values.
ROUTERBENCH_LIST_PRICES: Mapping[str, LLM] = MappingProxyType(
    dict(
        [
            _list("gpt-4-1106-preview", 10.0, 30.0),
            _list("gpt-3.5-turbo-1106", 1.0, 2.0),
            _list("claude-instant-v1", 0.8, 2.4),
            _list("claude-v1", 8.0, 24.0),
            _list("claude-v2", 8.0, 24.0),
            _list("meta/llama-2-70b-chat", 0.9, 0.9),
            _list("mistralai/mixtral-8x7b-chat", 0.6, 0.6),
            _list("zero-one-ai/Yi-34B-Chat", 0.8, 0.8),
            _list("WizardLM/WizardLM-13B-V1.2", 0.3, 0.3),
            _list("meta/code-llama-instruct-34b-chat", 0.776, 0.776),
            _list("mistralai/mistral-7b-chat", 0.2, 0.2),
        ]
    )
)


@dataclass(frozen=True)
class PriceFit:
    """Prices of one LLM fitted to its recorded costs, and how well they reproduce them.

    ``r2`` is the coefficient of determination of the predicted costs; ``median_rel_error`` and
    ``max_rel_error`` are ``|predicted - recorded| / recorded`` over rows with a positive cost.
    """

    llm: str
    price_in_per_mtok: float
    price_out_per_mtok: float
    n_rows: int
    r2: float
    median_rel_error: float
    max_rel_error: float

    def to_llm(self) -> LLM:
        """The :class:`~mixllm.types.LLM` record carrying these prices."""
        return LLM(self.llm, self.price_in_per_mtok, self.price_out_per_mtok)


def _nnls2(a: FloatArray, y: FloatArray) -> FloatArray:
    """Least squares ``a @ x ≈ y`` with ``x >= 0`` for two unknowns (exact active-set search)."""
    candidates: list[FloatArray] = [np.asarray(np.linalg.lstsq(a, y, rcond=None)[0], np.float64)]
    for col in range(2):
        x = np.zeros(2)
        denom = float(a[:, col] @ a[:, col])
        x[col] = max(float(a[:, col] @ y) / denom, 0.0) if denom > 0 else 0.0
        candidates.append(x)
    feasible = [x for x in candidates if (x >= 0).all()]
    return min(feasible, key=lambda x: float(np.sum((a @ x - y) ** 2)))


def fit_llm_price(
    prompt_tokens: FloatArray,
    output_tokens: FloatArray,
    cost_usd: FloatArray,
    *,
    llm: str,
) -> PriceFit | None:
    """Fit ``cost_usd ≈ (prompt_tokens × price_in + output_tokens × price_out) / 1e6``.

    Rows with a missing (``NaN``) value are left out; prices are non-negative and rounded to
    1e-6 USD per million tokens. Returns ``None`` when fewer than two rows are usable.

    >>> fit = fit_llm_price(np.array([100.0, 200.0, 50.0]), np.array([10.0, 5.0, 40.0]),
    ...                     np.array([1.3e-3, 2.15e-3, 1.7e-3]), llm="m")
    >>> fit.price_in_per_mtok, fit.price_out_per_mtok, round(fit.r2, 9)
    (10.0, 30.0, 1.0)
    """
    pt, ot, cost = (
        np.asarray(v, dtype=np.float64) for v in (prompt_tokens, output_tokens, cost_usd)
    )
    ok = np.isfinite(pt) & np.isfinite(ot) & np.isfinite(cost)
    if ok.sum() < 2:
        return None
    a = np.stack([pt[ok], ot[ok]], axis=1) / 1e6
    y = cost[ok]
    x = np.round(_nnls2(a, y), 6)
    pred = a @ x
    ss_res = float(np.sum((pred - y) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res <= 1e-30)
    pos = y > 0
    rel = np.abs(pred[pos] - y[pos]) / y[pos]
    return PriceFit(
        llm=llm,
        price_in_per_mtok=float(x[0]),
        price_out_per_mtok=float(x[1]),
        n_rows=int(ok.sum()),
        r2=r2,
        median_rel_error=float(np.median(rel)) if len(rel) else math.nan,
        max_rel_error=float(rel.max()) if len(rel) else math.nan,
    )


def fit_prices(ds: Dataset, *, prompt_tokens: FloatArray | None = None) -> dict[str, PriceFit]:
    """Fit input and output prices for every LLM of ``ds`` that has token counts and costs.

    ``prompt_tokens`` (shape (n, L)) gives each (query, LLM) its own prompt token count, as the
    long layout records it (LLMs with different tokenizers count the same prompt differently);
    default: the query's count ``ds.prompt_tokens`` for every LLM. LLMs with fewer than two rows
    of prompt tokens, output tokens and cost get no entry.
    """
    grid = np.broadcast_to(ds.prompt_tokens[:, None], ds.cost_usd.shape)
    if prompt_tokens is not None:
        grid = np.asarray(prompt_tokens, dtype=np.float64)
        if grid.shape != ds.cost_usd.shape:
            raise ValueError(f"prompt_tokens has shape {grid.shape}, expected {ds.cost_usd.shape}")
    fits: dict[str, PriceFit] = {}
    for j, name in enumerate(ds.llms):
        fit = fit_llm_price(grid[:, j], ds.output_tokens[:, j], ds.cost_usd[:, j], llm=name)
        if fit is not None:
            fits[name] = fit
    return fits


def fitted_llms(
    fits: Mapping[str, PriceFit], *, source: str, min_r2: float = 0.99
) -> dict[str, LLM]:
    """The LLM records of ``fits``; a fit with ``r2 < min_r2`` is kept and logged as a warning."""
    for fit in fits.values():
        if fit.r2 < min_r2:
            logger.warning(
                "%s: token prices reproduce the costs of %s poorly (R²=%.3f, median error %.1f%%)",
                source,
                fit.llm,
                fit.r2,
                100 * fit.median_rel_error,
            )
    return {name: fit.to_llm() for name, fit in fits.items()}
