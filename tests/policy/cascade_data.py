"""A small generated multiple-choice set with recorded answers, for the cascade tests.

Four LLMs answer letters A-D: 'c1', 'c2', 'c3' are cheap (right with p = 0.5, 0.7, 0.8; a
wrong answer is a hedged, longer text with another letter), 'strong' is right with p = 0.95
and costs 20 times more. Embeddings carry a cluster where 'c1' is always right.
"""

from __future__ import annotations

import numpy as np

from mixllm.data.dataset import Dataset
from mixllm.types import QueryBatch

LLMS = ("c1", "c2", "c3", "strong")


def answer_set(
    n: int = 300, *, seed: int = 0, responses: bool = True
) -> tuple[Dataset, QueryBatch]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, n)
    easy = rng.random(n) < 0.3
    p_right = np.array([0.5, 0.7, 0.8, 0.95])
    right = rng.random((n, 4)) < p_right
    right[easy, 0] = True
    letters = np.where(right, truth[:, None], (truth[:, None] + rng.integers(1, 4, (n, 4))) % 4)
    text = np.empty((n, 4), dtype=object)
    for i in range(n):
        for j in range(4):
            letter = "ABCD"[letters[i, j]]
            text[i, j] = letter if right[i, j] else f"I am not sure, maybe ({letter}) or another"
    cost = np.array([1.0, 1.5, 2.0, 20.0]) * 1e-4 * rng.uniform(0.9, 1.1, (n, 4))
    emb = rng.normal(size=(n, 8))
    emb[:, 0] += np.where(easy, 3.0, 0.0)
    ds = Dataset(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        prompts=np.array([f"question {i}" for i in range(n)], dtype=object),
        llms=LLMS,
        quality=right.astype(float),
        cost_usd=cost,
        prompt_tokens=np.full(n, 10.0),
        output_tokens=np.full((n, 4), 5.0),
        latency_s=np.full((n, 4), np.nan),
        tasks=np.full(n, "arc-challenge", dtype=object),
        name="answers",
        responses=text if responses else None,
    )
    queries = QueryBatch(
        ids=tuple(str(q) for q in ds.query_ids),
        prompts=tuple(str(p) for p in ds.prompts),
        embeddings=emb.astype(np.float32),
        prompt_tokens=np.full(n, 10.0),
    )
    return ds, queries


def halves(n: int = 300, *, seed: int = 0, responses: bool = True):  # type: ignore[no-untyped-def]
    ds, qb = answer_set(n, seed=seed, responses=responses)
    tr, te = np.arange(n // 2), np.arange(n // 2, n)

    def take(index: np.ndarray) -> QueryBatch:
        return QueryBatch(
            ids=tuple(qb.ids[i] for i in index),
            prompts=tuple(qb.prompts[i] for i in index),
            embeddings=qb.embeddings[index],
            prompt_tokens=qb.prompt_tokens[index],
        )

    return ds.subset(tr), take(tr), ds.subset(te), take(te)
