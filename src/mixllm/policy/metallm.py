"""MetaLLM: a linear contextual bandit whose arms are LLMs and whose reward is correctness minus
scaled cost.

Nguyen, Dao, Hoang, Decugis, Manchanda, Chawla, Doan (2024), "MetaLLM: A High-performant and
Cost-efficient Dynamic Framework for Wrapping LLMs", arXiv:2407.10834.

The paper's method: each LLM ``i`` is an arm; the reward of sending query ``x`` to it is
``r(x, i) = a_i(x) − p·c_i`` (``a`` the answer's correctness, ``c`` its cost, ``p`` the cost
scaling chosen by the user); a linear model ``Q_i(x) = θ_iᵀ x`` of the reward per arm is fitted
by ridge regression on sentence embeddings, and the arm of highest upper confidence bound
``Q_i(x) + α·sqrt(xᵀ A_i⁻¹ x)`` is chosen; each observed reward updates the chosen arm.

Here:

* the reward model is a per-arm :class:`~mixllm.predict.OnlineRidge` of the *scalar* reward at
  the ``cost_scaling`` p fixed when fitted (USD⁻¹: a reward point per dollar), trained offline
  from the logged outcomes (``offline="full"``: every logged (query, LLM) outcome, as the paper
  trains on its labelled split) or by replaying the training split as a bandit stream
  (``offline="bandit"``: each query goes to the UCB arm among the LLMs with a logged outcome,
  and only that arm learns), then online from each answer's feedback (:meth:`learn`);
* it answers like every predictor: ``cost_usd`` is the list-price estimate
  (:class:`~mixllm.predict.cost.MeanLengthCostModel`) and ``quality = Q(x) + p·cost``, so the
  shared score ``quality − λ·cost`` at λ = p *is* the paper's predicted reward; a λ sweep moves
  away from the trained p linearly (the paper would refit one model per p). Qualities are
  clipped to [0, 1] like every predictor's, so far from p the identity can break at the edges;
* the UCB width ``sqrt(xᵀ A⁻¹ x)`` is the prediction's uncertainty, which the router adds with
  its weight α (``Router("metallm", alpha=...)``); ``explore`` is the α of the offline bandit
  replay only.

How it differs from the ``linucb`` baseline (:mod:`mixllm.policy.bandits`), which shares the
ridge statistics: ``linucb`` regresses quality and cost separately and leaves the trade-off to
λ at decision time; MetaLLM learns the paper's one reward at a chosen p (at p = 0 its quality
model is linucb's), from that reward's feedback, with the bandit-replay training the paper's
online protocol implies. With p > 0 its confidence widths are widths of the reward, and an arm
whose cost varies with the query is fitted on its recorded cost, not on the list-price estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy._features import with_bias
from mixllm.policy.bandits import _LinearBandit
from mixllm.policy.state import Arrays, JSONValue, cost_arrays, restore_cost
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.online import OnlineRidge
from mixllm.types import LLM, Prediction, QueryBatch

__all__ = ["MetaLLMPredictor"]

FloatArray = NDArray[np.float64]

_OFFLINE = ("full", "bandit")


class MetaLLMPredictor(_LinearBandit):
    """MetaLLM's linear UCB bandit on the reward ``correctness − cost_scaling × cost_usd``.

    Parameters
    ----------
    cost_scaling:
        The paper's p, in reward points per USD (≥ 0): the λ at which this predictor's score is
        the reward it was trained on.
    explore:
        α of the UCB choice during the ``offline="bandit"`` replay (≥ 0).
    offline:
        ``"full"``: every logged outcome trains its arm; ``"bandit"``: the training split is
        replayed as a stream and only the chosen arm learns.
    ridge, discount:
        Of the per-arm :class:`~mixllm.predict.OnlineRidge`.
    seed:
        Order of the bandit replay.
    """

    name = "metallm"
    kind: ClassVar[str] = "metallm"
    _param_names: ClassVar[tuple[str, ...]] = (
        "cost_scaling", "explore", "offline", "ridge", "discount", "seed",
    )  # fmt: skip

    def __init__(
        self,
        cost_scaling: float = 0.0,
        *,
        explore: float = 1.0,
        offline: str = "full",
        ridge: float = 1.0,
        discount: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(explore, ridge=ridge, discount=discount, seed=seed)
        self.cost_scaling = cost_scaling
        self.offline = offline

    def _check_params(self) -> None:
        p = self.cost_scaling
        if not (isinstance(p, int | float) and np.isfinite(p) and p >= 0):
            raise ConfigError(f"cost_scaling={p!r}; expected a finite number ≥ 0 (per USD)")
        if not (isinstance(self.explore, int | float) and self.explore >= 0):
            raise ConfigError(f"explore={self.explore!r}; expected a number ≥ 0")
        if self.offline not in _OFFLINE:
            raise ConfigError(f"offline={self.offline!r}; expected one of {list(_OFFLINE)}")

    def fit(self, train: Dataset, queries: QueryBatch) -> MetaLLMPredictor:
        """The cost model, then each arm's reward model from the logged outcomes."""
        self._check_params()
        x = with_bias(self._check_train(train, queries))
        self.cost_model_ = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        quality = np.asarray(train.quality, dtype=np.float64)
        cost = np.asarray(train.cost_usd, dtype=np.float64)
        seen = np.isfinite(quality) & np.isfinite(cost)
        reward = quality - float(self.cost_scaling) * cost
        self.model_ = OnlineRidge(self.ridge, n_targets=1, discount=self.discount)
        if self.offline == "full":
            self.model_.fit(x, seen, reward[:, :, None])
        else:
            self.model_.fit(x[:0], seen[:0], reward[:0, :, None])
            self._replay(x, seen, reward)
        self.llms_ = train.llms
        return self

    def _replay(self, x: FloatArray, seen: NDArray[np.bool_], reward: FloatArray) -> None:
        """The training split as a bandit stream: UCB arm among those logged, it alone learns."""
        order = np.random.default_rng(int(self.seed)).permutation(len(x))
        for i in order:
            if not seen[i].any():
                continue
            ucb = self.model_.mean(x[i])[0, :, 0] + float(self.explore) * self.model_.bonus(x[i])[0]
            j = int(np.argmax(np.where(seen[i], ucb, -np.inf)))
            self.model_.update(j, x[i], reward[i, j : j + 1])

    def predict(self, queries: QueryBatch) -> Prediction:
        """``quality = Q(x) + p·cost`` (so quality − p·cost is the predicted reward), the
        list-price cost, and the UCB width as uncertainty."""
        x = with_bias(self._check_queries(queries))
        reward = self.model_.mean(x)[:, :, 0]
        cost = self.cost_model_.predict(np.asarray(queries.prompt_tokens, dtype=np.float64))
        quality = reward + float(self.cost_scaling) * cost
        return Prediction(
            llms=self.llms_,
            quality=np.clip(quality, 0.0, 1.0),
            cost_usd=cost,
            uncertainty=self.model_.bonus(x),
        )

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
        """One answer of ``llm``: its reward ``quality − p·cost`` updates that arm. A thumbs
        up/down counts as quality 1/0; an unknown cost is the list-price estimate; without a
        quality nothing is learned (the reward needs the correctness)."""
        j = self._index(llm)
        if quality is None and reward is not None:
            quality = float(bool(reward))
        if quality is None:
            return
        if cost_usd is None:
            cost_usd = float(self.cost_model_.predict(np.array([prompt_tokens]))[0, j])
        target = np.array([quality - float(self.cost_scaling) * cost_usd])
        self.model_.update(j, with_bias(embedding)[0], target)

    def add_llm(
        self, llm: LLM, seed: Dataset | None = None, queries: QueryBatch | None = None
    ) -> None:
        """A new arm priced from ``llm``: the prior (reward 0, widest width), then any seed
        outcomes (a dataset with a column for it, and its row-aligned queries)."""
        if llm.name in self.llms_:
            raise ConfigError(f"LLM {llm.name!r} is already in the pool")
        self.model_.add_llm()
        self.cost_model_.add_llm(llm)
        self.llms_ = (*self.llms_, llm.name)
        if seed is not None and queries is not None:
            col = seed.llm_index(llm.name)
            for i, e in enumerate(np.asarray(queries.embeddings)):
                q, c = seed.quality[i, col], seed.cost_usd[i, col]
                if np.isfinite(q):
                    self.learn(
                        e,
                        llm.name,
                        prompt_tokens=float(queries.prompt_tokens[i]),
                        quality=float(q),
                        cost_usd=float(c) if np.isfinite(c) else None,
                    )

    def remove_llm(self, name: str) -> None:
        """Drop an arm and its prices; the others keep what they learned."""
        j = self._index(name)
        super().remove_llm(name)
        self.cost_model_.remove_llm(j)

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, object], Arrays]:
        params, arrays = super()._state()
        return params, {**arrays, **cost_arrays(self.cost_model_)}

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        super()._restore(params, arrays)
        self.cost_model_ = restore_cost(arrays)
