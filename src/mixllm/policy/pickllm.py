"""PickLLM: reinforcement-learning routing on a weighted reward of accuracy, cost and latency,
learned online per context.

Sikeridis, Ramdass, Pareek (2024), "PickLLM: Context-Aware RL-Assisted Large Language Model
Routing", arXiv:2412.12170.

The paper's method: each query is sent to one LLM of the pool, drawn by the router's current
policy; the answer's reward ``R = w_a·accuracy − w_c·cost − w_l·log10(latency)`` updates that
policy, and the router converges to the best LLM of the session (one session per context, e.g.
a topic). Its learners are a stochastic learning automaton moved by gradient ascent (linear
reward–inaction: the drawn LLM's probability grows by ``rate × r̂ × (1 − p)``, the others
shrink in proportion, r̂ the reward scaled to [0, 1]) and stateless ε-greedy Q-learning.

Here, three learners, one name each:

* ``pickllm``: stochastic gradient ascent of the expected reward on a softmax policy (action
  preferences moved by ``rate × (r̂ − running mean r̂) × (1[a] − π)``), the policy-gradient
  form of the paper's gradient ascent;
* ``pickllm-la``: the paper's learning automaton (linear reward–inaction, as above); once it
  has converged it learns nothing from failures (inaction), so it does not follow an LLM that
  gets worse later, where the other two do;
* ``pickllm-q``: the paper's stateless Q-learning, ε-greedy.

It is a :class:`~mixllm.policy.batch.BatchPolicy`, not a predictor: it predicts no quality or
cost, only a distribution over LLMs, and that distribution is learned *for one reward*; a λ
sweep on a predictor could not move it. Its knob is therefore the reward's cost weight
``w_c`` (per USD, accuracy weight 1), and each value learns its own policy, which is what
the paper does for each user objective. :meth:`PickLLMPolicy.fit` keeps the training split;
:meth:`PickLLMPolicy.run` learns a policy from it as a stream (a seeded shuffle, ``epochs``
passes, each query drawn to one LLM and only that LLM's recorded outcome observed), then
routes the test split in order, drawing from the policy and, with ``learn_test``, learning
from each call's recorded outcome. Departures: contexts are the k-means clusters of the prompt
embeddings (``n_contexts``; the paper's sessions are topics known in advance); the reward is
scaled to [0, 1] by the extremes it can take on the training split, for every learner; latency
is the recorded ``latency_s`` where the data has it (RouterBench has none, so there the
latency term is zero whatever ``w_latency``), and ``w_latency`` stays configurable.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError, NotFittedError
from mixllm.policy.base import lambda_grid
from mixllm.policy.batch import BatchRun
from mixllm.types import Prediction, QueryBatch

__all__ = ["PickLLMAutomatonPolicy", "PickLLMPolicy", "PickLLMQPolicy"]

FloatArray = NDArray[np.float64]


class PickLLMPolicy:
    """PickLLM with the stochastic gradient-ascent learner (see the module docstring).

    Parameters
    ----------
    rate:
        Learning rate (of the preferences, the automaton's probabilities, or Q), in (0, 1];
        by default the class's :attr:`default_rate` (1 for gradient ascent, 0.1 for the
        automaton, 0.3 for Q-learning).
    explore:
        ε of the Q-learner (unused by the others), in [0, 1].
    w_latency:
        Weight of ``log10(latency_s)`` in the reward (where the data records latency).
    n_contexts:
        Number of k-means contexts of the prompt embeddings (1: one policy for everything).
    epochs:
        Passes over the training stream.
    learn_test:
        Keep learning on the test stream from each call's recorded outcome.
    seed:
        Seed of the shuffle, the draws and the k-means.
    """

    name: str = "pickllm"
    knob: str = "cost_weight"
    learner: ClassVar[str] = "gradient"
    #: The learning rate when none is given (tuned on one RouterBench split, seed 7).
    default_rate: ClassVar[float] = 1.0

    def __init__(
        self,
        rate: float | None = None,
        *,
        explore: float = 0.1,
        w_latency: float = 0.0,
        n_contexts: int = 8,
        epochs: int = 1,
        learn_test: bool = True,
        seed: int = 0,
    ) -> None:
        self.rate = self.default_rate if rate is None else rate
        self.explore = explore
        self.w_latency = w_latency
        self.n_contexts = n_contexts
        self.epochs = epochs
        self.learn_test = learn_test
        self.seed = seed

    def _check_params(self) -> None:
        if not (isinstance(self.rate, int | float) and 0 < self.rate <= 1):
            raise ConfigError(f"rate={self.rate!r}; expected a number in (0, 1]")
        if not (isinstance(self.explore, int | float) and 0 <= self.explore <= 1):
            raise ConfigError(f"explore={self.explore!r}; expected a number in [0, 1]")
        if not (isinstance(self.w_latency, int | float) and self.w_latency >= 0):
            raise ConfigError(f"w_latency={self.w_latency!r}; expected a number ≥ 0")
        for name in ("n_contexts", "epochs"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"{name}={value!r}; expected an integer ≥ 1")

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> PickLLMPolicy:
        """Keep the training stream and find the contexts (k-means of its embeddings)."""
        from sklearn.cluster import KMeans

        self._check_params()
        if len(queries) != len(train) or len(train) == 0:
            raise DataError(
                f"{len(queries)} training queries for {len(train)} dataset rows; "
                "expected them row-aligned, and at least one"
            )
        x = np.asarray(queries.embeddings, dtype=np.float64)
        k = min(self.n_contexts, len(train))
        self.contexts_ = KMeans(k, n_init=4, random_state=self.seed).fit(x)
        self.train_ = train
        self.train_context_ = self.contexts_.labels_.astype(np.int64)
        quality, cost, penalty = self._outcomes(train)
        seen = np.isfinite(quality) & np.isfinite(cost)
        self.max_cost_ = float(cost[seen].max()) if seen.any() else 0.0
        finite = penalty[np.isfinite(penalty)]
        self.penalty_span_ = (float(finite.min()), float(finite.max())) if finite.size else (0, 0)
        self.llms_ = train.llms
        self._policies: dict[float, FloatArray] = {}
        return self

    def _outcomes(self, ds: Dataset) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Quality, cost and latency penalty ``log10(latency_s)`` (0 where not recorded)."""
        lat = np.asarray(ds.latency_s, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            penalty = np.where(np.isfinite(lat) & (lat > 0), np.log10(lat), 0.0)
        return (
            np.asarray(ds.quality, dtype=np.float64),
            np.asarray(ds.cost_usd, dtype=np.float64),
            penalty,
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "llms_"):
            raise NotFittedError(f"{self.name!r} is not fitted yet; call fit(train, queries)")

    # -- the knob ------------------------------------------------------------------------------
    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]:
        """``n`` cost weights from one that makes the cheapest LLM best in every context down to
        0 (accuracy alone): the switch points of the training split's mean accuracy and cost
        per context and LLM, spread as for λ (:func:`~mixllm.policy.lambda_grid`), the largest
        tripled so that the cheapest LLM wins by a margin a learner can see."""
        self._check_fitted()
        k = len(self.llms_)
        labels = np.unique(self.train_context_)
        quality, cost, _ = self._outcomes(self.train_)
        q = np.zeros((len(labels), k))
        c = np.zeros((len(labels), k))
        for row, label in enumerate(labels):
            mask = self.train_context_ == label
            with np.errstate(invalid="ignore"):
                q[row] = np.nan_to_num(np.nanmean(np.where(mask[:, None], quality, np.nan), 0))
                c[row] = np.nan_to_num(np.nanmean(np.where(mask[:, None], cost, np.nan), 0))
        grid = lambda_grid(Prediction(self.llms_, q, c), n)
        grid[-1] *= 3.0  # clear of the last switch point, for a learner to see a difference
        return [float(w) for w in grid[::-1]]

    # -- learning and routing ------------------------------------------------------------------
    def _rng(self, knob: float, stage: int) -> np.random.Generator:
        return np.random.default_rng(
            [int(self.seed), zlib.crc32(repr(float(knob)).encode()), stage]
        )

    def _scaled(self, knob: float, quality: float, cost: float, penalty: float) -> float:
        """The reward ``quality − knob·cost − w_latency·penalty`` scaled to [0, 1]."""
        lo_pen, hi_pen = self.penalty_span_
        w_l = float(self.w_latency)
        low = -knob * self.max_cost_ - w_l * hi_pen
        high = 1.0 - w_l * lo_pen
        reward = quality - knob * cost - w_l * penalty
        return float(np.clip((reward - low) / (high - low), 0.0, 1.0)) if high > low else 0.5

    def _draw(self, table: FloatArray, rng: np.random.Generator) -> int:
        if self.learner == "q":
            if rng.random() < float(self.explore):
                return int(rng.integers(len(table)))
            return int(np.argmax(table))
        return int(rng.choice(len(table), p=_policy(table, self.learner)))

    def _update(self, table: FloatArray, arm: int, r: float, baseline: FloatArray, c: int) -> None:
        rate = float(self.rate)
        if self.learner == "q":
            table[arm] += rate * (r - table[arm])
        elif self.learner == "automaton":  # linear reward–inaction
            table *= 1.0 - rate * r
            table[arm] += rate * r
        else:
            pi = _policy(table, "gradient")
            step = rate * (r - baseline[c])
            table -= step * pi
            table[arm] += step
            baseline[c] += rate * (r - baseline[c])

    def _initial(self, n_ctx: int) -> tuple[FloatArray, FloatArray]:
        k = len(self.llms_)
        start = np.full((n_ctx, k), 1.0 / k if self.learner == "automaton" else 0.0)
        return start, np.zeros(n_ctx)

    def trained_policy(self, knob: float) -> FloatArray:
        """The table learned from the training stream at cost weight ``knob``: per context,
        the LLMs' probabilities (``pickllm``, ``pickllm-la``) or Q-values (``pickllm-q``)."""
        self._check_fitted()
        if not (isinstance(knob, int | float) and np.isfinite(knob) and knob >= 0):
            raise ConfigError(f"cost weight {knob!r}; expected a finite number ≥ 0 (per USD)")
        key = float(knob)
        if key not in self._policies:
            quality, cost, penalty = self._outcomes(self.train_)
            table, baseline = self._initial(int(self.contexts_.n_clusters))
            rng = self._rng(key, 0)
            for _ in range(self.epochs):
                for i in rng.permutation(len(self.train_)):
                    c = int(self.train_context_[i])
                    arm = self._draw(table[c], rng)
                    if np.isfinite(quality[i, arm]) and np.isfinite(cost[i, arm]):
                        r = self._scaled(key, quality[i, arm], cost[i, arm], penalty[i, arm])
                        self._update(table[c], arm, r, baseline, c)
            self._policies[key] = np.concatenate([table, baseline[:, None]], axis=1)
        stored = self._policies[key]
        return stored[:, :-1].copy() if self.learner != "gradient" else _softmax(stored[:, :-1])

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun:
        """Route ``test`` in order at cost weight ``knob``: each query drawn to one LLM by the
        policy of its context, its recorded outcome returned and (``learn_test``) learned."""
        self._check_fitted()
        if test.llms != self.llms_:
            raise DataError(f"test LLMs {list(test.llms)}; {self.name!r} was fitted on "
                            f"{list(self.llms_)}")  # fmt: skip
        if len(queries) != len(test):
            raise DataError(f"{len(queries)} test queries for {len(test)} rows; expected aligned")
        self.trained_policy(knob)
        stored = self._policies[float(knob)]
        table, baseline = stored[:, :-1].copy(), stored[:, -1].copy()
        quality, cost, penalty = self._outcomes(test)
        n = len(test)
        choice = np.zeros(n, dtype=np.int64)
        x = np.asarray(queries.embeddings, dtype=np.float64)
        ctx = self.contexts_.predict(x) if n else np.zeros(0, dtype=np.int64)
        rng = self._rng(float(knob), 1)
        for i in range(n):
            c = int(ctx[i])
            arm = choice[i] = self._draw(table[c], rng)
            if self.learn_test and np.isfinite(quality[i, arm]) and np.isfinite(cost[i, arm]):
                r = self._scaled(float(knob), quality[i, arm], cost[i, arm], penalty[i, arm])
                self._update(table[c], arm, r, baseline, c)
        rows = np.arange(n)
        return BatchRun(
            choice=choice,
            quality=quality[rows, choice],
            cost_usd=cost[rows, choice],
            calls=np.ones(n, dtype=np.int64),
        )


def _softmax(h: FloatArray) -> FloatArray:
    e = np.exp(h - h.max(axis=-1, keepdims=True))
    out: FloatArray = e / e.sum(axis=-1, keepdims=True)
    return out


def _policy(table: FloatArray, learner: str) -> FloatArray:
    if learner == "gradient":
        return _softmax(table)
    p = np.maximum(table, 0.0)
    out: FloatArray = p / p.sum()
    return out


class PickLLMAutomatonPolicy(PickLLMPolicy):
    """PickLLM with the paper's learning automaton (linear reward–inaction)."""

    name: str = "pickllm-la"
    learner: ClassVar[str] = "automaton"
    default_rate: ClassVar[float] = 0.1


class PickLLMQPolicy(PickLLMPolicy):
    """PickLLM with the paper's stateless ε-greedy Q-learning."""

    name: str = "pickllm-q"
    learner: ClassVar[str] = "q"
    default_rate: ClassVar[float] = 0.3
