"""LLMs that join a fitted MixLLM router without data: where they start, and how they get tried.

An LLM added without outcomes starts from a **price-tier prior**: the training LLMs' mean
quality regressed on log price (:func:`tier_prior`), held with :data:`COLD_START_PRIOR_WEIGHT`
of a fitted LLM's prior weight, so its LinUCB width starts twice as wide as the others'.

A prior is a guess, and a router that never tries the newcomer never learns whether the guess
was low. With the router's bonus weight α = 0 (the default) the width is not used at all, so a
newcomer priced like the middle of the pool is never chosen. The **newcomer bonus** aims
exploration at what is actually unknown: the newcomer's own width, ``sqrt(eᵀA⁻¹e)`` of its
online statistics (the prior plus its feedback only), weighted by ``explore_new``
(:data:`EXPLORE_NEW` by default) and added to its score even when α = 0. It shrinks along the
queries the newcomer has answered, and only for LLMs added without data, so a router to which
no such LLM was added routes exactly as before. With α >= ``explore_new`` it adds nothing: the
newcomer's bonus is then α·width already, like every other LLM's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError
from mixllm.types import LLM, Prediction

__all__ = [
    "COLD_START_PRIOR_WEIGHT",
    "EXPLORE_NEW",
    "check_explore_new",
    "newcomer_bonus",
    "tier_prior",
    "with_candidates",
]

FloatArray = NDArray[np.float64]

COLD_START_PRIOR_WEIGHT = 0.25
"""Weight of an LLM's price-tier prior, added with no data, relative to the prior of an LLM
with fitted predictors (A = weight·ridge·I: a bonus 1/sqrt(weight) = 2 times wider)."""

EXPLORE_NEW = 0.3
"""Default weight of the newcomer bonus (``MixLLMPredictor(explore_new=...)``): the least
weight on the width of an LLM added without data, whatever the router's α."""


def check_explore_new(value: object) -> float:
    """``value`` as a weight >= 0, or :class:`~mixllm.errors.ConfigError`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not (ok and np.isfinite(float(value)) and float(value) >= 0):  # type: ignore[arg-type]
        raise ConfigError(f"explore_new={value!r}; expected a finite number >= 0")
    return float(value)  # type: ignore[arg-type]


def tier_prior(
    mean_quality: FloatArray, price_in: FloatArray, price_out: FloatArray, llm: LLM
) -> float:
    """Expected quality of an unseen LLM from its price: the known LLMs' mean quality
    regressed on log price, kept within their range (0.5 when no LLM's quality is known).

    >>> q, p = np.array([0.5, 0.9]), np.array([0.1, 10.0])
    >>> round(tier_prior(q, p, p, LLM("mid", 1.0, 1.0)), 3), tier_prior(q, p, p, LLM("top", 99, 99))
    (0.7, 0.9)
    """
    known = np.isfinite(mean_quality)
    if not known.any():
        return 0.5
    ys = mean_quality[known]
    xs = np.log10(1e-3 + price_in + price_out)[known]
    x = np.log10(1e-3 + llm.price_in_per_mtok + llm.price_out_per_mtok)
    if len(ys) >= 2 and np.ptp(xs) > 0:
        slope, intercept = np.polyfit(xs, ys, 1)
        return float(np.clip(intercept + slope * x, ys.min(), ys.max()))
    return float(ys.mean())


def newcomer_bonus(
    a_inv: NDArray[np.float64], fa: FloatArray, newcomer: NDArray[np.bool_], weight: float
) -> FloatArray:
    """``weight``·sqrt(eᵀA_l⁻¹e) per row of ``fa`` (features with the constant) for the LLMs
    flagged in ``newcomer``, 0 for the others: shape (n, L)."""
    out = np.zeros((len(fa), len(newcomer)))
    for j in np.flatnonzero(newcomer):
        out[:, j] = np.sqrt(np.maximum(np.einsum("nd,nd->n", fa @ a_inv[j], fa), 0.0))
    out *= weight
    return out


def with_candidates(
    pred: Prediction, bonus: FloatArray | None, candidates: Sequence[str] | None
) -> tuple[Prediction, FloatArray | None]:
    """``pred`` and its newcomer ``bonus`` restricted to the columns of ``candidates`` (both
    unchanged when ``candidates`` is ``None``)."""
    if candidates is None:
        return pred, bonus
    chosen = pred.select(candidates)
    if bonus is None:
        return chosen, None
    return chosen, bonus[:, [pred.llms.index(m) for m in chosen.llms]]
