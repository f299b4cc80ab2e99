"""``cascade``: call cheap LLMs in turn, escalate while a learned scorer doubts their answer.

After FrugalGPT (Chen, Zaharia and Zou, 2023, "FrugalGPT: How to Use Large Language Models
While Reducing Cost and Improving Performance", arXiv 2305.05176): a chain of LLMs, cheapest
first; each answer is scored by a small learned model and returned when its score reaches the
stage's threshold, else the next LLM is called; the last LLM's answer is always returned. Its
self-verification is that of AutoMix (Aggarwal et al., 2023, "AutoMix: Automatically Mixing
Language Models", arXiv 2310.12963) in spirit: decide from the cheap answer itself.

How this one departs from the papers, to replay on recorded answers:

- The scorer is a logistic regression (not FrugalGPT's fine-tuned DistilBERT, nor AutoMix's
  few-shot self-verification by the LLM) on the query's embedding and features of the answers
  read so far (:func:`~mixllm.policy.answers.answer_features`: length, whether a final answer
  could be read, whether the text is just the answer, hedging words, code, agreement between
  the cheap answers). It is fitted on the training split's recorded answers and qualities.
- One threshold (the knob) serves every stage, where FrugalGPT searches one per stage.
- The chain: the LLM of best training quality comes last; before it one or two of the cheap
  LLMs on the training split's cost/quality Pareto front (:func:`~mixllm.policy._cascade.
  cheap_pareto`), in cost order. Each candidate chain is replayed on the training split with
  out-of-fold scores (``folds``-fold cross-fitting) over a grid of thresholds, and the chain
  with the largest area under its cost/quality frontier (between the cheapest LLM's cost and
  the strong one's) is kept: FrugalGPT's search over permutations and thresholds, made small.

The cost of a query is that of every call made; ``calls`` counts them. Data without recorded
answers raises :class:`~mixllm.policy.batch.LacksDataError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy._cascade import (
    Scorer,
    cheap_pareto,
    check_fitted,
    check_llms,
    check_queries,
    check_threshold,
    folds_of,
    frontier_area,
    mean_cost,
    strongest,
)
from mixllm.policy.answers import answer_features, extract_all, require_responses
from mixllm.policy.batch import BatchRun
from mixllm.types import QueryBatch

__all__ = ["CascadePolicy", "replay_chain"]

FloatArray = NDArray[np.float64]


def replay_chain(
    ds: Dataset, chain: Sequence[str], scores: Sequence[FloatArray], threshold: float
) -> BatchRun:
    """Run ``chain`` on the recorded outcomes of ``ds``: stage ``s`` (all but the last) returns
    its answer where ``scores[s] >= threshold``, else the next LLM is called.

    >>> from mixllm.data.dataset import Outcome
    >>> rows = [Outcome("q", "p", "a", 0.0, 1.0), Outcome("q", "p", "b", 1.0, 9.0)]
    >>> ds = Dataset.from_outcomes(rows)
    >>> run = replay_chain(ds, ["a", "b"], [np.array([0.3])], 0.5)
    >>> run.choice.tolist(), run.cost_usd.tolist(), run.calls.tolist()
    ([1], [10.0], [2])
    """
    n = len(ds)
    cols = [ds.llm_index(m) for m in chain]
    choice = np.full(n, cols[-1], dtype=np.int64)
    cost = np.zeros(n)
    calls = np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    for s, col in enumerate(cols):
        cost[active] += ds.cost_usd[active, col]
        calls[active] += 1
        if s == len(cols) - 1:
            choice[active] = col
            break
        accept = active & (scores[s] >= threshold)
        choice[accept] = col
        active &= ~accept
    quality = np.asarray(ds.quality, dtype=np.float64)[np.arange(n), choice]
    return BatchRun(choice=choice, quality=quality, cost_usd=cost, calls=calls)


def _features(
    queries: QueryBatch, responses: NDArray[np.object_], answers: NDArray[np.object_], ds: Dataset
) -> FloatArray:
    feats = answer_features(responses, answers, ds.tasks)
    return np.hstack([np.asarray(queries.embeddings, dtype=np.float64), feats])


class CascadePolicy:
    """A FrugalGPT-style cascade with a learned answer scorer (see the module docstring).

    Parameters
    ----------
    chain:
        LLM names, cheapest first, the last one always answering; ``None`` (default): searched
        on the training split.
    max_cheap:
        How many cheap LLMs the searched chain may call before the last one (1 or 2).
    C:
        Inverse L2 strength of the scorers' logistic regressions.
    folds:
        Folds of the cross-fitting that scores candidate chains on the training split.
    seed:
        Seed of the folds.

    The knob is the ``threshold`` in [0, 1] that a score must reach for an answer to be
    returned: 0 returns the first LLM's answer (one call), 1 calls every LLM of the chain.
    """

    name = "cascade"
    knob = "threshold"

    def __init__(
        self,
        chain: Sequence[str] | None = None,
        *,
        max_cheap: int = 2,
        C: float = 0.5,
        folds: int = 3,
        seed: int = 0,
    ) -> None:
        if chain is not None and len(chain) < 2:
            raise ConfigError(f"cascade: chain {list(chain)!r} needs at least two LLMs")
        if max_cheap not in (1, 2):
            raise ConfigError(f"cascade: max_cheap {max_cheap!r} is not 1 or 2")
        if folds < 2:
            raise ConfigError(f"cascade: folds {folds!r} is below 2")
        self.chain = None if chain is None else list(chain)
        self.max_cheap, self.C, self.folds, self.seed = max_cheap, C, folds, seed
        self.chain_: list[str] = []
        self.scorers_: list[Scorer] = []
        self.search_: dict[str, float] = {}
        self._memo: tuple[Dataset, QueryBatch, list[FloatArray]] | None = None

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, train: Dataset, queries: QueryBatch) -> CascadePolicy:
        """Choose the chain (unless given) and fit one scorer per cheap stage on ``train``."""
        check_queries(train, queries, self.name)
        if self.chain is not None:
            chains = [check_llms(train, self.chain, "cascade chain")]
        else:
            strong = strongest(train)
            cheap = cheap_pareto(train, strong)
            if not cheap:
                raise ConfigError(
                    f"cascade: no LLM of {train.name} is cheaper than its strongest, {strong!r}"
                )
            chains = [[*c, strong] for r in range(1, self.max_cheap + 1)
                      for c in combinations(cheap, r)]  # fmt: skip
        cheap_all = sorted({m for c in chains for m in c[:-1]}, key=train.llms.index)
        resp = require_responses(train, cheap_all, self.name)
        answers = extract_all(resp, train.tasks)
        where = {m: k for k, m in enumerate(cheap_all)}
        if len(chains) > 1:
            self.chain_ = self._search(train, queries, chains, resp, answers, where)
        else:
            self.chain_ = chains[0]
        self.scorers_, self._memo = [], None
        for s in range(len(self.chain_) - 1):
            cols = [where[m] for m in self.chain_[: s + 1]]
            x = _features(queries, resp[:, cols], answers[:, cols], train)
            y = train.quality[:, train.llm_index(self.chain_[s])]
            self.scorers_.append(Scorer(self.C).fit(x, y))
        return self

    def _search(
        self,
        train: Dataset,
        queries: QueryBatch,
        chains: list[list[str]],
        resp: NDArray[np.object_],
        answers: NDArray[np.object_],
        where: dict[str, int],
    ) -> list[str]:
        """The chain of largest training frontier area, scored out of fold."""
        oof: dict[tuple[str, ...], FloatArray] = {}
        folds = folds_of(len(train), self.folds, self.seed)
        for chain in chains:
            for s in range(len(chain) - 1):
                prefix = tuple(chain[: s + 1])
                if prefix in oof:
                    continue
                cols = [where[m] for m in prefix]
                x = _features(queries, resp[:, cols], answers[:, cols], train)
                y = np.asarray(train.quality[:, train.llm_index(prefix[-1])])
                score = np.zeros(len(train))
                for fold in folds:
                    rest = np.setdiff1d(np.arange(len(train)), fold)
                    score[fold] = Scorer(self.C).fit(x[rest], y[rest]).predict(x[fold])
                oof[prefix] = score
        costs = mean_cost(train)
        lo, hi = float(costs.min()), float(costs[train.llm_index(chains[0][-1])])
        self.search_ = {}
        for chain in chains:
            scores = [oof[tuple(chain[: s + 1])] for s in range(len(chain) - 1)]
            runs = [replay_chain(train, chain, scores, t) for t in np.linspace(0, 1, 41)]
            area = frontier_area(
                [float(np.mean(r.cost_usd)) for r in runs],
                [float(np.mean(np.nan_to_num(r.quality))) for r in runs],
                lo,
                hi,
            )
            self.search_[" > ".join(chain)] = area
        best = max(self.search_, key=lambda k: self.search_[k])
        return best.split(" > ")

    # -- running ------------------------------------------------------------------------------
    def scores(self, test: Dataset, queries: QueryBatch) -> list[FloatArray]:
        """Each cheap stage's score of its recorded answer on every query of ``test``."""
        check_fitted(bool(self.chain_), self.name)
        if self._memo is not None and self._memo[0] is test and self._memo[1] is queries:
            return self._memo[2]
        check_queries(test, queries, self.name)
        check_llms(test, self.chain_, "cascade chain")
        cheap = self.chain_[:-1]
        resp = require_responses(test, cheap, self.name)
        answers = extract_all(resp, test.tasks)
        out = []
        for s, scorer in enumerate(self.scorers_):
            cols = list(range(s + 1))
            out.append(scorer.predict(_features(queries, resp[:, cols], answers[:, cols], test)))
        self._memo = (test, queries, out)
        return out

    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]:
        """``n`` thresholds from 0 (first LLM only) to 1 (every LLM of the chain)."""
        return [float(t) for t in np.linspace(0.0, 1.0, max(n, 2))]

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun:
        """Every query of ``test`` through the chain at threshold ``knob``."""
        threshold = check_threshold(knob, self.name)
        return replay_chain(test, self.chain_, self.scores(test, queries), threshold)
