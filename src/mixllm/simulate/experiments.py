"""The stream experiments of the streams issue, each a function of (dataset, seed) → runs.

* :func:`ood_runs`: train on every task but one, stream the held-out task; the same stream
  routed by a router that also trained on half of that task (no shift), by offline-only
  MixLLM, by MixLLM learning from refined or binary feedback, and by the bandit baselines.
* :func:`latency_runs`: a stream fast enough to queue the popular LLMs, routed with and
  without the latency penalty.
* :func:`pool_runs`: an LLM joins mid-stream with no data; the most-used LLM leaves
  mid-stream.

Every run is deterministic for its seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from mixllm.data import Dataset, concat
from mixllm.embed import Embedder
from mixllm.errors import ConfigError
from mixllm.policy import make_predictor
from mixllm.router import Router
from mixllm.simulate.arrivals import Poisson
from mixllm.simulate.queues import Service
from mixllm.simulate.stream import PoolEvent, Step, StreamConfig, run_stream
from mixllm.types import LLM

__all__ = [
    "AWARE",
    "ONLINE_ROUTERS",
    "REFERENCE",
    "SCALED",
    "STREAM_ORDERS",
    "latency_runs",
    "ood_runs",
    "pool_runs",
    "split_for_ood",
]

#: Name → (predictor name, its keyword arguments, feedback kind) of the OOD comparison; each
#: run builds a fresh predictor from these (seeded like its router).
ONLINE_ROUTERS: dict[str, tuple[str, dict[str, object], str]] = {
    "mixllm offline": ("mixllm", {}, "none"),
    "mixllm + refined feedback": ("mixllm", {}, "refined"),
    "mixllm + binary feedback": ("mixllm", {}, "binary"),
    "mixllm (A: feedback) + refined": ("mixllm", {"statistics": "feedback"}, "refined"),
    "mixllm (A: feedback) + binary": ("mixllm", {"statistics": "feedback"}, "binary"),
    "mixllm (A: split) + refined": ("mixllm", {"statistics": "split"}, "refined"),
    "mixllm (A: split) + binary": ("mixllm", {"statistics": "split"}, "binary"),
    "linucb": ("linucb", {}, "refined"),
    "thompson": ("thompson", {}, "refined"),
    "egreedy": ("egreedy", {}, "refined"),
}
#: Orders in which :func:`latency_runs` streams the queries.
STREAM_ORDERS = ("mixed", "as given")
#: Names of latency runs: the no-queue reference, the default (flat) penalty, the scaled one.
REFERENCE = "no queues (reference)"
AWARE = "latency-aware"
SCALED = "latency-aware, penalty scaled by service time"

#: The predictors that explore through the router's bonus weight α (the others explore
#: through their own parameters, or not at all when they do not learn).
_BONUS_EXPLORERS = ("mixllm", "linucb")
#: Service of every LLM when waits should not matter (plenty of slots, modest arrival rate).
_IDLE = Service(ttft_s=0.5, tokens_per_s=50.0, concurrency=1_000)


def split_for_ood(ds: Dataset, task: str, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """(other tasks, half of ``task`` for the no-shift reference, the other half to stream)."""
    if task not in ds.task_names:
        raise ConfigError(f"task {task!r}; known tasks: {list(ds.task_names)}")
    is_task = ds.tasks.astype(str) == task
    rows = np.random.default_rng(seed).permutation(np.flatnonzero(is_task))
    half = len(rows) // 2
    return (
        ds.subset(np.flatnonzero(~is_task)),
        ds.subset(np.sort(rows[:half])),
        ds.subset(rows[half:]),
    )


def _config(lam: float, seed: int, feedback: str, **kwargs: object) -> StreamConfig:
    base = StreamConfig(
        lam=lam,
        arrivals=Poisson(rate_per_s=5.0),
        tau_s=60.0,
        feedback="none",
        default_service=_IDLE,
        seed=seed,
    )
    return replace(base, feedback=feedback, **kwargs)  # type: ignore[arg-type]


def ood_runs(
    ds: Dataset,
    task: str,
    *,
    seed: int,
    lam: float,
    embedder: Embedder,
    alpha: float = 0.3,
    routers: Mapping[str, tuple[str, dict[str, object], str]] = ONLINE_ROUTERS,
) -> dict[str, list[Step]]:
    """Stream half of ``task`` through routers trained without it (and one trained with the
    other half: ``"no shift (trained on the task)"``). ``alpha`` is the exploration weight of
    the learners that explore by a bonus (MixLLM, LinUCB)."""
    others, seen, stream = split_for_ood(ds, task, seed)
    runs: dict[str, list[Step]] = {}
    reference = Router("mixllm", embedder=embedder, seed=seed).fit(
        concat([others, seen], name=others.name)
    )
    runs["no shift (trained on the task)"] = run_stream(
        reference, stream, _config(lam, seed, "none")
    )
    for name, (kind, kwargs, feedback) in routers.items():
        predictor = make_predictor(kind, seed=seed, **kwargs)
        a = alpha if kind in _BONUS_EXPLORERS and feedback != "none" else 0.0
        router = Router(predictor, embedder=embedder, seed=seed, alpha=a).fit(others)
        runs[name] = run_stream(router, stream, _config(lam, seed, feedback))
    return runs


def latency_runs(
    train: Dataset,
    stream: Dataset,
    *,
    seed: int,
    lam: float,
    embedder: Embedder,
    rate_per_s: float,
    services: Mapping[str, Service],
    tau_s: float = 30.0,
    beta: float = 0.1,
    order: str = "mixed",
) -> dict[str, list[Step]]:
    """The same stream routed latency-blind (β = 0, no τ), latency-aware (β, τ) with the
    paper's flat penalty and with the penalty scaled by each answer's service time (true
    waits), latency-aware with the waits a gateway would estimate (in-flight counts and
    measured latencies), and, as the reference, by the same router when nothing ever queues
    (unlimited slots).

    ``order``: ``"mixed"`` streams the queries in a seeded random order (traffic from every
    task at once); ``"as given"`` keeps the dataset's order (RouterBench's split is sorted by
    task, so each task arrives as one long run: bursts of one kind of query).
    """
    if order not in STREAM_ORDERS:
        raise ConfigError(f"order={order!r}; expected one of {STREAM_ORDERS}")
    if order == "mixed":
        stream = stream.subset(np.random.default_rng([seed, 1]).permutation(len(stream)))
    unlimited = {m: replace(s, concurrency=1_000_000) for m, s in services.items()}
    runs: dict[str, list[Step]] = {}
    for name, (b, tau, serving, waits, scale) in {
        REFERENCE: (0.0, math.inf, unlimited, "exact", "flat"),
        "latency-blind": (0.0, math.inf, services, "exact", "flat"),
        AWARE: (beta, tau_s, services, "exact", "flat"),
        SCALED: (beta, tau_s, services, "exact", "service"),
        "latency-aware, observed waits": (beta, tau_s, services, "observed", "flat"),
    }.items():
        router = Router(
            "mixllm", embedder=embedder, seed=seed, beta=b, tau_s=tau, penalty_scale=scale
        ).fit(train)
        config = _config(
            lam, seed, "none", arrivals=Poisson(rate_per_s), services=serving, tau_s=tau_s,
            waits=waits,
        )  # fmt: skip
        runs[name] = run_stream(router, stream, config)
    return runs


def pool_runs(
    train: Dataset,
    stream: Dataset,
    *,
    seed: int,
    lam: float,
    embedder: Embedder,
    newcomer: str,
    at: int,
    feedback: str = "refined",
    alpha: float = 0.05,
) -> dict[str, list[Step]]:
    """``newcomer`` joins at query ``at`` with no data (a router that knew it from the start is
    the reference); and the LLM the router uses most leaves at query ``at``."""
    if newcomer not in train.llms:
        raise ConfigError(f"newcomer {newcomer!r}; known LLMs: {list(train.llms)}")
    others = [m for m in train.llms if m != newcomer]
    llm = train.llm(newcomer)
    runs: dict[str, list[Step]] = {}
    full = Router("mixllm", embedder=embedder, seed=seed, alpha=alpha).fit(train)
    runs[f"{newcomer} known from the start"] = run_stream(
        full, stream, _config(lam, seed, feedback)
    )
    late = Router("mixllm", embedder=embedder, seed=seed, alpha=alpha).fit(
        train.select_llms(others)
    )
    event = PoolEvent(at=at, add=LLM(llm.name, llm.price_in_per_mtok, llm.price_out_per_mtok))
    runs[f"{newcomer} joins at query {at}, no data"] = run_stream(
        late, stream, _config(lam, seed, feedback, events=(event,))
    )
    most_used = _most_used(runs[f"{newcomer} known from the start"][:at])
    leaving = Router("mixllm", embedder=embedder, seed=seed, alpha=alpha).fit(train)
    runs[f"{most_used} leaves at query {at}"] = run_stream(
        leaving, stream, _config(lam, seed, feedback, events=(PoolEvent(at=at, remove=most_used),))
    )
    return runs


def _most_used(steps: Sequence[Step]) -> str:
    names = [s.llm for s in steps]
    return max(sorted(set(names)), key=names.count)
