"""The ``pacing`` scenario: a simulated day of traffic under a daily budget.

A MixLLM router is fitted on half of the data; the other half is replayed as one UTC day of
arrivals whose volume follows the hour of the day (:data:`HOURLY_VOLUME`: quiet at night,
busiest in the afternoon) and whose mix shifts (for :attr:`PacingDay.burst_hours` hours a
share of the arrivals are the burst task's queries, e.g. mbpp coding questions). Each query
is routed at the λ of a :class:`~mixllm.policy.pacing.Pacer`, holds its LLM's worst case
(the LLM's largest recorded cost) before its call and is charged its recorded cost after;
a query whose chosen LLM's worst case no longer fits goes to the best LLM whose worst case
does, or is refused when none does.

The day's budget is what a fixed λ (``--lam``) spends on the same day, so the comparison is
at equal spend: the fixed λ spends it as the traffic comes, the pacer spreads it evenly over
the hours. The pacer starts from λ = 1 (MixLLM's default), far from the λ that fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mixllm.clock import ManualClock
from mixllm.data import Dataset, split_random
from mixllm.errors import ConfigError
from mixllm.policy.pacing import Budget, Pacer
from mixllm.policy.scoring import choose_masked

if TYPE_CHECKING:
    from mixllm.simulate.run import SimSpec

__all__ = ["HOURLY_VOLUME", "PacingDay", "day_run", "pacing_job", "pacing_report"]

JSON = dict[str, Any]
FloatArray = NDArray[np.float64]
Progress = Callable[[str, int, int], None]

#: Relative arrivals per UTC hour, 0 to 23 (a working day's traffic: 6x more at 14h than 3h).
HOURLY_VOLUME = (
    0.3, 0.25, 0.2, 0.2, 0.25, 0.35, 0.5, 0.7, 0.9, 1.0, 1.1, 1.2,
    1.2, 1.3, 1.3, 1.2, 1.1, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4,
)  # fmt: skip
DAY_S = 86400.0


@dataclass(frozen=True)
class PacingDay:
    """One simulated day: ``queries`` arrivals (Poisson, by :data:`HOURLY_VOLUME`); from hour
    ``burst_start`` for ``burst_hours`` hours, ``burst_share`` of them are ``burst_task``'s;
    the budget is what a fixed ``lam`` spends; the pacer starts at ``start_lam``."""

    queries: int = 30_000
    lam: float = 100.0
    start_lam: float = 1.0
    burst_task: str = "mbpp"
    burst_start: int = 13
    burst_hours: int = 2
    burst_share: float = 0.6

    def __post_init__(self) -> None:
        if not (isinstance(self.queries, int) and self.queries >= 24):
            raise ConfigError(f"queries={self.queries!r}; expected an integer >= 24")
        for name in ("lam", "start_lam"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value!r}; expected a number > 0")
        if not (0 <= self.burst_start <= 23 and 0 <= self.burst_hours <= 24 - self.burst_start):
            raise ConfigError(
                f"burst_start={self.burst_start!r}, burst_hours={self.burst_hours!r}; "
                "expected a burst within the day's 24 hours"
            )
        if not 0 <= self.burst_share <= 1:
            raise ConfigError(f"burst_share={self.burst_share!r}; expected a share in [0, 1]")


@dataclass(frozen=True)
class _Stream:
    """A day's arrivals: times (s), rows into the replayed half, and each LLM's worst case."""

    times: FloatArray
    rows: NDArray[np.int64]
    base: FloatArray  # the router's score at λ = 0, per replayed query and LLM
    cost_pred: FloatArray  # its predicted cost
    cost: FloatArray  # the recorded cost
    quality: FloatArray  # the recorded quality (NaN: missing, counted as 0)
    worst: FloatArray  # per LLM: its largest recorded cost
    llms: tuple[str, ...]


def _arrivals(test: Dataset, day: PacingDay, seed: int) -> tuple[FloatArray, NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    volume = np.array(HOURLY_VOLUME)
    counts = rng.poisson(day.queries * volume / volume.sum())
    times = np.concatenate([h * 3600.0 + np.sort(rng.uniform(0, 3600, c)) for h, c in
                            enumerate(counts)])  # fmt: skip
    n = len(times)
    rows = rng.integers(0, len(test.prompts), n)
    tasks = None if test.tasks is None else np.asarray(test.tasks)
    if tasks is not None and day.burst_hours and day.burst_task in set(tasks.tolist()):
        pool = np.flatnonzero(tasks == day.burst_task)
        hour = times // 3600.0
        burst = (hour >= day.burst_start) & (hour < day.burst_start + day.burst_hours)
        pick = burst & (rng.random(n) < day.burst_share)
        rows[pick] = rng.choice(pool, int(pick.sum()))
    elif day.burst_hours:
        raise ConfigError(
            f"{test.name}: no queries of burst task {day.burst_task!r}; known tasks: "
            f"{sorted(set(tasks.tolist())) if tasks is not None else 'none'}"
        )
    return times, rows.astype(np.int64)


def _stream(router: Any, ds: Dataset, test: Dataset, day: PacingDay, seed: int) -> _Stream:
    from mixllm.policy import scores

    pred = router.predict([str(p) for p in test.prompts])
    times, rows = _arrivals(test, day, seed)
    cols = [test.llms.index(m) for m in pred.llms]
    cost = np.asarray(test.cost_usd, dtype=np.float64)[:, cols]
    quality = np.asarray(test.quality, dtype=np.float64)[:, cols]
    worst = np.nanmax(np.asarray(ds.cost_usd, dtype=np.float64)[:, [ds.llms.index(m) for m in
                                                                  pred.llms]], axis=0)  # fmt: skip
    return _Stream(
        times, rows, scores(pred, 0.0, alpha=router.alpha), np.asarray(pred.cost_usd),
        cost, np.nan_to_num(quality), worst, tuple(pred.llms),
    )  # fmt: skip


def _choose(s: _Stream, i: int, lam: float, allowed: NDArray[np.bool_] | None) -> int:
    row = s.rows[i]
    score = (s.base[row] - lam * s.cost_pred[row])[None, :]
    mask = None if allowed is None else allowed[None, :]
    return int(choose_masked(score, s.cost_pred[row][None, :], s.llms, mask)[0])


def day_run(s: _Stream, *, budget: Budget | None, lam: float) -> JSON:
    """Route the day at a fixed ``lam`` (``budget=None``) or paced from ``lam`` under
    ``budget``; per hour: arrivals, refusals, spend, quality, mean λ; and λ every 10 min."""
    clock = ManualClock()
    pacer = None if budget is None else Pacer(budget, lam=lam, clock=clock)
    hours = [{"n": 0, "refused": 0, "spend": 0.0, "quality": 0.0, "lam": 0.0} for _ in range(24)]
    lam_trace: list[tuple[float, float]] = []
    next_mark = 0.0
    for i, t in enumerate(s.times.tolist()):
        clock.advance(max(t - clock.now(), 0.0))
        h = hours[min(int(t // 3600), 23)]
        now_lam = lam if pacer is None else pacer.lam
        while t >= next_mark:
            lam_trace.append((next_mark, now_lam))
            next_mark += 600.0
        h["n"] += 1
        h["lam"] += now_lam
        j = _choose(s, i, now_lam, None)
        if pacer is not None:
            hold = pacer.reserve(float(s.worst[j]))
            if hold is None:  # the best LLM whose worst case still fits, if any
                fits = s.worst <= pacer.remaining
                if not fits.any():
                    h["refused"] += 1
                    continue
                j = _choose(s, i, now_lam, fits)
                hold = pacer.reserve(float(s.worst[j]))
                assert hold is not None  # it fit a moment ago (one thread)
            pacer.settle(hold, float(s.cost[s.rows[i], j]))
        h["spend"] += float(s.cost[s.rows[i], j])
        h["quality"] += float(s.quality[s.rows[i], j])
    for h in hours:
        served = h["n"] - h["refused"]
        h["quality"] = h["quality"] / served if served else 0.0
        h["lam"] = h["lam"] / h["n"] if h["n"] else 0.0
    total = sum(h["spend"] for h in hours)
    answered = sum(h["n"] - h["refused"] for h in hours)
    quality = sum(h["quality"] * (h["n"] - h["refused"]) for h in hours) / max(answered, 1)
    return {"hours": hours, "spend": total, "quality": quality, "lam_trace": lam_trace,
            "refused": sum(h["refused"] for h in hours)}  # fmt: skip


def _seed_run(router: Any, ds: Dataset, test: Dataset, day: PacingDay, seed: int) -> JSON:
    s = _stream(router, ds, test, day, seed)
    fixed = day_run(s, budget=None, lam=day.lam)
    budget = Budget(usd=fixed["spend"], period="day")
    paced = day_run(s, budget=budget, lam=day.start_lam)
    even = budget.usd / 24
    dev = [abs(h["spend"] - even) / even for h in paced["hours"]]
    fixed_dev = [abs(h["spend"] - even) / even for h in fixed["hours"]]
    return {
        "seed": seed, "budget_usd": budget.usd, "queries": len(s.times), "fixed": fixed,
        "paced": paced, "max_dev_after_first_hour": max(dev[1:]), "first_hour_dev": dev[0],
        "fixed_max_dev": max(fixed_dev), "over_budget_usd": max(paced["spend"] - budget.usd, 0.0),
        "mbpp_share_in_burst": _task_share(test, s, day),
    }  # fmt: skip


def _task_share(test: Dataset, s: _Stream, day: PacingDay) -> float:
    if test.tasks is None:
        return 0.0
    hour = s.times // 3600.0
    burst = (hour >= day.burst_start) & (hour < day.burst_start + day.burst_hours)
    tasks = np.asarray(test.tasks)[s.rows[burst]]
    return float(np.mean(tasks == day.burst_task)) if len(tasks) else 0.0


def pacing_report(
    ds: Dataset,
    out: Path,
    *,
    seeds: Sequence[int],
    embedder: str,
    day: PacingDay,
    progress: Progress,
) -> tuple[list[str], JSON, list[Path]]:
    """Fit a router on the first seed's half, replay a day per seed; the report's lines, its
    JSON data and the plot's path."""
    from mixllm.router import Router

    tasks = set() if ds.tasks is None else set(np.asarray(ds.tasks).tolist())
    if day.burst_hours and day.burst_task not in tasks:
        raise ConfigError(
            f"{ds.name}: no queries of burst task {day.burst_task!r}; known tasks: "
            f"{sorted(tasks) or 'none'}"
        )
    train, test = split_random(ds, seed=seeds[0])
    progress("fitting the router", 0, len(seeds) + 1)
    router = Router("mixllm", embedder=embedder, seed=seeds[0]).fit(train)
    runs = []
    for k, seed in enumerate(seeds):
        progress(f"day of seed {seed}", k + 1, len(seeds) + 1)
        runs.append(_seed_run(router, ds, test, day, seed))
    plot = _plot(runs[0], out / "pacing.png")
    return _lines(runs, day), {"day": _day_json(day), "runs": _rounded(runs)}, [plot]


def pacing_job(
    ds: Dataset, spec: SimSpec, out: Path, progress: Progress
) -> tuple[list[str], JSON, list[Path]]:
    """``mixllm simulate pacing``: :func:`pacing_report` with ``spec``'s seeds, embedder and
    λ (the fixed λ whose day's spend is the budget)."""
    day = PacingDay(lam=spec.lam)
    return pacing_report(
        ds, out, seeds=spec.seeds, embedder=spec.embedder, day=day, progress=progress
    )


def _day_json(day: PacingDay) -> JSON:
    return {k: getattr(day, k) for k in PacingDay.__dataclass_fields__}


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _lines(runs: Sequence[JSON], day: PacingDay) -> list[str]:
    worst = max(r["max_dev_after_first_hour"] for r in runs)
    lines = [
        "# Budget pacing over a simulated day",
        "",
        f"{day.queries} queries a day on average, volume by hour of the day, a burst of "
        f"{day.burst_task} queries ({day.burst_share:.0%} of arrivals) from {day.burst_start}h "
        f"for {day.burst_hours} h. The day's budget is what fixed λ = {day.lam:g} spends on the "
        f"same arrivals; the pacer starts from λ = {day.start_lam:g}.",
        "",
        "| seed | budget (USD) | paced spend | refused | worst hour after the first (dev.) "
        "| first hour | fixed λ: worst hour | quality paced | quality fixed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(
            f"| {r['seed']} | {r['budget_usd']:.4f} | {r['paced']['spend']:.4f} | "
            f"{r['paced']['refused']} | {r['max_dev_after_first_hour']:.1%} | "
            f"{r['first_hour_dev']:.1%} | {r['fixed_max_dev']:.1%} | "
            f"{r['paced']['quality']:.4f} | {r['fixed']['quality']:.4f} |"
        )
    over = max(r["over_budget_usd"] for r in runs)
    lines += [
        "",
        f"Worst hourly deviation from budget/24 after the first hour, over seeds: {worst:.1%}; "
        f"day's spend over its budget: ${over:.6f} at most.",
        "",
        "![hourly spend and λ](pacing.png)",
    ]
    return lines


def _plot(run: JSON, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=80, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    hours = np.arange(24) + 0.5
    even = run["budget_usd"] / 24
    top.bar(hours - 0.2, [h["spend"] for h in run["paced"]["hours"]], 0.4, label="paced")
    top.bar(hours + 0.2, [h["spend"] for h in run["fixed"]["hours"]], 0.4, label="fixed λ",
            color="0.7")  # fmt: skip
    top.axhline(even, color="k", lw=1, ls="--", label="budget / 24")
    top.set_ylabel("spend per hour (USD)", fontsize=8)
    top.legend(fontsize=7, frameon=False)
    trace = run["paced"]["lam_trace"]
    bottom.plot([t / 3600 for t, _ in trace], [v for _, v in trace], lw=1.2)
    bottom.set_yscale("log")
    bottom.set_ylabel("paced λ", fontsize=8)
    bottom.set_xlabel("hour of the day (UTC)")
    for ax in (top, bottom):
        ax.grid(True, color="0.88", lw=0.6)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path
