"""How far can a router get on the RouterBench subset? Restricted oracles and paired intervals.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/headroom.py [--seeds 0,1,2,3,4]
[--n-boot 1000] [--out reports/headroom.md]``.

The MixLLM router issue asks for an AIQ whose interval does not overlap the best baseline's.
This script measures what the data allows, on each seeded 80/20 split:

* the learned routers (``mixllm``, ``knn``, ``logistic``) through the same replay as the harness,
  with AIQ intervals and *paired* intervals of their differences (same bootstrap resamples);
* **cell routers**: each test query goes to the LLM with the best mean ``quality − λ·cost`` in
  its cell, the cell being its task, or its task × one of k k-means clusters of its embedding
  (clusters fitted on the training split).  "from train" takes the cell means from the training
  split (a real router that knows only the cell); "in-sample" takes them from the test split
  itself: the best that any router using only that information could do (an upper bound that
  grows with k as cells shrink towards single queries, where it becomes the oracle);
* the per-query oracle.

Everything is measured in the same run; intervals are 95% percentile bootstrap over test queries.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans

from mixllm import Router, load_dataset, split_random
from mixllm.data import Dataset
from mixllm.embed import make_embedder
from mixllm.evaluate import (
    Yardstick,
    bootstrap_frontier,
    cheapest_llm,
    default_reference,
    frontier_metrics,
    interval,
    replay,
    resample_counts,
    sweep_lams,
)
from mixllm.evaluate.replay import filled_costs

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
LAMS = np.concatenate([[0.0], np.logspace(-1, 6, 141)])
ROUTERS = ("mixllm", "knn", "logistic")
Sweep = tuple[NDArray[np.float64], NDArray[np.float64]]  # chosen quality, cost: (n_lam, n)


def yardstick(train: Dataset, test: Dataset) -> Yardstick:
    quality = np.nan_to_num(test.quality, nan=0.0).mean(axis=0)
    cost = filled_costs(test).mean(axis=0)
    lo, hi = test.llm_index(cheapest_llm(test)), test.llm_index(default_reference(train))
    return Yardstick(float(quality[lo]), float(cost[lo]), float(quality[hi]), float(cost[hi]))


def outcome(test: Dataset, choice: NDArray[np.int64]) -> Sweep:
    rows = np.arange(len(test))[None, :]
    q = np.nan_to_num(np.asarray(test.quality, dtype=np.float64), nan=0.0)
    return q[rows, choice], filled_costs(test)[rows, choice]


def cell_sweep(
    fit: Dataset, fit_cells: Sequence[str], test: Dataset, test_cells: Sequence[str]
) -> Sweep:
    """Route each test query by the mean quality and cost of its cell in ``fit``."""
    q = np.nan_to_num(np.asarray(fit.quality, dtype=np.float64), nan=0.0)
    c = filled_costs(fit)
    fit_cells_a, test_cells_a = np.asarray(fit_cells), np.asarray(test_cells)
    all_q, all_c = q.mean(axis=0), c.mean(axis=0)
    choice = np.empty((len(LAMS), len(test)), dtype=np.int64)
    for cell in np.unique(test_cells_a):
        rows = test_cells_a == cell
        members = fit_cells_a == cell
        mq, mc = (
            (q[members].mean(axis=0), c[members].mean(axis=0)) if members.any() else (all_q, all_c)
        )
        score = mq[None, :] - LAMS[:, None] * mc[None, :]
        choice[:, rows] = np.argmax(score, axis=1)[:, None]
    return outcome(test, choice)


def oracle_sweep(test: Dataset) -> Sweep:
    q = np.nan_to_num(np.asarray(test.quality, dtype=np.float64), nan=0.0)
    c = filled_costs(test)
    choice = np.argmax(q[None, :, :] - LAMS[:, None, None] * c[None, :, :], axis=2)
    return outcome(test, choice)


def router_sweep(name: str, train: Dataset, test: Dataset, embedder: object) -> Sweep:
    router = Router(name, embedder=embedder).fit(train)  # type: ignore[arg-type]
    res = replay(router, test, lams=sweep_lams(router, test, 30))
    return np.nan_to_num(res.quality, nan=0.0), res.cost_usd


Result = tuple[float, NDArray[np.float64], float, NDArray[np.float64]]  # AIQ, boots, Q@25%, boots


def aiq_boot(sweep: Sweep, yard: Yardstick, counts: NDArray[np.float64]) -> Result:
    q, c = sweep
    point = frontier_metrics(c.mean(axis=1), q.mean(axis=1), yard, budgets_pct=(25.0,))
    boots = bootstrap_frontier(q, c, yard, counts, budgets_pct=(25.0,))
    q25 = [
        np.nan if b.quality_at_budget_pct[0] is None else b.quality_at_budget_pct[0] for b in boots
    ]
    return (
        point.aiq,
        np.array([b.aiq for b in boots]),
        np.nan if point.quality_at_budget_pct[0] is None else point.quality_at_budget_pct[0],
        np.array(q25),
    )


def fmt(point: float, boots: NDArray[np.float64], digits: int = 3) -> str:
    lo, hi = interval(boots.tolist())
    if lo is None or hi is None:
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def one_seed(ds: Dataset, seed: int, n_boot: int, ks: Sequence[int]) -> dict[str, Result]:
    train, test = split_random(ds, seed=seed)
    yard = yardstick(train, test)
    counts = resample_counts(len(test), n_boot, seed)
    embedder = make_embedder("static")
    out: dict[str, Result] = {}
    for name in ROUTERS:
        out[name] = aiq_boot(router_sweep(name, train, test, embedder), yard, counts)
    tr_task = [str(t) for t in train.tasks]
    te_task = [str(t) for t in test.tasks]
    e_tr = embedder.embed([str(p) for p in train.prompts])
    e_te = embedder.embed([str(p) for p in test.prompts])
    for k in ks:
        tr_cells, te_cells = list(tr_task), list(te_task)
        if k > 1:
            for task in sorted(set(tr_task)):
                m_tr = np.array([t == task for t in tr_task])
                m_te = np.array([t == task for t in te_task])
                km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(e_tr[m_tr])
                for i, lab in zip(np.flatnonzero(m_tr), km.labels_):
                    tr_cells[i] = f"{task}/{lab}"
                if m_te.any():
                    for i, lab in zip(np.flatnonzero(m_te), km.predict(e_te[m_te])):
                        te_cells[i] = f"{task}/{lab}"
        label = "task" if k == 1 else f"task x {k} clusters"
        out[f"cell router ({label}), from train"] = aiq_boot(
            cell_sweep(train, tr_cells, test, te_cells), yard, counts
        )
        out[f"cell oracle ({label}), in-sample"] = aiq_boot(
            cell_sweep(test, te_cells, test, te_cells), yard, counts
        )
    out["oracle (per query)"] = aiq_boot(oracle_sweep(test), yard, counts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--ks", default="1,4,16,64")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    seeds = [int(s) for s in args.seeds.split(",")]
    ks = [int(k) for k in args.ks.split(",")]
    lines: list[str] = []
    per_seed: dict[str, list[float]] = {}
    diffs: dict[str, list[float]] = {}
    q25: dict[str, list[float]] = {}
    for seed in seeds:
        res = one_seed(ds, seed, args.n_boot, ks)
        lines += [f"### seed {seed}", "", "| router | AIQ [95% CI] | Q @ 25% cost [95% CI] |"]
        lines += ["| --- | --- | --- |"]
        lines += [f"| {n} | {fmt(v[0], v[1])} | {fmt(v[2], v[3], 1)} |" for n, v in res.items()]
        lines += ["", "| paired difference | AIQ diff [95% CI] |", "| --- | --- |"]
        for other in (
            *ROUTERS[1:],
            "cell router (task), from train",
            "cell oracle (task), in-sample",
        ):
            d_point = res["mixllm"][0] - res[other][0]
            d_boot = res["mixllm"][1] - res[other][1]
            lines.append(f"| mixllm − {other} | {fmt(d_point, d_boot)} |")
            diffs.setdefault(other, []).append(d_point)
        lines.append("")
        for name, v in res.items():
            per_seed.setdefault(name, []).append(v[0])
            q25.setdefault(name, []).append(v[2])
        print("\n".join(lines[-(len(res) + 12) :]), flush=True)
    lines += [f"### mean over seeds {args.seeds} (± standard deviation across seeds)", ""]
    lines += ["| router | mean AIQ | mean Q @ 25% cost |", "| --- | --- | --- |"]
    lines += [
        f"| {n} | {np.mean(v):.3f} ± {np.std(v):.3f} "
        f"| {np.mean(q25[n]):.1f} ± {np.std(q25[n]):.1f} |"
        for n, v in per_seed.items()
    ]
    lines += [
        "",
        "| paired difference | mean | seeds where mixllm is ahead |",
        "| --- | --- | --- |",
    ]
    for other, v in diffs.items():
        ahead = sum(x > 0 for x in v)
        lines.append(
            f"| mixllm − {other} | {np.mean(v):+.3f} ± {np.std(v):.3f} | {ahead}/{len(v)} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
