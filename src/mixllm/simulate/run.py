"""Whole simulation jobs behind ``mixllm simulate``: run a scenario over seeds, aggregate, write
``report.md``, ``report.json`` and plots. The same inputs give the same files, byte for byte.

Scenarios (see :mod:`mixllm.simulate.experiments`):

* ``ood``: for each task, train without it and stream half of it; MixLLM offline, with refined
  and with binary feedback, the bandit baselines, and the no-shift reference.
* ``latency``: a stream fast enough to queue the popular LLMs, routed with and without the
  latency penalty, in random order and in the data's (task by task) order.
* ``pool``: an LLM joins mid-stream without data; the most-used LLM leaves mid-stream.
* ``pacing``: a simulated day under a daily budget, λ moved by the pacer
  (:mod:`mixllm.simulate.pacing`).

Quality lost to the shift is measured in the router's own currency, the utility
``quality − λ·cost`` per query (the regret against the per-query oracle): the share of the
offline router's extra regret that online learning removes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixllm.data import Dataset, split_random
from mixllm.embed import DEFAULT_EMBEDDER, make_embedder
from mixllm.errors import ConfigError
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.simulate.experiments import (
    ONLINE_ROUTERS,
    REFERENCE,
    STREAM_ORDERS,
    latency_runs,
    ood_runs,
    pool_runs,
)
from mixllm.simulate.pacing import pacing_job
from mixllm.simulate.queues import Service
from mixllm.simulate.report import plot_stream, run_summary, window_stats, write_json
from mixllm.simulate.stream import Step

__all__ = ["SCENARIOS", "SimSpec", "run_simulation"]

SCENARIOS = ("ood", "latency", "pool", "pacing")
Progress = Callable[[str, int, int], None]
JSON = dict[str, Any]
NO_SHIFT = "no shift (trained on the task)"
OFFLINE = "mixllm offline"


@dataclass(frozen=True)
class SimSpec:
    """What to simulate. ``alpha`` is MixLLM's exploration weight when it learns online."""

    scenario: str = "ood"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    lam: float = 100.0
    alpha: float = 0.3
    embedder: str = DEFAULT_EMBEDDER
    window: int = 50
    rate_per_s: float = 12.0
    tau_s: float = 5.0
    beta: float = 0.1
    newcomer: str | None = None
    join_at: int = 100
    tasks: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ConfigError(f"scenario {self.scenario!r}; expected one of {list(SCENARIOS)}")
        if not self.seeds:
            raise ConfigError("no seeds; expected at least one, e.g. 0,1,2,3,4")
        if not (self.lam >= 0 and math.isfinite(self.lam)):
            raise ConfigError(f"lam={self.lam!r}; expected a finite number >= 0")
        if self.window < 1:
            raise ConfigError(f"window={self.window!r}; expected at least 1 query")


def _mean_ci(values: Sequence[float]) -> JSON:
    """Mean with a 95% t-interval over seeds (no interval from one value)."""
    v = np.asarray(values, dtype=np.float64)
    out: JSON = {"mean": round(float(v.mean()), 6), "n": len(v)}
    if len(v) > 1:
        from scipy.stats import t  # type: ignore[import-untyped]

        half = float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
        out |= {"low": round(float(v.mean()) - half, 6), "high": round(float(v.mean()) + half, 6)}
    return out


def _fmt(ci: JSON, digits: int = 3, scale: float = 1.0) -> str:
    def num(x: float) -> str:
        text = f"{x * scale:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"

    m = num(ci["mean"])
    return f"{m} [{num(ci['low'])}, {num(ci['high'])}]" if "low" in ci else m


def _recovery(runs: Mapping[str, Sequence[Step]], name: str) -> float:
    """Share of the offline router's extra regret (over the no-shift router) that ``name``
    removes: 1 = as if there were no shift, 0 = no better than offline."""
    regret = {k: float(np.mean([s.regret for s in v])) for k, v in runs.items()}
    lost = regret[OFFLINE] - regret[NO_SHIFT]
    return (regret[OFFLINE] - regret[name]) / lost if lost > 1e-12 else math.nan


def _ood(
    ds: Dataset, spec: SimSpec, out: Path, progress: Progress
) -> tuple[list[str], JSON, list[Path]]:
    embedder = MemoEmbedder(make_embedder(spec.embedder))
    tasks = spec.tasks or ds.task_names
    names = [NO_SHIFT, *ONLINE_ROUTERS]
    per: dict[str, dict[str, dict[str, list[float]]]] = {}
    plots: list[Path] = []
    total, done = len(tasks) * len(spec.seeds), 0
    for task in tasks:
        per[task] = {
            n: {"quality": [], "cost_usd": [], "regret": [], "recovery": []} for n in names
        }
        for seed in spec.seeds:
            progress(f"ood: stream {task}, seed {seed}", done, total)
            runs = ood_runs(ds, task, seed=seed, lam=spec.lam, embedder=embedder, alpha=spec.alpha)
            for name, steps in runs.items():
                s = run_summary(steps)
                cell = per[task][name]
                cell["quality"].append(s["quality"])
                cell["cost_usd"].append(s["cost_usd"])
                cell["regret"].append(s["regret_per_query"])
                cell["recovery"].append(_recovery(runs, name))
            if seed == spec.seeds[0]:
                windows = {n: window_stats(v, spec.window) for n, v in runs.items()}
                path = out / f"ood-{_slug(task)}.png"
                plots.append(plot_stream(windows, path, title=f"stream of {task} (seed {seed})"))
            done += 1
    progress("ood: done", total, total)
    data: JSON = {"tasks": {}, "lam": spec.lam, "alpha": spec.alpha, "seeds": list(spec.seeds)}
    lines = [
        f"# Out of distribution: train without a task, stream it (λ = {spec.lam:g})",
        "",
        f"Seeds {list(spec.seeds)}; mean [95% t-interval over seeds]. Regret: the per-query "
        "oracle's quality − λ·cost minus the router's. Recovered: the share of the offline "
        "router's extra regret (over a router that also trained on the task) removed.",
        "",
    ]
    for task in tasks:
        data["tasks"][task] = {}
        lines += [f"## {task}", "", "| router | quality | cost (mUSD/query) | regret | recovered |"]
        lines += ["| --- | --- | --- | --- | --- |"]
        for name in names:
            row: JSON = {k: _mean_ci(v) for k, v in per[task][name].items() if k != "recovery"}
            rec = [r for r in per[task][name]["recovery"] if np.isfinite(r)]
            row["recovery"] = _mean_ci(rec) if rec else {"mean": None}
            data["tasks"][task][name] = row
            shown = "" if name in (NO_SHIFT, OFFLINE) or not rec else _fmt(row["recovery"], 2)
            lines.append(
                f"| {name} | {_fmt(row['quality'])} | {_fmt(row['cost_usd'], 3, 1e3)} "
                f"| {_fmt(row['regret'])} | {shown} |"
            )
        lines.append("")
    lines += ["## All tasks", "", "| router | recovered (mean over tasks and seeds) |"]
    lines += ["| --- | --- |"]
    data["overall"] = {}
    for name in names[2:]:
        rec = [r for t in tasks for r in per[t][name]["recovery"] if np.isfinite(r)]
        data["overall"][name] = _mean_ci(rec) if rec else {"mean": None}
        lines.append(f"| {name} | {_fmt(data['overall'][name], 2) if rec else 'n/a'} |")
    return lines, data, plots


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def default_services(llms: Sequence[str], prices: Mapping[str, float]) -> dict[str, Service]:
    """A plausible serving model when the data has none: 4 parallel slots per LLM and a
    decoding speed that falls with price (the dearest LLMs are the largest), 20-80 tokens/s."""
    p = np.array([prices[m] for m in llms], dtype=np.float64)
    rank = np.argsort(np.argsort(p)) / max(len(llms) - 1, 1)
    return {
        m: Service(ttft_s=0.5, tokens_per_s=float(80.0 - 60.0 * r), concurrency=4)
        for m, r in zip(llms, rank.tolist())
    }


def _latency(
    ds: Dataset, spec: SimSpec, out: Path, progress: Progress
) -> tuple[list[str], JSON, list[Path]]:
    embedder = MemoEmbedder(make_embedder(spec.embedder))
    prices = {m: ds.llm(m).price_out_per_mtok + ds.llm(m).price_in_per_mtok for m in ds.llms}
    services = default_services(ds.llms, prices)
    keys = ("quality", "cost_usd", "timeout_share", "mean_wait_s", "loss_points")
    per: dict[str, dict[str, dict[str, list[float]]]] = {}
    plots: list[Path] = []
    steps_total = len(spec.seeds) * len(STREAM_ORDERS)
    for o, order in enumerate(STREAM_ORDERS):
        for k, seed in enumerate(spec.seeds):
            progress(f"latency ({order}): seed {seed}", o * len(spec.seeds) + k, steps_total)
            train, test = split_random(ds, seed=seed)
            runs = latency_runs(
                train, test, seed=seed, lam=spec.lam, embedder=embedder,
                rate_per_s=spec.rate_per_s, services=services, tau_s=spec.tau_s,
                beta=spec.beta, order=order,
            )  # fmt: skip
            reference = run_summary(runs[REFERENCE])["quality"]
            for name, steps in runs.items():
                summary = {**run_summary(steps)}
                summary["loss_points"] = round(100.0 * (reference - summary["quality"]), 4)
                row = per.setdefault(order, {}).setdefault(name, {key: [] for key in keys})
                for key in keys:
                    row[key].append(summary[key])
            if k == 0:
                windows = {n: window_stats(v, spec.window) for n, v in runs.items()}
                name = "latency.png" if order == "mixed" else f"latency-{_slug(order)}.png"
                title = f"latency penalty, queries {order}"
                plots.append(plot_stream(windows, out / name, title=title))
    progress("latency: done", steps_total, steps_total)
    data: JSON = {
        "rate_per_s": spec.rate_per_s, "tau_s": spec.tau_s, "beta": spec.beta, "lam": spec.lam,
        "seeds": list(spec.seeds),
        "services": {m: vars(s) for m, s in services.items()},
        "orders": {
            order: {n: {k: _mean_ci(v) for k, v in r.items()} for n, r in routers.items()}
            for order, routers in per.items()
        },
    }  # fmt: skip
    lines = [
        f"# Latency: Poisson arrivals at {spec.rate_per_s:g}/s, τ = {spec.tau_s:g} s, "
        f"β = {spec.beta:g}, λ = {spec.lam:g}",
        "",
        "Each LLM serves 4 requests at a time at 20-80 tokens/s (slower when dearer); a query "
        "that would wait past τ fails (quality 0). The reference is the same router when "
        "nothing queues (unlimited slots); *loss* is its quality minus the router's, in "
        "points, paired by seed. *Latency-aware*: the paper's penalty β·(e^{w/τ} − 1), the "
        "same for every query; *scaled by service time*: each query's penalty times how long "
        "its predicted answer would hold the LLM's slot relative to the LLM's average request. "
        "*Observed waits*: the router's load tracker hears only what a gateway sees "
        "(requests started and finished, their latencies and lengths) and estimates the "
        f"waits. Mean [95% t-interval over seeds {list(spec.seeds)}].",
    ]
    for order, routers in data["orders"].items():
        how = (
            "queries in random order (every task at once)"
            if order == "mixed"
            else "queries in the data's order (one task after another)"
        )
        lines += [
            "",
            f"## {how}",
            "",
            "| router | quality | loss (points) | cost (mUSD/query) | share past τ | "
            "mean wait (s) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for n, r in routers.items():
            lines.append(
                f"| {n} | {_fmt(r['quality'])} | {_fmt(r['loss_points'], 1)} "
                f"| {_fmt(r['cost_usd'], 3, 1e3)} | {_fmt(r['timeout_share'])} "
                f"| {_fmt(r['mean_wait_s'], 2)} |"
            )
    return lines, data, plots


def _pool(
    ds: Dataset, spec: SimSpec, out: Path, progress: Progress
) -> tuple[list[str], JSON, list[Path]]:
    embedder = MemoEmbedder(make_embedder(spec.embedder))
    newcomer = spec.newcomer or _busiest(ds, spec, embedder)
    per: dict[str, dict[str, list[float]]] = {}
    shares: dict[str, list[list[float]]] = {}
    ends: list[int] = []
    plots: list[Path] = []
    for k, seed in enumerate(spec.seeds):
        progress(f"pool: seed {seed}", k, len(spec.seeds))
        train, test = split_random(ds, seed=seed)
        runs = pool_runs(
            train, test, seed=seed, lam=spec.lam, embedder=embedder, newcomer=newcomer,
            at=spec.join_at, alpha=spec.alpha,
        )  # fmt: skip
        for i, steps in enumerate(runs.values()):
            key = ("reference", "joins", "leaves")[i]
            s = run_summary(steps)
            cell = per.setdefault(key, {"quality": [], "cost_usd": [], "regret_per_query": []})
            for m in cell:
                cell[m].append(s[m])
            w = window_stats(steps, spec.window)
            shares.setdefault(key, []).append([x["calls"].get(newcomer, 0) / x["n"] for x in w])
            ends = [x["end"] for x in w]
        if k == 0:
            windows = {n: window_stats(v, spec.window) for n, v in runs.items()}
            plots.append(
                plot_stream(windows, out / "pool.png", title="pool changes", share_of=newcomer)
            )
    progress("pool: done", len(spec.seeds), len(spec.seeds))
    curve = {k: np.mean(np.array(v), axis=0).round(4).tolist() for k, v in shares.items()}
    data: JSON = {
        "newcomer": newcomer, "join_at": spec.join_at, "window": spec.window,
        "seeds": list(spec.seeds), "lam": spec.lam, "alpha": spec.alpha,
        "runs": {k: {m: _mean_ci(v) for m, v in c.items()} for k, c in per.items()},
        "share_of_newcomer_per_window": curve,
    }  # fmt: skip
    lines = [
        f"# Pool changes: {newcomer} joins at query {spec.join_at} with no data; the most-used "
        f"LLM leaves at query {spec.join_at} (λ = {spec.lam:g}, α = {spec.alpha:g})",
        "",
        "| run | quality | cost (mUSD/query) | regret |",
        "| --- | --- | --- | --- |",
    ]
    titles = {
        "reference": f"{newcomer} known from the start",
        "joins": f"{newcomer} joins at query {spec.join_at}, no data",
        "leaves": f"the most-used LLM leaves at query {spec.join_at}",
    }
    for key, r in data["runs"].items():
        lines.append(
            f"| {titles[key]} | {_fmt(r['quality'])} | {_fmt(r['cost_usd'], 3, 1e3)} "
            f"| {_fmt(r['regret_per_query'])} |"
        )
    lines += ["", f"Share of calls to {newcomer} per window of {spec.window} queries "
              "(mean over seeds; the cold-start curve):", "",
              "| window ending at | " + " | ".join(titles[k] for k in curve) + " |",
              "| --- |" + " --- |" * len(curve)]  # fmt: skip
    for i, end in enumerate(ends):
        lines.append(f"| {end} | " + " | ".join(f"{curve[k][i]:.2f}" for k in curve) + " |")
    return lines, data, plots


def _busiest(ds: Dataset, spec: SimSpec, embedder: MemoEmbedder) -> str:
    """The LLM a MixLLM router fitted on the first seed's split uses most at λ (the newcomer
    whose late arrival matters most)."""
    from mixllm.router import Router

    train, test = split_random(ds, seed=spec.seeds[0])
    router = Router("mixllm", embedder=embedder, seed=spec.seeds[0]).fit(train)
    names = [d.llm for d in router.route_many([str(p) for p in test.prompts], lam=spec.lam)]
    return max(sorted(set(names)), key=names.count)


def _silent(what: str, done: int, total: int, /) -> None:
    """A progress callback that says nothing."""


def run_simulation(
    ds: Dataset, spec: SimSpec, out_dir: str | Path, *, progress: Progress | None = None
) -> tuple[str, list[Path]]:
    """Run ``spec.scenario`` on ``ds``; write report.md, report.json and plots into ``out_dir``.

    Returns the markdown and the paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    job = {"ood": _ood, "latency": _latency, "pool": _pool, "pacing": pacing_job}[spec.scenario]
    if spec.scenario == "ood" and not ds.has_tasks:
        raise ConfigError(f"{ds.name}: the ood scenario needs a task label on every query")
    lines, data, plots = job(ds, spec, out, progress or _silent)
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text, encoding="utf-8")
    json_path = write_json(
        {"scenario": spec.scenario, "dataset": ds.name, **data}, out / "report.json"
    )
    return text, [out / "report.md", json_path, *plots]
