"""Evaluate routers on a test split: fit each on the training split, replay the test split through
it, and compute every metric of ``docs/metrics.md`` with 95% bootstrap intervals.

The yardstick of a report: the **reference LLM** is the highest-quality single LLM on the
*training* split (unless given; quality with missing as 0, ties to the cheaper); the **cheapest
LLM** has the lowest mean recorded cost on the test split. Their mean quality and cost on the
*test* split set the AIQ range, the 100% marks and APGR's weak and strong ends, fixed for every
router and every bootstrap resample (see :mod:`mixllm.evaluate.bootstrap`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.embed import DEFAULT_EMBEDDER, Embedder, make_embedder
from mixllm.errors import ConfigError, DataError
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.evaluate.batch import replay_batch
from mixllm.evaluate.bootstrap import Estimate, bootstrap_frontier, interval, resample_counts
from mixllm.evaluate.degenerate import aiq_warning, best_single_llm
from mixllm.evaluate.metrics import (
    BUDGETS_PCT,
    FrontierMetrics,
    Yardstick,
    frontier_metrics,
    upper_hull,
)
from mixllm.evaluate.replay import SweepResult, filled_costs, replay, sweep_lams
from mixllm.evaluate.results import Report, ReportContext, RouterResult, SweepPoint
from mixllm.evaluate.task_average import TaskAverage
from mixllm.policy import OraclePredictor, Predictor
from mixllm.policy.batch import BatchPolicy, LacksDataError
from mixllm.policy.batch_registry import is_batch_policy, make_batch_policy
from mixllm.router import Router
from mixllm.types import resolve_llm

__all__ = [
    "DEFAULT_ROUTERS",
    "ProgressCallback",
    "Report",
    "cheapest_llm",
    "default_reference",
    "evaluate",
    "summarise",
]

#: Routers of a default report (single LLMs are always added; ``mf`` only on two-LLM sets):
#: the baselines, MixLLM, then the routers of related papers (docs/paper.md, *Other routers*);
#: those that read answers are left out, with a note, where the data has none.
DEFAULT_ROUTERS = (
    "random", "cheapest", "oracle", "knn", "logistic", "mlp", "mf", "mixllm",
    "metallm", "llm-bandit", "pickllm", "pickllm-la", "optllm",
    "cascade", "cascade-vote", "cascade-router", "small-uncertainty",
)  # fmt: skip

_BASELINES = ("random", "cheapest")


class ProgressCallback(Protocol):
    """Told before each step: what runs now, how many steps are done, how many there are."""

    def __call__(self, what: str, done: int, total: int, /) -> None: ...


@dataclass(frozen=True)
class _Spec:
    name: str
    kind: str
    candidates: tuple[str, ...] | None = None
    predictor: Predictor | None = None
    batch: BatchPolicy | None = None


def default_reference(train: Dataset) -> str:
    """The highest-quality single LLM on ``train`` (missing as 0; ties: cheaper, then name)."""
    quality = np.nan_to_num(train.quality, nan=0.0).mean(axis=0)
    known = np.isfinite(train.cost_usd)
    total = np.where(known, train.cost_usd, 0.0).sum(axis=0)
    cost = np.where(known.any(axis=0), total / np.maximum(known.sum(axis=0), 1), np.inf)
    order = sorted(range(train.n_llms), key=lambda j: (-quality[j], cost[j], train.llms[j]))
    return train.llms[order[0]]


def cheapest_llm(test: Dataset) -> str:
    """The LLM with the lowest mean recorded cost on ``test`` (ties to the name)."""
    cost = filled_costs(test).mean(axis=0)
    return test.llms[min(range(test.n_llms), key=lambda j: (cost[j], test.llms[j]))]


def _yardstick(test: Dataset, cheapest: str, reference: str) -> Yardstick:
    quality = np.nan_to_num(test.quality, nan=0.0).mean(axis=0)
    cost = filled_costs(test).mean(axis=0)
    lo, hi = test.llm_index(cheapest), test.llm_index(reference)
    return Yardstick(float(quality[lo]), float(cost[lo]), float(quality[hi]), float(cost[hi]))


def _kind(name: str) -> str:
    if name.startswith("single:"):
        return "single"
    return "oracle" if name == "oracle" else "baseline" if name in _BASELINES else "router"


def _plan(
    routers: Sequence[str | Predictor | BatchPolicy], llms: Sequence[str], seed: int
) -> tuple[list[_Spec], list[str]]:
    specs: dict[str, _Spec] = {}
    notes: list[str] = []
    for r in [*routers, *(f"single:{m}" for m in llms)]:
        name = r if isinstance(r, str) else r.name
        if name in specs:
            if not isinstance(r, str):
                raise ConfigError(f"two routers are named {name!r}; give each a distinct name")
            continue
        if isinstance(r, BatchPolicy) or (isinstance(r, str) and is_batch_policy(r)):
            batch = r if isinstance(r, BatchPolicy) else make_batch_policy(name, seed=seed)
            specs[name] = _Spec(name, "router", batch=batch)
            continue
        if name == "mf" and len(llms) != 2:
            notes.append(
                f"mf skipped: it needs exactly 2 LLMs and the training split has {len(llms)}"
            )
            continue
        single = (name.removeprefix("single:"),) if name.startswith("single:") else None
        specs[name] = _Spec(name, _kind(name), single, None if isinstance(r, str) else r)
    return list(specs.values()), notes


def _sweep(
    spec: _Spec,
    train: Dataset,
    test: Dataset,
    embedder: Embedder,
    *,
    seed: int,
    n_lams: int,
    alpha: float = 0.0,
) -> tuple[SweepResult, float]:
    if spec.batch is not None:
        return replay_batch(spec.batch, train, test, embedder, n_knobs=n_lams)
    predictor: Predictor | str = spec.predictor or spec.name
    if spec.predictor is None and spec.kind == "oracle":
        predictor = OraclePredictor(outcomes=test)
    router = Router(predictor, embedder=embedder, alpha=alpha, seed=seed)
    start = time.perf_counter()
    router.fit(train)
    fit_s = time.perf_counter() - start
    lams = [0.0] if spec.candidates else sweep_lams(router, test, n_lams)
    return replay(router, test, lams=lams, candidates=spec.candidates, name=spec.name), fit_s


def _estimate(value: float | None, boots: Sequence[float | None]) -> Estimate:
    low, high = interval(boots)
    return Estimate(value, low, high)


def _budget_estimates(
    point: FrontierMetrics, boots: Sequence[FrontierMetrics]
) -> tuple[Estimate, ...]:
    return tuple(
        _estimate(v, [b.quality_at_budget_pct[k] for b in boots])
        for k, v in enumerate(point.quality_at_budget_pct)
    )


def summarise(
    sweep: SweepResult,
    *,
    kind: str,
    yard: Yardstick,
    counts: NDArray[np.float64],
    strong: int | None = None,
    budgets_pct: Sequence[float] = BUDGETS_PCT,
    fit_s: float = 0.0,
    best_quality: NDArray[np.float64] | None = None,
    task_average: TaskAverage | None = None,
) -> RouterResult:
    """A router's report row from its sweep: metrics, intervals over ``counts``, frontier.

    ``strong`` (column of the strong LLM) selects the two-LLM APGR over shares of calls;
    ``best_quality`` (the best single LLM's quality per test query) gives the gain at λ = 0;
    ``task_average`` (the test split's tasks) adds the task-averaged quality at λ = 0.
    """
    runs = sweep.runs()
    costs, quals = [r.cost_usd for r in runs], [r.quality for r in runs]
    shares = sweep.shares()
    point = frontier_metrics(
        costs,
        quals,
        yard,
        strong_shares=None if strong is None else shares[:, strong],
        budgets_pct=budgets_pct,
    )
    boots = bootstrap_frontier(
        sweep.quality,
        sweep.cost_usd,
        yard,
        counts,
        strong_chosen=None if strong is None else sweep.choice == strong,
        budgets_pct=budgets_pct,
    )
    hull = upper_hull(costs, quals)
    points = tuple(
        SweepPoint(
            float(lam), r.quality, r.cost_usd, r.n_missing, dict(zip(sweep.llms, s.tolist()))
        )
        for lam, r, s in zip(sweep.lams.tolist(), runs, shares)
    )
    return RouterResult(
        name=sweep.router,
        kind=kind,
        aiq=_estimate(point.aiq, [b.aiq for b in boots]),
        quality_at_budget_pct=_budget_estimates(point, boots),
        cost_to_match_pct=point.cost_to_match_pct,
        apgr=_estimate(point.apgr, [b.apgr for b in boots]),
        max_quality=max(quals),
        min_cost_usd=min(costs),
        points=points,
        frontier=tuple(zip(hull.costs.tolist(), hull.qualities.tolist())),
        **_at_lam0(sweep, counts, best_quality, task_average),
        fit_s=fit_s,
        route_s_per_query=sweep.route_s_per_query,
    )


def _at_lam0(
    sweep: SweepResult,
    counts: NDArray[np.float64],
    best: NDArray[np.float64] | None,
    by_task: TaskAverage | None = None,
) -> dict[str, Estimate]:
    """Quality at λ = 0 and its gain over the best single LLM, with paired intervals; with
    ``by_task``, the same averaged over tasks (gain over the best LLM by that average)."""
    row = int(np.argmin(sweep.lams)) if sweep.lam0_row is None else sweep.lam0_row
    q0 = np.nan_to_num(sweep.quality[row], nan=0.0)
    n = len(q0)
    out = {"quality_at_lam0": _estimate(float(q0.mean()), (counts @ q0 / n).tolist())}
    if best is not None:
        gain = q0 - np.nan_to_num(best, nan=0.0)
        out["gain_over_best_single"] = _estimate(float(gain.mean()), (counts @ gain / n).tolist())
    if by_task is not None:
        out["task_quality_at_lam0"] = _estimate(by_task.mean(q0), by_task.resampled(counts, q0))
        gap = q0 - by_task.best_quality
        out["task_gain_over_best_single"] = _estimate(
            by_task.mean(gap), by_task.resampled(counts, gap)
        )
    return out


def _silent(what: str, done: int, total: int, /) -> None:
    """A progress callback that says nothing."""


def _warm(
    emb: MemoEmbedder, train: Dataset, test: Dataset, tell: ProgressCallback, *, chunk: int = 256
) -> float:
    """Embed every prompt once (so fit and route timings leave embedding out); seconds taken.

    Goes in chunks so a slow embedder (MiniLM on a CPU) shows progress as ``("embed", done,
    total)`` with ``done`` counted in prompts.
    """
    texts = [str(p) for p in (*train.prompts, *test.prompts)]
    start = time.perf_counter()
    for i in range(0, len(texts), chunk):
        tell("embed", i, len(texts))
        emb.embed(texts[i : i + chunk])
    tell("embed", len(texts), len(texts))
    return time.perf_counter() - start


def _check_args(train: Dataset, test: Dataset, reference: str | None, n_lams: int) -> str | None:
    """Refuse bad arguments before any slow work; the reference's full name."""
    if n_lams < 1:
        raise ConfigError(f"n_lams={n_lams!r}; expected at least 1 value of λ per sweep")
    if set(train.llms) != set(test.llms):
        raise DataError(
            f"train and test have different LLMs: {sorted(train.llms)} vs {sorted(test.llms)}"
        )
    return None if reference is None else resolve_llm(reference, train.llms, what="reference LLM")


def evaluate(
    train: Dataset,
    test: Dataset,
    *,
    routers: Sequence[str | Predictor | BatchPolicy] = DEFAULT_ROUTERS,
    embedder: str | Embedder = DEFAULT_EMBEDDER,
    reference: str | None = None,
    n_lams: int = 30,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.0,
    progress: ProgressCallback | None = None,
    notes: Sequence[str] = (),
) -> Report:
    """Fit each router on ``train``, replay ``test`` through it and measure it.

    Parameters
    ----------
    routers:
        Registered predictor names (``oracle`` is built on ``test``), predictor objects (named
        by their ``name``), or batch policies (:mod:`mixllm.policy.batch`, by registered name
        or object: their knob is swept instead of λ, and one that needs what the data lacks,
        such as recorded answers, is skipped with a note); every single LLM is added as
        ``single:<llm>``. ``mf`` is skipped,
        with a note, unless there are exactly 2 LLMs.
    embedder:
        One embedder shared by all routers, behind an in-memory memo for this run, so each
        text is embedded once.
    reference:
        The reference LLM; default :func:`default_reference` of ``train``.
    n_lams, n_boot, seed:
        λ values per sweep, bootstrap resamples (≥ 200) and the seed of routers and resamples.
    alpha:
        Weight of the uncertainty bonus in every router's score (MixLLM §3.3); only predictors
        that report an uncertainty (``mixllm``) are affected.
    notes:
        Said first among the report's notes (how the data was priced, ...).
    progress:
        Called as ``progress(what, done, total)``: ``("embed", prompts done, prompts)`` while
        embedding, then ``(router name, routers done, routers)`` before each router and
        ``("done", routers, routers)`` at the end.

    Timings: embedding every prompt is timed once (``ReportContext.embed_s_per_query``); a
    router's ``fit_s`` and ``route_s_per_query`` leave it out, so routers compare fairly.
    """
    reference = _check_args(train, test, reference, n_lams)
    counts = resample_counts(len(test), n_boot, seed)
    emb = MemoEmbedder(make_embedder(embedder) if isinstance(embedder, str) else embedder)
    ref = reference or default_reference(train)
    cheap = cheapest_llm(test)
    yard = _yardstick(test, cheap, ref)
    strong = test.llm_index(ref) if test.n_llms == 2 and ref != cheap else None
    best = best_single_llm(test)
    best_q = np.nan_to_num(test.quality[:, test.llm_index(best)], nan=0.0)
    by_task = TaskAverage.of(test)
    warning = aiq_warning(
        test.llms,
        filled_costs(test).mean(axis=0).tolist(),
        cheapest=cheap,
        reference=ref,
        best=best,
    )
    specs, plan_notes = _plan(routers, train.llms, seed)
    tell = progress or _silent
    embed_s = _warm(emb, train, test, tell)
    rows = []
    for i, spec in enumerate(specs):
        tell(spec.name, i, len(specs))
        try:
            sweep, fit_s = _sweep(spec, train, test, emb, seed=seed, n_lams=n_lams, alpha=alpha)
        except LacksDataError as err:  # a batch policy that needs what the data lacks
            plan_notes.append(f"{spec.name} skipped: {err}")
            continue
        rows.append(
            summarise(
                sweep,
                kind=spec.kind,
                yard=yard,
                counts=counts,
                strong=strong,
                fit_s=fit_s,
                best_quality=best_q,
                task_average=by_task,
            )
        )
    tell("done", len(specs), len(specs))
    context = ReportContext(
        dataset=test.name,
        n_train=len(train),
        n_test=len(test),
        llms=test.llms,
        reference=ref,
        reference_quality=yard.reference_quality,
        reference_cost_usd=yard.reference_cost_usd,
        cheapest=cheap,
        cheapest_quality=yard.cheapest_quality,
        cheapest_cost_usd=yard.cheapest_cost_usd,
        seed=seed,
        embedder=emb.name,
        n_boot=n_boot,
        n_lams=n_lams,
        budgets_pct=BUDGETS_PCT,
        apgr_axis="cost" if strong is None else "share",
        notes=(*notes, *plan_notes),
        best_single=best,
        best_single_quality=float(best_q.mean()),
        warnings=() if warning is None else (warning,),
        embed_s_per_query=embed_s / (len(train) + len(test)),
        tasks=() if by_task is None else by_task.tasks,
        task_best_single="" if by_task is None else by_task.best,
        task_best_single_quality=0.0 if by_task is None else by_task.mean(by_task.best_quality),
    )
    return Report(context=context, rows=tuple(rows))
