"""Saving and restoring a :class:`~mixllm.policy.MixLLMPredictor`: each part's parameters
under its key and its arrays prefixed by it, plus the per-LLM arrays of the pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mixllm.embed.tagged import DomainProjection
from mixllm.policy.newcomers import Newcomers
from mixllm.policy.state import (
    Arrays,
    JSONValue,
    cost_arrays,
    part_state,
    parts_state,
    restore_cost,
)
from mixllm.predict.length import LengthModel
from mixllm.predict.online import OnlineRidge
from mixllm.predict.quality import QualityModel
from mixllm.predict.task_blend import TaskBlend

if TYPE_CHECKING:
    from mixllm.policy.mixllm import MixLLMPredictor

__all__ = ["restore_state", "save_state"]

_OPTIONAL: dict[str, Any] = {
    "projection": DomainProjection, "novelty": OnlineRidge, "blend": TaskBlend,
}  # fmt: skip
"""Parts a predictor may lack (no tag head; statistics other than "split"; no task prior)."""


def save_state(p: MixLLMPredictor) -> tuple[dict[str, object], Arrays]:
    """``p``'s parameters and arrays (:meth:`MixLLMPredictor.get_state` adds its settings)."""
    parts = {"quality": p.quality_, "length": p.length_, "online": p.online_}
    optional = {"projection": p.projection_, "novelty": p.novelty_, "blend": p.blend_}
    params, arrays = parts_state({**parts, **{k: v for k, v in optional.items() if v is not None}})
    arrays.update({
        "price_in": p.price_in_, "price_out": p.price_out_,
        "from_tokens": p.from_tokens_, "mean_quality": p.mean_quality_,
        **p.newcomers_.arrays(), **cost_arrays(p.cost_fallback_),
    })  # fmt: skip
    return params, arrays


def restore_state(
    p: MixLLMPredictor, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]
) -> None:
    """Set ``p``'s fitted attributes from what :func:`save_state` wrote."""
    for key, cls in _OPTIONAL.items():
        setattr(
            p,
            f"{key}_",
            cls.from_state(*part_state(params, arrays, key)) if key in params else None,
        )
    p.quality_ = QualityModel.from_state(*part_state(params, arrays, "quality"))
    p.length_ = LengthModel.from_state(*part_state(params, arrays, "length"))
    p.online_ = OnlineRidge.from_state(*part_state(params, arrays, "online"))
    p.corrected_ = bool(np.any(p.online_.theta_ != 0))
    p.mean_quality_ = np.asarray(arrays["mean_quality"], dtype=np.float64)
    p.cost_fallback_ = restore_cost(arrays)
    p.price_in_ = np.asarray(arrays["price_in"], dtype=np.float64)
    p.price_out_ = np.asarray(arrays["price_out"], dtype=np.float64)
    p.from_tokens_ = np.asarray(arrays["from_tokens"], dtype=bool)
    p.newcomers_ = Newcomers.from_arrays(arrays, len(p.from_tokens_))
