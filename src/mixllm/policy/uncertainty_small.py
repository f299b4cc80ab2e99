"""``small-uncertainty``: answer with a small LLM unless it is likely to be unsure; then with the
strong one. One call per query, decided before any call.

After Ramírez, Birch and Titov (2024, "Optimising Calls to Large Language Models with
Uncertainty-Based Two-Tier Selection", arXiv 2405.02134): two tiers, a small and a large LLM,
and the only decision criterion is the uncertainty of the small LLM, no extra model of the
large one's quality. They read that uncertainty off the small LLM's generation (the margin
between its two most likely first tokens), so they call it first and pay for it on every query.

How this one departs, for recorded data: RouterBench and RouteLLM hold one answer per LLM and
no token log-probabilities, and an answer cannot be sampled again, so the small LLM's own
uncertainty cannot be measured. It is stood in for by a *learned proxy* computed from the
query alone, before any call: an ensemble of ``n_boot`` logistic regressions, each fitted on a
bootstrap resample of the training split, predicts the probability ``p`` that the small LLM
answers right (its recorded quality >= 0.5) from the query embedding. The confidence is the
ensemble's mean ``p`` minus ``kappa`` times its spread (disagreement between members, the
ensemble's stand-in for epistemic uncertainty, as in deep ensembles: Lakshminarayanan, Pritzel
and Blundell, 2017, arXiv 1612.01474). As the decision comes before the call, each query costs
one call (the paper's criterion needs two where it escalates), and the signal is about the
query, not the answer actually given.

The knob is the confidence the small LLM needs, a threshold in [0, 1]: 0 sends every query to
the small LLM, 1 every query to the strong one (confidences lie in [0, 1)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy._cascade import (
    TOP,
    Scorer,
    check_fitted,
    check_llms,
    check_queries,
    check_threshold,
    mean_cost,
    mean_quality,
    strongest,
)
from mixllm.policy.batch import BatchRun
from mixllm.types import QueryBatch

__all__ = ["SmallUncertaintyPolicy"]

FloatArray = NDArray[np.float64]


class SmallUncertaintyPolicy:
    """Two-tier selection on a learned uncertainty proxy of the small LLM (module docstring).

    Parameters
    ----------
    small, strong:
        The two tiers; ``None``: the strong one is the best on the training split, the small
        one the best of those costing under ``max_cost_share`` of it.
    n_boot:
        Members of the bootstrap ensemble.
    kappa:
        Weight of the members' spread in the confidence (0: their mean only).
    C:
        Inverse L2 strength of the members' logistic regressions.
    seed:
        Seed of the bootstrap resamples.
    """

    name = "small-uncertainty"
    knob = "confidence"

    def __init__(
        self,
        small: str | None = None,
        strong: str | None = None,
        *,
        n_boot: int = 8,
        kappa: float = 1.0,
        C: float = 0.5,
        max_cost_share: float = 0.1,
        seed: int = 0,
    ) -> None:
        if n_boot < 1:
            raise ConfigError(f"small-uncertainty: n_boot {n_boot!r} is below 1")
        if not kappa >= 0:
            raise ConfigError(f"small-uncertainty: kappa {kappa!r} is not a number >= 0")
        self.small, self.strong = small, strong
        self.n_boot, self.kappa, self.C = n_boot, kappa, C
        self.max_cost_share, self.seed = max_cost_share, seed
        self.small_ = ""
        self.strong_ = ""
        self.members_: list[Scorer] = []

    def fit(self, train: Dataset, queries: QueryBatch) -> SmallUncertaintyPolicy:
        """Choose the tiers (unless given) and fit the ensemble on ``train``."""
        check_queries(train, queries, self.name)
        strong = self.strong or strongest(train)
        if self.small is not None:
            small = self.small
        else:
            q, c = mean_quality(train), mean_cost(train)
            limit = self.max_cost_share * c[train.llm_index(strong)]
            cheap = [j for j, m in enumerate(train.llms) if m != strong and c[j] <= limit]
            if not cheap:
                raise ConfigError(
                    f"small-uncertainty: no LLM of {train.name} costs under "
                    f"{self.max_cost_share} of {strong!r}'s cost"
                )
            small = train.llms[max(cheap, key=lambda j: (q[j], -c[j]))]
        check_llms(train, [small, strong], "small-uncertainty tiers")
        if small == strong:
            raise ConfigError(f"small-uncertainty: small and strong are both {small!r}")
        x = np.asarray(queries.embeddings, dtype=np.float64)
        y = np.asarray(train.quality[:, train.llm_index(small)], dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        self.members_ = []
        for _ in range(self.n_boot):
            rows = rng.integers(0, len(train), len(train))
            self.members_.append(Scorer(self.C).fit(x[rows], y[rows]))
        self.small_, self.strong_ = small, strong
        return self

    def confidence(self, queries: QueryBatch) -> FloatArray:
        """The small LLM's confidence on each query: mean − ``kappa`` × spread of the members'
        predicted probability of a right answer, in [0, 1)."""
        check_fitted(bool(self.members_), self.name)
        x = np.asarray(queries.embeddings, dtype=np.float64)
        p = np.stack([m.predict(x) for m in self.members_])
        conf: FloatArray = np.clip(p.mean(axis=0) - self.kappa * p.std(axis=0), 0.0, TOP)
        return conf

    def knobs(self, test: Dataset, queries: QueryBatch, n: int) -> list[float]:
        """``n`` thresholds from 0 (small LLM only) to 1 (strong LLM only)."""
        return [float(t) for t in np.linspace(0.0, 1.0, max(n, 2))]

    def run(self, test: Dataset, queries: QueryBatch, knob: float) -> BatchRun:
        """Every query of ``test`` to the small LLM where its confidence reaches ``knob``, else
        to the strong one (one call each)."""
        threshold = check_threshold(knob, self.name)
        check_fitted(bool(self.members_), self.name)
        check_queries(test, queries, self.name)
        small, strong = check_llms(test, [self.small_, self.strong_], "small-uncertainty tiers")
        keep = self.confidence(queries) >= threshold
        n = len(test)
        choice = np.where(keep, test.llm_index(small), test.llm_index(strong)).astype(np.int64)
        rows = np.arange(n)
        return BatchRun(
            choice=choice,
            quality=np.asarray(test.quality, dtype=np.float64)[rows, choice],
            cost_usd=np.asarray(test.cost_usd, dtype=np.float64)[rows, choice],
            calls=np.ones(n, dtype=np.int64),
        )

    @property
    def tiers(self) -> Sequence[str]:
        """The small and the strong LLM, once fitted."""
        return (self.small_, self.strong_)
