"""``cascade-vote``: ask cheap LLMs in turn; return an answer as soon as enough of them agree,
else escalate to the strongest LLM.

The answer-consistency cascade of Yue et al. (2023, "Large Language Model Cascades with
Mixture of Thought Representations for Cost-efficient Reasoning", arXiv 2310.03094), in its
plain vote form, with the diversity of its samples coming from *different* cheap LLMs (the
recorded data holds one answer per LLM, so there is nothing to sample) and FrugalGPT's
(Chen, Zaharia and Zou, 2023, arXiv 2305.05176) habit of choosing the cheap LLMs on a training
split. No learned model reads the answers: the vote is the only signal.

The knob is the agreement needed, a whole number ``m`` in 0..k+1 for ``k`` voters. The voters
are called one by one, cheapest first (at most ``k`` calls); the first final answer
(:func:`~mixllm.policy.answers.extract_answer`) that ``m`` of them gave is returned (from the
first voter that gave it), and the strongest LLM is called as soon as no answer can reach ``m``
votes any more. So ``m = 0`` returns the first voter's answer (one call), ``m = 1`` the first
answer that can be read, and ``m = k + 1`` calls the strongest LLM alone. Where no final answer
can be read (free text; code that does not parse), only ``m = 0`` accepts a cheap answer.

The voters, unless given: every ``k``-subset of the ``pool`` cheap LLMs of best training
quality (those cheaper than ``max_cost_share`` of the strong LLM's cost) is replayed on the
training split at every ``m``, and the one with the largest area under its cost/quality frontier
is kept. The cost of a query is that of every call made. Data without recorded answers raises
:class:`~mixllm.policy.batch.LacksDataError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy._cascade import (
    check_fitted,
    check_llms,
    check_queries,
    frontier_area,
    mean_cost,
    mean_quality,
    strongest,
)
from mixllm.policy.answers import extract_all, require_responses
from mixllm.policy.batch import BatchRun, LacksDataError
from mixllm.types import QueryBatch

__all__ = ["VoteCascadePolicy", "replay_vote"]

ObjArray = NDArray[np.object_]


def replay_vote(
    ds: Dataset, voters: Sequence[str], strong: str, answers: ObjArray, m: int
) -> BatchRun:
    """Run the vote cascade on the recorded outcomes of ``ds`` (``answers``: the voters' final
    answers, (n, k)) needing ``m`` agreeing voters.

    >>> from mixllm.data.dataset import Outcome
    >>> rows = [Outcome("q", "p", x, 1.0, c) for x, c in [("a", 1.0), ("b", 2.0), ("s", 9.0)]]
    >>> ds = Dataset.from_outcomes(rows)
    >>> ans = np.array([["A", "A"]], dtype=object)
    >>> [replay_vote(ds, ["a", "b"], "s", ans, m).cost_usd.tolist() for m in (0, 1, 2, 3)]
    [[1.0], [1.0], [3.0], [9.0]]
    """
    n, k = answers.shape
    cols = [ds.llm_index(v) for v in voters]
    top = ds.llm_index(strong)
    cost_grid = np.asarray(ds.cost_usd, dtype=np.float64)
    choice = np.full(n, top, dtype=np.int64)
    cost = np.zeros(n)
    calls = np.zeros(n, dtype=np.int64)
    for i in range(n):
        counts: dict[str, int] = {}
        first: dict[str, int] = {}
        accepted = False
        for j in range(k):
            if m > k:
                break
            cost[i] += cost_grid[i, cols[j]]
            calls[i] += 1
            a = answers[i, j]
            if m == 0:
                choice[i], accepted = cols[j], True
                break
            if a is not None:
                counts[a] = counts.get(a, 0) + 1
                first.setdefault(a, cols[j])
                if counts[a] >= m:
                    choice[i], accepted = first[a], True
                    break
            if max(counts.values(), default=0) + (k - j - 1) < m:
                break  # no answer can reach m votes any more
        if not accepted:
            cost[i] += cost_grid[i, top]
            calls[i] += 1
    quality = np.asarray(ds.quality, dtype=np.float64)[np.arange(n), choice]
    return BatchRun(choice=choice, quality=quality, cost_usd=cost, calls=calls)


class VoteCascadePolicy:
    """Majority-vote cascade of ``k`` cheap LLMs before the strongest (module docstring).

    Parameters
    ----------
    voters:
        The cheap LLMs, in call order; ``None`` (default): chosen on the training split.
    strong:
        The LLM called on disagreement; ``None``: the best on the training split.
    k:
        How many voters are chosen when ``voters`` is ``None`` (all the cheap LLMs when the
        data has fewer; none at all is a :class:`~mixllm.policy.batch.LacksDataError`).
    pool:
        How many cheap LLMs (best training quality first) the choice draws from.
    max_cost_share:
        A voter's mean training cost is below this share of the strong LLM's.
    """

    name = "cascade-vote"
    knob = "agree"

    def __init__(
        self,
        voters: Sequence[str] | None = None,
        *,
        strong: str | None = None,
        k: int = 3,
        pool: int = 6,
        max_cost_share: float = 0.25,
    ) -> None:
        if voters is not None and len(voters) < 1:
            raise ConfigError("cascade-vote: voters is empty; expected at least one LLM")
        if k < 1 or pool < k:
            raise ConfigError(f"cascade-vote: k {k!r} must be >= 1 and <= pool {pool!r}")
        self.voters = None if voters is None else list(voters)
        self.strong, self.k, self.pool, self.max_cost_share = strong, k, pool, max_cost_share
        self.voters_: list[str] = []
        self.strong_ = ""
        self.search_: dict[str, float] = {}

    def fit(self, train: Dataset, queries: QueryBatch) -> VoteCascadePolicy:
        """Choose the strong LLM and the voters (unless given) on ``train``."""
        check_queries(train, queries, self.name)
        strong = self.strong or strongest(train)
        check_llms(train, [strong], "cascade-vote strong")
        if self.voters is not None:
            self.voters_ = check_llms(train, self.voters, "cascade-vote voters")
            self.strong_ = strong
            require_responses(train, self.voters_, self.name)
            return self
        q, c = mean_quality(train), mean_cost(train)
        limit = self.max_cost_share * c[train.llm_index(strong)]
        cheap = [m for j, m in enumerate(train.llms) if m != strong and c[j] < limit]
        cheap = sorted(cheap, key=lambda m: -q[train.llm_index(m)])[: self.pool]
        if not cheap:
            raise LacksDataError(
                f"cascade-vote: {train.name} has no LLM under {self.max_cost_share} of "
                f"{strong!r}'s cost; at least one cheap voter is needed"
            )
        k = min(self.k, len(cheap))  # fewer cheap LLMs than k: all of them vote
        resp = require_responses(train, cheap, self.name)
        answers = extract_all(resp, train.tasks)
        lo, hi = float(c.min()), float(c[train.llm_index(strong)])
        self.search_ = {}
        for subset in combinations(range(len(cheap)), k):
            order = sorted(subset, key=lambda s: c[train.llm_index(cheap[s])])
            voters = [cheap[s] for s in order]
            runs = [replay_vote(train, voters, strong, answers[:, order], m) for m in range(k + 2)]
            self.search_[" + ".join(voters)] = frontier_area(
                [float(np.mean(r.cost_usd)) for r in runs],
                [float(np.mean(np.nan_to_num(r.quality))) for r in runs],
                lo,
                hi,
            )
        best = max(self.search_, key=lambda v: self.search_[v])
        self.voters_, self.strong_ = best.split(" + "), strong
        return self

    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]:
        """The agreement levels 0..k+1 (fewer, both ends kept, when ``n`` is smaller)."""
        check_fitted(bool(self.voters_), self.name)
        levels = list(range(len(self.voters_) + 2))
        if n < len(levels):
            picks = np.unique(np.round(np.linspace(0, len(levels) - 1, max(n, 2))).astype(int))
            levels = [levels[p] for p in picks]
        return [float(m) for m in levels]

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun:
        """Every query of ``test`` through the vote at agreement ``knob`` (a whole number)."""
        check_fitted(bool(self.voters_), self.name)
        k = len(self.voters_)
        m = float(knob)
        if not (0 <= m <= k + 1 and m == int(m)):
            raise ConfigError(
                f"{self.name}: agreement {knob!r} is not a whole number in 0..{k + 1}"
            )
        check_queries(test, queries, self.name)
        check_llms(test, [*self.voters_, self.strong_], "cascade-vote LLMs")
        resp = require_responses(test, self.voters_, self.name)
        return replay_vote(test, self.voters_, self.strong_, extract_all(resp, test.tasks), int(m))
