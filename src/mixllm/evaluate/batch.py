"""Replay a test split through a :class:`~mixllm.policy.batch.BatchPolicy`: fit it on the
training split, run it on the whole test split at each value of its knob, and keep what each
run chose and what that cost, in the same :class:`~mixllm.evaluate.replay.SweepResult` a
λ sweep gives (its ``lams`` then hold the knob's values).
"""

from __future__ import annotations

import time

import numpy as np

from mixllm._queries import query_batch
from mixllm.data.dataset import Dataset
from mixllm.embed import Embedder
from mixllm.errors import DataError
from mixllm.evaluate.replay import SweepResult
from mixllm.policy.batch import BatchPolicy, BatchRun
from mixllm.types import QueryBatch

__all__ = ["replay_batch"]


def _queries(ds: Dataset, embedder: Embedder) -> QueryBatch:
    prompts = [str(p) for p in ds.prompts]
    ids = [str(q) for q in ds.query_ids]
    return query_batch(embedder, prompts, ids, prompt_tokens=ds.prompt_tokens)


def _checked(run: BatchRun, test: Dataset, name: str, knob: float) -> BatchRun:
    """``run`` if it answers every test query with one of the test split's LLMs."""
    bad = (run.choice < 0) | (run.choice >= test.n_llms)
    if len(run.choice) != len(test) or bad.any():
        raise DataError(
            f"batch policy {name!r} at {knob!r}: {len(run.choice)} choices for {len(test)} "
            f"queries, {int(bad.sum())} outside the {test.n_llms} LLM columns; expected one "
            "valid column per test query"
        )
    return run


def replay_batch(
    policy: BatchPolicy, train: Dataset, test: Dataset, embedder: Embedder, *, n_knobs: int
) -> tuple[SweepResult, float]:
    """``policy`` fitted on ``train`` and run on ``test`` at ``n_knobs`` values of its knob;
    the sweep and the seconds the fit took (``route_s`` is the time of every run together).
    Its last run (the knob's value of highest quality) stands for λ = 0 in the report."""
    qtrain, qtest = _queries(train, embedder), _queries(test, embedder)
    start = time.perf_counter()
    policy.fit(train, qtrain)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    knobs = [float(k) for k in policy.knobs(test, qtest, n_knobs)]
    runs = [_checked(policy.run(test, qtest, k), test, policy.name, k) for k in knobs]
    route_s = time.perf_counter() - start
    sweep = SweepResult(
        router=policy.name,
        llms=test.llms,
        lams=np.asarray(knobs, dtype=np.float64),
        choice=np.stack([np.asarray(r.choice, dtype=np.int64) for r in runs]),
        quality=np.stack([np.asarray(r.quality, dtype=np.float64) for r in runs]),
        cost_usd=np.stack([np.asarray(r.cost_usd, dtype=np.float64) for r in runs]),
        route_s=route_s,
        lam0_row=len(knobs) - 1,
    )
    return sweep, fit_s
