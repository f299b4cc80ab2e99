"""Routers that do not decide one query at a time from a prediction: the protocol they follow.

Most routers map a query to predicted quality and cost per LLM and let :func:`~mixllm.policy.choose`
pick at a willingness to pay λ. Some routers cannot be written that way:

- a **cascade** calls a cheap LLM first and reads its answer before deciding whether to call
  another one, so its decision depends on answers, and its cost is that of every call it made;
- a **budgeted assignment** chooses for a whole batch of queries at once, under a total budget.

Such a router is a :class:`BatchPolicy`: fitted on a training split, then *run* on a test
split (whose recorded answers stand in for live calls) at one value of its own knob (a
confidence threshold, a budget in USD, ...). The evaluation harness sweeps the knob instead of
λ, so these routers get the same frontier, AIQ and intervals as every other router.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import DataError
from mixllm.types import QueryBatch

__all__ = ["BatchPolicy", "BatchRun", "LacksDataError"]


class LacksDataError(DataError):
    """The data lacks what a batch policy needs (recorded answers, say): the harness skips the
    policy on that data with a note, where any other error stops the evaluation."""


@dataclass(frozen=True, eq=False)
class BatchRun:
    """What a :class:`BatchPolicy` did with each query of a test split at one knob value.

    ``choice[i]`` is the column (in the test split's ``llms``) whose answer was returned for
    query ``i``; ``quality[i]`` its recorded quality (``NaN`` where unknown); ``cost_usd[i]``
    the cost of *every* call made for it (a cascade that escalated pays both); ``calls[i]`` how
    many LLM calls were made for it.
    """

    choice: NDArray[np.int64]
    quality: NDArray[np.float64]
    cost_usd: NDArray[np.float64]
    calls: NDArray[np.int64]

    def __post_init__(self) -> None:
        n = len(self.choice)
        for name in ("quality", "cost_usd", "calls"):
            if len(getattr(self, name)) != n:
                raise DataError(
                    f"BatchRun.{name} has {len(getattr(self, name))} rows; expected {n}, "
                    "one per query like choice"
                )


@runtime_checkable
class BatchPolicy(Protocol):
    """A router that is fitted on a training split and run on a whole test split.

    ``knob`` names what :meth:`knobs` returns (``"threshold"``, ``"budget_usd"``, ...).
    :meth:`knobs` gives ``n`` values of it from the cheapest run to the one of highest quality
    (for the harness to sweep); :meth:`run` answers every query of ``test`` at one value, from
    the recorded outcomes and answers of ``test`` only for the LLMs it calls.
    """

    name: str
    knob: str

    def fit(self, train: Dataset, queries: QueryBatch) -> BatchPolicy: ...

    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]: ...

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun: ...
