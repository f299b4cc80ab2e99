"""Value objects shared by every layer: LLMs, queries, predictions and routing decisions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, UnknownLLMError

__all__ = ["LLM", "Decision", "Feedback", "Prediction", "QueryBatch", "resolve_llm"]


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

    ``uncertainty`` and ``output_tokens`` (the predicted length of each answer, from predictors
    that predict it) are optional (same shape); columns follow ``llms``.
    """

    llms: tuple[str, ...]
    quality: NDArray[np.float64]
    cost_usd: NDArray[np.float64]
    uncertainty: NDArray[np.float64] | None = None
    output_tokens: NDArray[np.float64] | None = None

    def select(self, llms: Sequence[str]) -> Prediction:
        """The columns of ``llms`` only, in that order (a name may be an unambiguous short
        one, see :func:`resolve_llm`); :class:`UnknownLLMError` for a name this prediction does
        not have (or none at all)."""
        if any(m not in self.llms for m in llms):
            llms = [_resolve_candidate(m, self.llms) for m in llms]
        unknown = [m for m in llms if m not in self.llms]
        if unknown or not llms:
            raise UnknownLLMError(f"unknown candidate LLMs {unknown!r}; known: {sorted(self.llms)}")
        cols = [self.llms.index(m) for m in llms]

        def part(a: NDArray[np.float64] | None) -> NDArray[np.float64] | None:
            return None if a is None else a[:, cols]

        return Prediction(
            tuple(llms), self.quality[:, cols], self.cost_usd[:, cols],
            part(self.uncertainty), part(self.output_tokens),
        )  # fmt: skip


@dataclass(frozen=True)
class Decision:
    """The router's choice for one query and what it was based on.

    ``decision_id`` is unique per decision (a query routed twice gets two); feedback is keyed by
    it. ``predicted_wait_s`` holds each LLM's waiting time when the choice was made (empty
    without a load tracker). ``embedding`` and ``prompt_tokens`` are kept so that feedback on
    the decision never embeds or counts the prompt again.
    """

    query_id: str
    llm: str
    lam: float
    scores: Mapping[str, float] = field(default_factory=dict)
    predicted_quality: Mapping[str, float] = field(default_factory=dict)
    predicted_cost_usd: Mapping[str, float] = field(default_factory=dict)
    embedding: NDArray[np.float32] | None = field(default=None, repr=False, compare=False)
    decision_id: str = ""
    predicted_wait_s: Mapping[str, float] = field(default_factory=dict)
    prompt_tokens: float = math.nan

    @property
    def runner_up(self) -> str | None:
        """The second-best LLM by score, or ``None`` with a single candidate."""
        ranked = sorted(self.scores, key=lambda name: (-self.scores[name], name))
        return ranked[1] if len(ranked) > 1 else None


@dataclass(frozen=True)
class Feedback:
    """What was learned after an answer: measured quality and cost, or a thumbs up/down.

    >>> Feedback(quality=1.5)
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: feedback quality=1.5; expected a number between 0 and 1
    """

    quality: float | None = None
    cost_usd: float | None = None
    reward: bool | None = None

    def __post_init__(self) -> None:
        if self.quality is None and self.cost_usd is None and self.reward is None:
            raise ConfigError("feedback carries nothing; expected quality, cost_usd or reward")
        q, c = self.quality, self.cost_usd
        if q is not None and not (isinstance(q, (int, float)) and 0.0 <= q <= 1.0):
            raise ConfigError(f"feedback quality={q!r}; expected a number between 0 and 1")
        if c is not None and not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
            raise ConfigError(f"feedback cost_usd={c!r}; expected a finite number of USD >= 0")
        if self.reward is not None and not isinstance(self.reward, (bool, np.bool_)):
            raise ConfigError(f"feedback reward={self.reward!r}; expected true or false")


def resolve_llm(name: str, known: Sequence[str], *, what: str = "LLM") -> str:
    """The name in ``known`` that ``name`` means: itself, or the one LLM whose short name (the
    part after the last ``/``) it is, or, for a full name that ``known`` holds only short, that.

    >>> known = ["mistralai/mixtral-8x7b-chat", "meta/llama-2-70b-chat", "gpt-4"]
    >>> resolve_llm("mixtral-8x7b-chat", known)
    'mistralai/mixtral-8x7b-chat'
    >>> resolve_llm("openai/gpt-4", known)
    'gpt-4'
    >>> resolve_llm("x", ["a/x", "b/x"])
    Traceback (most recent call last):
    ...
    mixllm.errors.UnknownLLMError: ambiguous LLM name 'x': ['a/x', 'b/x']; give the full name

    Raises
    ------
    UnknownLLMError
        When no name or several names of ``known`` match, listing them (``what`` names what
        was asked for in the message: ``"LLM"``, ``"model"``, ...).
    """
    if name in known:
        return name
    matches = _short_matches(name, known)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UnknownLLMError(f"ambiguous LLM name {name!r}: {sorted(matches)}; give the full name")
    raise UnknownLLMError(f"unknown {what} {name!r}; known: {list(known)}")


def _short_matches(name: str, known: Sequence[str]) -> list[str]:
    """The names of ``known`` whose short name is ``name``, or that are ``name``'s short name."""
    short = name.rsplit("/", 1)[-1]
    return [m for m in known if m.rsplit("/", 1)[-1] == name or ("/" in name and m == short)]


def _resolve_candidate(name: str, known: Sequence[str]) -> str:
    """``name`` resolved by :func:`resolve_llm` when some LLM matches it (an ambiguous name
    raises), else ``name`` itself, so that the caller lists every unknown name at once."""
    return resolve_llm(name, known) if _short_matches(name, known) else name
