"""Replay a test split through a fitted :class:`~mixllm.router.Router` and look up the outcomes.

The replay goes through the router's public API only (:meth:`Router.route_many` for each λ), the
same calls the CLI and the gateway make, then reads the recorded quality and cost of each chosen
LLM from the test split. Fixed policies (single LLMs, random, cheapest, oracle) are routers too;
a single LLM is replayed with ``candidates=[llm]`` at one λ, so its sweep is one point.

A missing quality stays ``NaN`` here (the metrics count it as 0 and report how many); a missing
cost is imputed with that LLM's mean recorded cost on the test split, as the oracle does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import DataError, UnknownLLMError
from mixllm.evaluate.metrics import RunMetrics, run_metrics
from mixllm.router import Router

__all__ = ["SweepResult", "filled_costs", "replay", "sweep_lams"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class SweepResult:
    """What a router chose for every test query at every λ, and what that turned out to be.

    ``choice[l, i]`` is the column (in ``llms``, the test split's order) chosen for query ``i``
    at ``lams[l]``; ``quality`` and ``cost_usd`` are the recorded outcomes of those choices,
    shape (n_lam, n). ``route_s`` is the wall time spent in ``route_many``, all λ together.
    ``lam0_row`` is the run that stands for λ = 0 in a report: the smallest λ by default; for a
    batch policy (whose ``lams`` hold its own knob) its last run, the one of highest quality.
    """

    router: str
    llms: tuple[str, ...]
    lams: FloatArray
    choice: NDArray[np.int64]
    quality: FloatArray
    cost_usd: FloatArray
    route_s: float
    lam0_row: int | None = None

    @property
    def n_queries(self) -> int:
        return int(self.choice.shape[1])

    @property
    def route_s_per_query(self) -> float:
        """Mean routing time per query and λ."""
        return self.route_s / max(self.choice.size, 1)

    def runs(self) -> list[RunMetrics]:
        """Mean quality (missing as 0), cost and missing count at each λ."""
        return [run_metrics(q, c) for q, c in zip(self.quality, self.cost_usd)]

    def shares(self) -> FloatArray:
        """Share of calls sent to each LLM at each λ, shape (n_lam, n_llms)."""
        k = len(self.llms)
        counts = np.stack([np.bincount(row, minlength=k) for row in self.choice])
        out: FloatArray = counts / max(self.n_queries, 1)
        return out


def filled_costs(test: Dataset) -> FloatArray:
    """``test.cost_usd`` with each missing cell set to that LLM's mean recorded cost."""
    cost = np.asarray(test.cost_usd, dtype=np.float64)
    known = np.isfinite(cost)
    has_cost: list[bool] = np.any(known, axis=0).tolist()
    empty = [m for m, ok in zip(test.llms, has_cost) if not ok]
    if empty:
        raise DataError(
            f"{test.name}: no recorded cost at all for LLMs {empty}; give them prices "
            "(mixllm evaluate --prices FILE, see docs/data-format.md)"
        )
    means = np.where(known, cost, 0.0).sum(axis=0) / known.sum(axis=0)
    out: FloatArray = np.where(known, cost, means[None, :])
    return out


def _texts(test: Dataset) -> tuple[list[str], list[str]]:
    return [str(p) for p in test.prompts], [str(q) for q in test.query_ids]


def sweep_lams(router: Router, test: Dataset, n: int) -> list[float]:
    """``n`` values of λ from best-quality to cheapest routing of ``test`` (the router's grid).

    Passes the query ids, so id-keyed predictors (the oracle) work.
    """
    prompts, ids = _texts(test)
    return router.lambda_sweep(prompts, n, query_ids=ids)


def replay(
    router: Router,
    test: Dataset,
    *,
    lams: Sequence[float],
    candidates: Sequence[str] | None = None,
    name: str | None = None,
) -> SweepResult:
    """Route every query of ``test`` at each λ and look up the recorded outcome of each choice.

    Parameters
    ----------
    router:
        A fitted router whose LLMs are all in ``test``.
    test:
        The test split with recorded outcomes for every LLM.
    lams:
        The λ values of the sweep (at least one).
    candidates:
        Restrict the choice to these LLMs (``[llm]`` replays a single LLM).
    name:
        The name in reports; default the predictor's name.
    """
    if not lams:
        raise ValueError("replay needs at least one value of lam")
    prompts, ids = _texts(test)
    cost = filled_costs(test)
    choice = np.empty((len(lams), len(test)), dtype=np.int64)
    route_s = 0.0
    for row, lam in enumerate(lams):
        start = time.perf_counter()
        decisions = router.route_many(prompts, query_ids=ids, lam=float(lam), candidates=candidates)
        route_s += time.perf_counter() - start
        choice[row] = _columns(test, [d.llm for d in decisions])
    rows = np.arange(len(test))[None, :]
    return SweepResult(
        router=name or _predictor_name(router),
        llms=test.llms,
        lams=np.asarray(lams, dtype=np.float64),
        choice=choice,
        quality=np.asarray(test.quality, dtype=np.float64)[rows, choice],
        cost_usd=cost[rows, choice],
        route_s=route_s,
    )


def _columns(test: Dataset, chosen: list[str]) -> NDArray[np.int64]:
    index = {m: j for j, m in enumerate(test.llms)}
    unknown = sorted({m for m in chosen if m not in index})
    if unknown:
        raise UnknownLLMError(
            f"router chose LLMs {unknown} that {test.name!r} has no outcomes for; "
            f"known: {sorted(test.llms)}"
        )
    return np.array([index[m] for m in chosen], dtype=np.int64)


def _predictor_name(router: Router) -> str:
    p = router.predictor
    return p if isinstance(p, str) else str(getattr(p, "name", type(p).__name__))
