"""Value objects shared by every layer: LLMs, queries, predictions and routing decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["LLM", "Decision", "Feedback", "Prediction", "QueryBatch"]


@dataclass(frozen=True)
class LLM:
    """An LLM in the pool with its list prices in USD per million tokens."""

    name: str
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0

    def cost_usd(self, prompt_tokens: float, output_tokens: float) -> float:
        """Cost of one call: prompt tokens × input price + output tokens × output price."""
        return (
            prompt_tokens * self.price_in_per_mtok + output_tokens * self.price_out_per_mtok
        ) / 1e6


@dataclass(frozen=True)
class QueryBatch:
    """Queries to route: ids, texts, their embeddings and prompt token counts (row-aligned)."""

    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    embeddings: NDArray[np.float32]
    prompt_tokens: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Prediction:
    """Per-query, per-LLM predicted quality and cost (arrays of shape (n_queries, n_llms)).

    ``uncertainty`` is optional (same shape); columns follow ``llms``.
    """

    llms: tuple[str, ...]
    quality: NDArray[np.float64]
    cost_usd: NDArray[np.float64]
    uncertainty: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class Decision:
    """The router's choice for one query and what it was based on."""

    query_id: str
    llm: str
    lam: float
    scores: Mapping[str, float] = field(default_factory=dict)
    predicted_quality: Mapping[str, float] = field(default_factory=dict)
    predicted_cost_usd: Mapping[str, float] = field(default_factory=dict)
    embedding: NDArray[np.float32] | None = field(default=None, repr=False, compare=False)

    @property
    def runner_up(self) -> str | None:
        """The second-best LLM by score, or ``None`` with a single candidate."""
        ranked = sorted(self.scores, key=lambda name: (-self.scores[name], name))
        return ranked[1] if len(ranked) > 1 else None


@dataclass(frozen=True)
class Feedback:
    """What was learned after an answer: measured quality and cost, or a thumbs up/down."""

    quality: float | None = None
    cost_usd: float | None = None
    reward: bool | None = None
