"""Small seeded synthetic routing sets where the right answer is known.

Queries come from clusters; LLM j answers well (p = 0.9) on clusters c with c % n_llms == j and
badly (p = 0.1) elsewhere; embeddings are the cluster centre plus noise, given directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.policy import (
    BasePredictor,
    CheapestPredictor,
    EpsilonGreedyPredictor,
    KNNPredictor,
    LinUCBPredictor,
    LLMBanditPredictor,
    LogisticPredictor,
    MatrixFactorizationPredictor,
    MetaLLMPredictor,
    MixLLMPredictor,
    MLPPredictor,
    OraclePredictor,
    RandomPredictor,
    SinglePredictor,
    ThompsonPredictor,
)
from mixllm.policy.task_best import TaskBestPredictor
from mixllm.policy.task_prior import TaskPriorPredictor
from mixllm.types import LLM, QueryBatch

Split = tuple[Dataset, QueryBatch, Dataset, QueryBatch]


def make_set(
    n: int = 200,
    *,
    n_llms: int = 2,
    n_clusters: int = 2,
    dim: int = 16,
    noise: float = 0.3,
    nan_frac: float = 0.0,
    llms: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[Dataset, QueryBatch]:
    """A dataset and its row-aligned queries (see the module docstring)."""
    rng = np.random.default_rng(seed)
    names = tuple(llms) if llms is not None else tuple(f"llm-{j}" for j in range(n_llms))
    k = len(names)
    centres = rng.normal(size=(n_clusters, dim))
    cluster = rng.integers(0, n_clusters, n)
    x = centres[cluster] + noise * rng.normal(size=(n, dim)) * np.linalg.norm(centres[0]) / 4
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    good = (cluster[:, None] % k) == np.arange(k)[None, :]
    quality = (rng.random((n, k)) < np.where(good, 0.9, 0.1)).astype(float)
    quality[rng.random((n, k)) < nan_frac] = np.nan
    ptok = rng.integers(10, 200, n).astype(float)
    otok = rng.integers(10, 300, (n, k)).astype(float)
    prices = {m: LLM(m, 1.0 + j, 2.0 + 2 * j) for j, m in enumerate(names)}
    pin = np.array([prices[m].price_in_per_mtok for m in names])
    pout = np.array([prices[m].price_out_per_mtok for m in names])
    ids = np.array([f"s{seed}-q{i}" for i in range(n)], dtype=object)
    ds = Dataset(
        query_ids=ids,
        prompts=np.array([f"prompt {i}" for i in range(n)], dtype=object),
        llms=names,
        quality=quality,
        cost_usd=(ptok[:, None] * pin + otok * pout) / 1e6,
        prompt_tokens=ptok,
        output_tokens=otok,
        latency_s=np.full((n, k), np.nan),
        tasks=np.full(n, None, dtype=object),
        name="synthetic",
        prices=prices,
    )
    return ds, queries_of(ds, x)


def queries_of(ds: Dataset, x: np.ndarray) -> QueryBatch:
    return QueryBatch(
        ids=tuple(str(q) for q in ds.query_ids),
        prompts=tuple(str(p) for p in ds.prompts),
        embeddings=np.asarray(x, dtype=np.float32),
        prompt_tokens=np.asarray(ds.prompt_tokens, dtype=np.float64),
    )


def take(qb: QueryBatch, index: np.ndarray) -> QueryBatch:
    return QueryBatch(
        ids=tuple(qb.ids[i] for i in index),
        prompts=tuple(qb.prompts[i] for i in index),
        embeddings=qb.embeddings[index],
        prompt_tokens=qb.prompt_tokens[index],
    )


def split(ds: Dataset, qb: QueryBatch, n_train: int) -> Split:
    tr, te = np.arange(n_train), np.arange(n_train, len(ds))
    return ds.subset(tr), take(qb, tr), ds.subset(te), take(qb, te)


#: One factory per predictor, given the train and test sets (the oracle needs the test set).
FACTORIES: dict[str, Callable[[Dataset, Dataset], BasePredictor]] = {
    "random": lambda tr, te: RandomPredictor(seed=3),
    "single": lambda tr, te: SinglePredictor(tr.llms[-1]),
    "cheapest": lambda tr, te: CheapestPredictor(),
    "oracle": lambda tr, te: OraclePredictor(te),
    "knn": lambda tr, te: KNNPredictor(k_grid=(3, 10, 30), cv=3),
    "logistic": lambda tr, te: LogisticPredictor(C_grid=(0.01, 1.0)),
    "mlp": lambda tr, te: MLPPredictor(hidden=16, max_epochs=50),
    "mf": lambda tr, te: MatrixFactorizationPredictor(dim=8, max_iter=50),
    "mixllm": lambda tr, te: MixLLMPredictor(quality="logistic", length="ridge"),
    "mixllm-untagged": lambda tr, te: MixLLMPredictor("knn", "mean", tagged=False),
    "linucb": lambda tr, te: LinUCBPredictor(),
    "thompson": lambda tr, te: ThompsonPredictor(explore=0.5, seed=1),
    "egreedy": lambda tr, te: EpsilonGreedyPredictor(explore=0.1, seed=1),
    "metallm": lambda tr, te: MetaLLMPredictor(cost_scaling=10.0),
    "metallm-bandit": lambda tr, te: MetaLLMPredictor(offline="bandit", seed=1),
    "llm-bandit": lambda tr, te: LLMBanditPredictor(seed=1),
    "task-best": lambda tr, te: TaskBestPredictor(),
    "task-prior": lambda tr, te: TaskPriorPredictor(seed=1),
}
LEARNED = ["knn", "logistic", "mlp", "mf", "mixllm", "mixllm-untagged", "linucb"]


@pytest.fixture(scope="session")
def two_clusters() -> Split:
    """300 queries (200 train, 100 test), two clusters, two LLMs: each good on one cluster."""
    return split(*make_set(300), 200)
