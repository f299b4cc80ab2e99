"""Baselines that learn nothing from the query: random, one fixed LLM, the cheapest LLM, and the
oracle that knows the recorded outcomes (the upper bound every report shows)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mixllm.data.dataset import Dataset
from mixllm.errors import DataError, UnknownLLMError
from mixllm.policy.state import Arrays, BasePredictor, JSONValue
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.features import column_means
from mixllm.types import Prediction, QueryBatch, resolve_llm

__all__ = ["CheapestPredictor", "OraclePredictor", "RandomPredictor", "SinglePredictor"]


def _query_seed(query_id: str) -> list[int]:
    digest = hashlib.blake2b(query_id.encode("utf-8"), digest_size=8).digest()
    return [int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")]


class RandomPredictor(BasePredictor):
    """Uniform random routing: quality ~ U(0, 1) per (query, LLM), cost 0.

    The draws come from ``default_rng([seed, *hash(query_id)])``, so a query routes the same way
    on every call and in any batch, and every λ gives the same choice.

    >>> from mixllm.data.dataset import Outcome
    >>> ds = Dataset.from_outcomes([Outcome("q", "hi", m, 1.0, 0.1) for m in "ab"])
    >>> qb = QueryBatch(("q",), ("hi",), np.zeros((1, 2), np.float32), np.ones(1))
    >>> p = RandomPredictor(seed=1).fit(ds, qb)
    >>> bool((p.predict(qb).quality == p.predict(qb).quality).all())
    True
    """

    name = "random"
    kind: ClassVar[str] = "random"
    _param_names = ("seed",)

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, train: Dataset, queries: QueryBatch) -> RandomPredictor:
        """Remember the LLM names (nothing else is learned)."""
        self._check_train(train, queries)
        self.llms_ = train.llms
        return self

    def predict(self, queries: QueryBatch) -> Prediction:
        """Uniform draws per query and LLM; cost 0."""
        self._check_queries(queries)
        k = len(self.llms_)
        quality = np.zeros((len(queries), k))
        for i, qid in enumerate(queries.ids):
            quality[i] = np.random.default_rng([int(self.seed), *_query_seed(str(qid))]).random(k)
        return self._prediction(quality, np.zeros_like(quality))


class SinglePredictor(BasePredictor):
    """Always ``llm``: predicted quality 1 for it and 0 for the others, cost 0 for all, so
    :func:`~mixllm.policy.choose` picks it for every λ."""

    kind: ClassVar[str] = "single"
    _param_names = ("llm",)

    def __init__(self, llm: str) -> None:
        self.llm = llm
        self.name = f"single:{llm}"

    def fit(self, train: Dataset, queries: QueryBatch) -> SinglePredictor:
        """Check that ``llm`` (full or unambiguous short name) is in ``train`` (else
        :class:`UnknownLLMError`)."""
        self._check_train(train, queries)
        resolve_llm(self.llm, train.llms)  # a full or unambiguous short name
        self.llms_ = train.llms
        return self

    def predict(self, queries: QueryBatch) -> Prediction:
        """One-hot quality on ``llm``; cost 0."""
        self._check_queries(queries)
        quality = np.zeros((len(queries), len(self.llms_)))
        quality[:, self.llms_.index(resolve_llm(self.llm, self.llms_))] = 1.0
        return self._prediction(quality, np.zeros_like(quality))


class CheapestPredictor(BasePredictor):
    """Always the LLM with the lowest mean training cost.

    Predicted quality is 0 for every LLM and predicted cost is each LLM's mean training cost
    (recorded ``cost_usd``; where an LLM has none, the mean of
    :class:`~mixllm.predict.cost.MeanLengthCostModel` over the training queries), the same for
    every query, so the choice is the same LLM for every query and λ (ties go to the name).
    """

    name = "cheapest"
    kind: ClassVar[str] = "cheapest"

    def fit(self, train: Dataset, queries: QueryBatch) -> CheapestPredictor:
        """Learn the mean cost per LLM."""
        self._check_train(train, queries)
        model = MeanLengthCostModel().fit(train, queries.prompt_tokens)
        modelled = model.predict(queries.prompt_tokens).mean(axis=0)
        cost = np.where(np.isfinite(train.cost_usd), train.cost_usd, modelled)
        self.mean_cost_usd_ = cost.mean(axis=0)
        self.llms_ = train.llms
        return self

    def predict(self, queries: QueryBatch) -> Prediction:
        """Quality 0 everywhere; each LLM's mean training cost."""
        self._check_queries(queries)
        cost = np.tile(self.mean_cost_usd_, (len(queries), 1))
        return self._prediction(np.zeros_like(cost), cost)

    @property
    def llm_(self) -> str:
        """The LLM this router always picks."""
        self._check_fitted()
        order = sorted(
            range(len(self.llms_)), key=lambda j: (self.mean_cost_usd_[j], self.llms_[j])
        )
        return self.llms_[order[0]]

    def _state(self) -> tuple[dict[str, object], Arrays]:
        return {}, {"mean_cost_usd": self.mean_cost_usd_}

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        self.mean_cost_usd_ = np.asarray(arrays["mean_cost_usd"], dtype=np.float64)


class OraclePredictor(BasePredictor):
    """The upper bound: predicts each query's recorded quality (missing → 0) and cost.

    Parameters
    ----------
    outcomes:
        The dataset whose outcomes it looks up by query id, normally the test split the harness
        routes; ``None`` uses the training set. A missing cost is that LLM's mean recorded cost.
        A query id not in it raises :class:`~mixllm.errors.DataError`.
    """

    name = "oracle"
    kind: ClassVar[str] = "oracle"

    def __init__(self, outcomes: Dataset | None = None) -> None:
        self.outcomes = outcomes

    def fit(self, train: Dataset, queries: QueryBatch) -> OraclePredictor:
        """Build the lookup table from ``outcomes`` (or ``train``), columns in ``train``'s order."""
        self._check_train(train, queries)
        table = train if self.outcomes is None else self.outcomes
        missing = [m for m in train.llms if m not in table.llms]
        if missing:
            raise UnknownLLMError(
                f"oracle outcomes lack LLMs {missing}; they have {sorted(table.llms)}"
            )
        table = table.select_llms(train.llms)
        mean_cost = column_means(table.cost_usd, 0.0)
        self.ids_ = np.array([str(q) for q in table.query_ids], dtype=str)
        self.quality_ = np.nan_to_num(table.quality, nan=0.0)
        self.cost_usd_ = np.where(np.isfinite(table.cost_usd), table.cost_usd, mean_cost)
        self.llms_ = train.llms
        self._index()
        return self

    def _index(self) -> None:
        self._row = {q: i for i, q in enumerate(self.ids_.tolist())}

    def predict(self, queries: QueryBatch) -> Prediction:
        """The recorded outcomes of ``queries`` (looked up by id)."""
        self._check_queries(queries)
        unknown = [q for q in queries.ids if q not in self._row]
        if unknown:
            raise DataError(
                f"oracle has no outcomes for query ids {unknown[:5]} ({len(unknown)} unknown); "
                "pass the routed dataset as OraclePredictor(outcomes=...)"
            )
        rows = np.array([self._row[q] for q in queries.ids], dtype=np.int64)
        return self._prediction(self.quality_[rows], self.cost_usd_[rows])

    def _state(self) -> tuple[dict[str, object], Arrays]:
        return {}, {"ids": self.ids_, "quality": self.quality_, "cost_usd": self.cost_usd_}

    def _restore(self, params: Mapping[str, JSONValue], arrays: Mapping[str, Any]) -> None:
        self.ids_ = np.asarray(arrays["ids"], dtype=str)
        self.quality_ = np.asarray(arrays["quality"], dtype=np.float64)
        self.cost_usd_ = np.asarray(arrays["cost_usd"], dtype=np.float64)
        self._index()
