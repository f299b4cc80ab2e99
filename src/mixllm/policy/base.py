"""The predictor protocol every router model follows, and the one shared choice policy.

A *predictor* maps queries to predicted quality and cost per LLM
(:class:`~mixllm.types.Prediction`);
:func:`choose` turns a prediction into one LLM per query for a willingness to pay ``lam``
(score = quality − lam × cost_usd). Every router, baseline or MixLLM, decides through it, so a
comparison between routers compares their predictions and nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.types import Prediction, QueryBatch

__all__ = ["Predictor", "choose", "lambda_grid", "scores"]


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


def scores(pred: Prediction, lam: float) -> NDArray[np.float64]:
    """Trade-off score s = quality − lam × cost_usd (MixLLM §3.3 without the bonus and penalty)."""
    return pred.quality - float(lam) * pred.cost_usd


def choose(pred: Prediction, lam: float) -> NDArray[np.int64]:
    """Column index of the chosen LLM per query: highest score, ties to the cheaper, then the name.

    >>> import numpy as np
    >>> p = Prediction(("a", "b"), np.array([[0.5, 0.9]]), np.array([[0.0, 1.0]]))
    >>> choose(p, 0.0).tolist(), choose(p, 1.0).tolist()
    ([1], [0])
    """
    s = scores(pred, lam)
    if s.shape[1] == 0:
        raise ValueError("no LLMs to choose from")
    # Deterministic tie-break: among scores within 1e-12 of the best, the lowest predicted cost
    # wins, then the first name in sorted order (argmin keeps the first of equal values).
    tied = s >= s.max(axis=1, keepdims=True) - 1e-12
    by_name = np.argsort(np.array(pred.llms, dtype=str), kind="stable")
    cost = np.where(tied, pred.cost_usd, np.inf)[:, by_name]
    out: NDArray[np.int64] = by_name[np.argmin(cost, axis=1)].astype(np.int64)
    return out


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
