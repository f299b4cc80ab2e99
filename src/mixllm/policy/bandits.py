"""Online baselines: contextual bandits on the same query embeddings as every other router.

Each LLM is an arm with a ridge regression of its quality and its cost on the embedding (plus a
constant), warm-started on the training split and updated after every answer
(:class:`~mixllm.predict.OnlineRidge`). They differ only in how they explore:

* ``linucb``: optimism (Li et al., 2010): the predicted quality, and the width sqrt(xᵀ A⁻¹ x)
  as the prediction's uncertainty, which the router adds with its weight α (as it adds MixLLM's
  bonus): run it with ``Router("linucb", alpha=...)``; with α = 0 it is greedy;
* ``thompson``: a draw of the quality from its posterior, mean + ``explore`` × width × z with
  z ~ N(0, 1) (linear Thompson sampling, Agrawal & Goyal, 2013);
* ``egreedy``: the mean, except that with probability ``explore`` one LLM drawn uniformly is
  forced: it gets predicted quality 1 and cost 0, the others quality 0.

Predicted qualities stay in [0, 1] like every predictor's.

They are written here rather than taken from a bandit library because the choice must go
through the same cost-aware score as every router (quality − λ·cost per request, candidates,
maximum cost, waits), and their state must save as plain arrays like every other predictor.
Draws are seeded by (seed, query id, number of updates so far): the same history gives the
same choices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError, UnknownLLMError
from mixllm.policy._features import with_bias
from mixllm.policy.state import Arrays, BasePredictor, JSONValue
from mixllm.predict.online import OnlineRidge
from mixllm.types import LLM, Prediction, QueryBatch

__all__ = ["EpsilonGreedyPredictor", "LinUCBPredictor", "ThompsonPredictor"]

FloatArray = NDArray[np.float64]


class _LinearBandit(BasePredictor):
    """Shared fitting, learning and state; subclasses set :meth:`_explore`."""

    _param_names: ClassVar[tuple[str, ...]] = ("explore", "ridge", "discount", "seed")

    def __init__(
        self, explore: float = 1.0, *, ridge: float = 1.0, discount: float = 1.0, seed: int = 0
    ) -> None:
        self.explore = explore
        self.ridge = ridge
        self.discount = discount
        self.seed = seed

    #: The largest ``explore`` that makes sense (a probability for ε-greedy).
    _max_explore: ClassVar[float] = float("inf")

    def fit(self, train: Dataset, queries: QueryBatch) -> _LinearBandit:
        """Warm start: each arm's ridge regression on the training rows it was observed on."""
        ok = isinstance(self.explore, int | float) and 0 <= self.explore <= self._max_explore
        if not ok:
            raise ConfigError(
                f"explore={self.explore!r}; expected a number from 0 to {self._max_explore}"
            )
        x = with_bias(self._check_train(train, queries))
        quality = np.asarray(train.quality, dtype=np.float64)
        cost = np.asarray(train.cost_usd, dtype=np.float64)
        seen = np.isfinite(quality) & np.isfinite(cost)
        y = np.stack([quality, cost], axis=2)
        self.model_ = OnlineRidge(self.ridge, n_targets=2, discount=self.discount)
        self.model_.fit(x, seen, y)
        self.llms_ = train.llms
        return self

    def _input_dim(self) -> int | None:
        return self.model_.dim_ - 1

    def predict(self, queries: QueryBatch) -> Prediction:
        """Quality with this bandit's exploration, mean cost, and the posterior width."""
        x = with_bias(self._check_queries(queries))
        mean = self.model_.mean(x)
        width = self.model_.bonus(x)
        quality, cost = self._explore(mean[:, :, 0], np.maximum(mean[:, :, 1], 0.0), width, queries)
        return Prediction(
            llms=self.llms_, quality=np.clip(quality, 0.0, 1.0), cost_usd=cost, uncertainty=width
        )

    def _explore(
        self, quality: FloatArray, cost: FloatArray, width: FloatArray, queries: QueryBatch
    ) -> tuple[FloatArray, FloatArray]:
        """(quality, cost) after this bandit's exploration."""
        return quality, cost

    def _rng(self, query_id: str) -> np.random.Generator:
        digest = hashlib.blake2b(query_id.encode("utf-8"), digest_size=8).digest()
        steps = int(self.model_.counts_.sum())
        return np.random.default_rng([int(self.seed), int.from_bytes(digest, "little"), steps])

    # -- learning ------------------------------------------------------------------------------
    def learn(
        self,
        embedding: NDArray[Any],
        llm: str,
        *,
        prompt_tokens: float = float("nan"),
        quality: float | None = None,
        cost_usd: float | None = None,
        reward: bool | None = None,
    ) -> None:
        """One answer of ``llm``: its quality and cost (a missing one keeps its prediction); a
        thumbs up/down (``reward``) counts as quality 1/0 when the quality is unknown."""
        j = self._index(llm)
        if quality is None and reward is not None:
            quality = float(bool(reward))
        if quality is None and cost_usd is None:
            return
        x = with_bias(embedding)
        pred = self.model_.mean(x)[0, j]
        y = np.array(
            [
                pred[0] if quality is None else quality,
                pred[1] if cost_usd is None else cost_usd,
            ]
        )
        self.model_.update(j, x[0], y)

    def add_llm(
        self, llm: LLM, seed: Dataset | None = None, queries: QueryBatch | None = None
    ) -> None:
        """A new arm: no data (the prior: quality 0, widest uncertainty), or seed outcomes."""
        if llm.name in self.llms_:
            raise ConfigError(f"LLM {llm.name!r} is already in the pool")
        j = self.model_.add_llm()
        self.llms_ = (*self.llms_, llm.name)
        if seed is not None and queries is not None:
            col = seed.llm_index(llm.name)
            for i, e in enumerate(np.asarray(queries.embeddings)):
                q, c = seed.quality[i, col], seed.cost_usd[i, col]
                if np.isfinite(q) and np.isfinite(c):
                    self.model_.update(j, with_bias(e)[0], np.array([q, c]))

    def remove_llm(self, name: str) -> None:
        """Drop an arm; the others keep what they learned."""
        self.model_.remove_llm(self._index(name))
        self.llms_ = tuple(m for m in self.llms_ if m != name)

    def _index(self, llm: str) -> int:
        self._check_fitted()
        if llm not in self.llms_:
            raise UnknownLLMError(f"unknown LLM {llm!r}; known: {sorted(self.llms_)}")
        return self.llms_.index(llm)

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, object], Arrays]:
        params, arrays = self.model_.get_state()
        return {"model": dict(params)}, {f"model.{k}": v for k, v in arrays.items()}

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        model = params["model"]
        if not isinstance(model, dict):
            raise DataError(f"bandit state: 'model' is {model!r}, expected an object")
        self.model_ = OnlineRidge.from_state(
            model, {k[len("model.") :]: v for k, v in arrays.items() if k.startswith("model.")}
        )


class LinUCBPredictor(_LinearBandit):
    """LinUCB: the mean quality, with sqrt(xᵀ A⁻¹ x) as uncertainty for the router's α bonus
    (``explore`` is unused: the router's α is the exploration weight)."""

    name = "linucb"
    kind: ClassVar[str] = "linucb"


class ThompsonPredictor(_LinearBandit):
    """Linear Thompson sampling: quality drawn from N(mean, (``explore`` × width)²)."""

    name = "thompson"
    kind: ClassVar[str] = "thompson"

    def __init__(
        self, explore: float = 0.5, *, ridge: float = 1.0, discount: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__(explore, ridge=ridge, discount=discount, seed=seed)

    def _explore(
        self, quality: FloatArray, cost: FloatArray, width: FloatArray, queries: QueryBatch
    ) -> tuple[FloatArray, FloatArray]:
        k = quality.shape[1]
        z = np.array([self._rng(str(q)).standard_normal(k) for q in queries.ids]).reshape(-1, k)
        return quality + float(self.explore) * width * z, cost


class EpsilonGreedyPredictor(_LinearBandit):
    """ε-greedy: the mean, except that with probability ``explore`` (ε) a random LLM is chosen."""

    name = "egreedy"
    kind: ClassVar[str] = "egreedy"
    _max_explore: ClassVar[float] = 1.0

    def __init__(
        self, explore: float = 0.05, *, ridge: float = 1.0, discount: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__(explore, ridge=ridge, discount=discount, seed=seed)

    def _explore(
        self, quality: FloatArray, cost: FloatArray, width: FloatArray, queries: QueryBatch
    ) -> tuple[FloatArray, FloatArray]:
        quality, cost = quality.copy(), cost.copy()
        for i, q in enumerate(queries.ids):
            rng = self._rng(str(q))
            if rng.random() < float(self.explore):
                arm = rng.integers(quality.shape[1])
                quality[i], cost[i, arm] = 0.0, 0.0
                quality[i, arm] = 1.0
        return quality, cost
