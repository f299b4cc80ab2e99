"""The predictor protocol every router model follows, and the one shared choice policy.

A *predictor* maps queries to predicted quality and cost per LLM
(:class:`~mixllm.types.Prediction`);
:func:`choose` turns a prediction into one LLM per query for a willingness to pay ``lam``
(score = quality − lam × cost_usd). Every router, baseline or MixLLM, decides through it, so a
comparison between routers compares their predictions and nothing else.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.policy.scoring import (
    choose_masked,
    latency_penalty,
    trade_off,
    uncertainty_bonus,
)
from mixllm.types import LLM, Prediction, QueryBatch

__all__ = [
    "OnlinePredictor",
    "Predictor",
    "choose",
    "choose_from_scores",
    "lambda_grid",
    "scores",
]


class Predictor(Protocol):
    """A model that predicts, for each query and LLM, the answer's quality and cost.

    ``fit(train, queries)`` receives the training dataset and its queries row-aligned with it
    (``queries.embeddings[i]`` embeds ``train.prompts[i]``); it returns ``self``. ``llms_`` is set
    by ``fit``. ``predict`` before ``fit`` raises :class:`~mixllm.errors.NotFittedError`.
    ``get_state`` returns what :func:`mixllm.policy.predictor_from_state` needs to rebuild it.
    """

    name: str

    @property
    def llms_(self) -> tuple[str, ...]: ...

    def fit(self, train: Dataset, queries: QueryBatch) -> Predictor: ...

    def predict(self, queries: QueryBatch) -> Prediction: ...

    def get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        """JSON-able parameters and named arrays from which the class restores it (no pickle)."""
        ...


@runtime_checkable
class OnlinePredictor(Predictor, Protocol):
    """A predictor that learns from feedback and whose pool of LLMs can change (§3.4).

    ``learn`` takes what a :class:`~mixllm.types.Decision` carries (the query's embedding and
    prompt tokens, the chosen LLM) and the feedback; ``add_llm`` takes an LLM with its prices
    and, optionally, seed outcomes (a dataset with one column for it) and their row-aligned
    queries; ``remove_llm`` drops one LLM and keeps what the others learned.
    """

    def learn(
        self,
        embedding: NDArray[Any],
        llm: str,
        *,
        prompt_tokens: float = ...,
        quality: float | None = None,
        cost_usd: float | None = None,
        reward: bool | None = None,
    ) -> None: ...

    def add_llm(
        self, llm: LLM, seed: Dataset | None = None, queries: QueryBatch | None = None
    ) -> None: ...

    def remove_llm(self, name: str) -> None: ...


def scores(
    pred: Prediction,
    lam: float,
    *,
    alpha: float = 0.0,
    beta: float = 0.0,
    tau_s: float = math.inf,
    wait_s: NDArray[np.float64] | None = None,
    service_weight: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """MixLLM's score (§3.3): quality − lam·cost + alpha·uncertainty − beta·latency penalty.

    ``wait_s`` is each LLM's current waiting time (one value per column); offline it is zero.
    ``service_weight`` (same shape as the predictions) scales each query's penalty by how long
    its answer would hold a slot relative to the LLM's average request (see
    :meth:`~mixllm.policy.LoadTracker.service_weights`); without it every query pays the same.
    """
    s = trade_off(pred.quality, pred.cost_usd, lam) + uncertainty_bonus(pred.uncertainty, alpha)
    if wait_s is not None:
        penalty = latency_penalty(np.asarray(wait_s, dtype=np.float64), beta, tau_s)[None, :]
        s = s - (penalty if service_weight is None else penalty * service_weight)
    return s


def choose(
    pred: Prediction,
    lam: float,
    *,
    alpha: float = 0.0,
    beta: float = 0.0,
    tau_s: float = math.inf,
    wait_s: NDArray[np.float64] | None = None,
    max_cost_usd: float | None = None,
) -> NDArray[np.int64]:
    """Column index of the chosen LLM per query: the highest :func:`scores`, ties to the cheaper
    LLM, then the first name in sorted order.

    An LLM whose wait has reached ``tau_s`` is not chosen, nor one whose predicted cost passes
    ``max_cost_usd``. If that leaves no LLM for a query, the query goes to the LLM with the
    shortest wait (when waits exclude everything) or the cheapest predicted one (when the cost
    limit does): a query is always routed, and the caller can see why from the scores.

    >>> import numpy as np
    >>> p = Prediction(("a", "b"), np.array([[0.5, 0.9]]), np.array([[0.0, 1.0]]))
    >>> choose(p, 0.0).tolist(), choose(p, 1.0).tolist()
    ([1], [0])
    >>> choose(p, 0.0, wait_s=np.array([0.0, 40.0]), tau_s=30.0).tolist()
    [0]
    """
    s = scores(pred, lam, alpha=alpha, beta=beta, tau_s=tau_s, wait_s=wait_s)
    return choose_from_scores(pred, s, tau_s=tau_s, wait_s=wait_s, max_cost_usd=max_cost_usd)


def choose_from_scores(
    pred: Prediction,
    s: NDArray[np.float64],
    *,
    tau_s: float = math.inf,
    wait_s: NDArray[np.float64] | None = None,
    max_cost_usd: float | None = None,
) -> NDArray[np.int64]:
    """:func:`choose` for scores already computed by :func:`scores` (same rules, no recompute)."""
    if max_cost_usd is None and (wait_s is None or not math.isfinite(tau_s)):
        return choose_masked(s, pred.cost_usd, pred.llms, None)  # nothing excluded
    n, k = s.shape
    allowed = np.ones((n, k), dtype=bool)
    if wait_s is not None and math.isfinite(tau_s):
        wait = np.asarray(wait_s, dtype=np.float64)
        in_time = wait < tau_s
        allowed &= (in_time if in_time.any() else wait == wait.min())[None, :]
    if max_cost_usd is not None:
        affordable = pred.cost_usd <= max_cost_usd
        cheapest = pred.cost_usd == np.where(allowed, pred.cost_usd, np.inf).min(axis=1)[:, None]
        within = allowed & affordable
        allowed = np.where(within.any(axis=1, keepdims=True), within, allowed & cheapest)
    return choose_masked(s, pred.cost_usd, pred.llms, allowed)


def lambda_grid(pred: Prediction, n: int) -> NDArray[np.float64]:
    """``n`` values of lam from 0 (best predicted quality) up to one that routes every query to
    its cheapest predicted LLM.

    The values between are quantiles (in log space) of the switch points ``Δquality / Δcost``
    at which some query's choice can change, so the sweep spends its points where decisions
    move rather than evenly over a range most of which changes nothing.

    >>> p = Prediction(("a", "b"), np.array([[0.5, 0.9]]), np.array([[0.0, 1.0]]))
    >>> g = lambda_grid(p, 3)
    >>> float(g[0]), bool((choose(p, float(g[-1])) == 0).all())
    (0.0, True)
    """
    if n < 1:
        raise ValueError(f"n={n!r}; expected at least 1 value of lam")
    if n == 1:
        return np.zeros(1)
    q, c = pred.quality, pred.cost_usd
    dq = q[:, :, None] - q[:, None, :]  # gain of j over i
    dc = c[:, :, None] - c[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((dq > 0) & (dc > 0), dq / dc, np.nan)
    points = ratio[np.isfinite(ratio) & (ratio > 0)]
    if points.size == 0:  # nothing to trade: any lam gives the same choices
        return np.concatenate([[0.0], np.geomspace(1e-3, 1e3, n - 1)])
    inner = np.exp(np.quantile(np.log(points), np.linspace(0.0, 1.0, n - 1)))
    inner[-1] = points.max() * 1.01  # past the last switch point: everything goes cheapest
    return np.concatenate([[0.0], np.maximum.accumulate(inner)])
