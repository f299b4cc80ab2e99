"""Small fakes for the evaluation tests (imported as ``tests.evaluate.fakes``): a hashed-text
embedder, predictors that look up a fixed table by query id, and a three-LLM dataset whose
outcomes are known by heart."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.errors import NotFittedError
from mixllm.router import Router
from mixllm.types import Prediction, QueryBatch


class FakeEmbedder:
    """Hashes each text to a fixed unit vector (no model, no cache); counts texts embedded."""

    name = "fake-hash-8"
    dim = 8

    def __init__(self) -> None:
        self.n_embedded = 0

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.n_embedded += len(texts)
        rows = []
        for t in texts:
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


class TablePredictor:
    """Predicts a fixed (quality, cost) row per query id; unknown ids get ``default``."""

    def __init__(
        self,
        name: str,
        quality: Mapping[str, Sequence[float]],
        cost_usd: Sequence[float],
        *,
        default: Sequence[float] | None = None,
    ) -> None:
        self.name = name
        self.quality = dict(quality)
        self.cost_usd = np.asarray(cost_usd, dtype=np.float64)
        self.default = default

    @property
    def llms_(self) -> tuple[str, ...]:
        if not hasattr(self, "_llms"):
            raise NotFittedError("TablePredictor is not fitted")
        return self._llms

    def fit(self, train: Dataset, queries: QueryBatch) -> TablePredictor:
        self._llms = train.llms
        return self

    def predict(self, queries: QueryBatch) -> Prediction:
        fallback = self.default if self.default is not None else [0.0] * len(self.llms_)
        q = np.array([self.quality.get(i, fallback) for i in queries.ids], dtype=np.float64)
        c = np.tile(self.cost_usd, (len(queries), 1))
        return Prediction(self.llms_, q.reshape(len(queries), -1), c)


class TruthPredictor(TablePredictor):
    """Predicts the recorded quality (missing as 0) and mean cost of ``outcomes``: oracle-like."""

    def __init__(self, outcomes: Dataset, name: str = "truth") -> None:
        table = np.nan_to_num(outcomes.quality, nan=0.0)
        super().__init__(
            name,
            {str(q): row.tolist() for q, row in zip(outcomes.query_ids, table)},
            np.nanmean(outcomes.cost_usd, axis=0).tolist(),
        )


def make_three(n: int = 40, *, seed: int = 0, name: str = "three") -> Dataset:
    """Three LLMs: 'cheap' (cost 1), 'mid' (cost 3), 'ref' (cost 10, the best); seeded 0/1
    outcomes, one missing quality for 'mid' on query q1."""
    rng = np.random.default_rng(seed)
    p = np.array([0.4, 0.7, 0.9])
    quality = (rng.random((n, 3)) < p).astype(np.float64)
    quality[1, 1] = np.nan
    cost = np.tile([1.0, 3.0, 10.0], (n, 1)) * 1e-4
    return Dataset(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        prompts=np.array(
            [f"question number {i} about topic {i % 3}" for i in range(n)], dtype=object
        ),
        llms=("cheap", "mid", "ref"),
        quality=quality,
        cost_usd=cost,
        prompt_tokens=np.full(n, 12.0),
        output_tokens=np.full((n, 3), 20.0),
        latency_s=np.full((n, 3), np.nan),
        tasks=np.array([f"topic{i % 3}" for i in range(n)], dtype=object),
        name=name,
    )


def fitted(predictor: TablePredictor, train: Dataset) -> Router:
    """A router around ``predictor`` with the fake embedder, fitted on ``train``."""
    return Router(predictor, embedder=FakeEmbedder()).fit(train)
