"""Does truncating prompts for the static embedder cost routing quality?

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/truncation.py [--seeds 0,1,2,3,4]
[--embedders static,static?max_tokens=128,static?max_tokens=64] [--routers mixllm,knn]
[--n-boot 1000] [--out reports/truncation.md]``.

On each seeded 80/20 split of the RouterBench subset, every router is fitted and replayed (as in
``benchmarks/headroom.py``) once per embedder spec; ``static`` truncates at 512 tokens.
The table has one row per (router, embedder):

* AIQ on each seed's test split, and its mean ± standard deviation across seeds;
* ΔAIQ: AIQ minus that of the same router with the *first* embedder on the same split,
  mean ± standard deviation across seeds;
* "CI < 0 / CI > 0": on how many seeds the *paired* 95% bootstrap interval of ΔAIQ (both
  embedders scored on the same resamples of test queries) lies entirely below / above 0,
  i.e. on how many seeds the difference is distinguishable from noise.

A second table gives each seed's paired ΔAIQ with its 95% interval.  Embeddings are cached on
disk (``make_embedder``'s default cache), so a second run skips the embedding.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mixllm import Router, load_dataset, split_random
from mixllm.data import Dataset
from mixllm.embed import Embedder, make_embedder
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
Result = tuple[float, NDArray[np.float64]]  # AIQ, its bootstrap resamples


def yardstick(train: Dataset, test: Dataset) -> Yardstick:
    quality = np.nan_to_num(test.quality, nan=0.0).mean(axis=0)
    cost = filled_costs(test).mean(axis=0)
    lo, hi = test.llm_index(cheapest_llm(test)), test.llm_index(default_reference(train))
    return Yardstick(float(quality[lo]), float(cost[lo]), float(quality[hi]), float(cost[hi]))


def router_aiq(
    name: str, train: Dataset, test: Dataset, embedder: Embedder, seed: int,
    yard: Yardstick, counts: NDArray[np.float64],
) -> Result:  # fmt: skip
    router = Router(name, embedder=embedder, seed=seed).fit(train)
    res = replay(router, test, lams=sweep_lams(router, test, 30))
    q, c = np.nan_to_num(res.quality, nan=0.0), res.cost_usd
    point = frontier_metrics(c.mean(axis=1), q.mean(axis=1), yard, budgets_pct=())
    boots = bootstrap_frontier(q, c, yard, counts, budgets_pct=())
    return point.aiq, np.array([b.aiq for b in boots], dtype=np.float64)


def fmt(point: float, boots: NDArray[np.float64]) -> str:
    lo, hi = interval(boots.tolist())
    if lo is None or hi is None:
        return f"{point:+.3f}"
    return f"{point:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--embedders", default="static,static?max_tokens=128,static?max_tokens=64")
    ap.add_argument("--routers", default="mixllm,knn")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    seeds = [int(s) for s in args.seeds.split(",")]
    specs, routers = args.embedders.split(","), args.routers.split(",")
    embedders = {spec: make_embedder(spec) for spec in specs}
    res: dict[tuple[str, str, int], Result] = {}
    start, total, done = time.perf_counter(), len(seeds) * len(specs) * len(routers), 0
    for seed in seeds:
        train, test = split_random(ds, seed=seed)
        yard, counts = yardstick(train, test), resample_counts(len(test), args.n_boot, seed)
        for spec in specs:
            for name in routers:
                res[name, spec, seed] = router_aiq(
                    name, train, test, embedders[spec], seed, yard, counts
                )
                done += 1
                print(
                    f"[{done}/{total} {time.perf_counter() - start:6.0f}s] seed {seed} "
                    f"{name:>8} {spec:<24} AIQ {res[name, spec, seed][0]:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
    base = specs[0]
    head = ["router", "embedder", *(f"AIQ s{s}" for s in seeds), "mean AIQ"]
    head += [f"ΔAIQ vs {base}", "CI < 0 / CI > 0"]
    lines = [f"## AIQ by embedder, seeds {args.seeds} (n_boot={args.n_boot})", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    detail = ["", "## Paired ΔAIQ per seed [95% CI]", ""]
    detail += ["| router | embedder | " + " | ".join(f"s{s}" for s in seeds) + " |"]
    detail += ["|" + " --- |" * (len(seeds) + 2)]
    for name in routers:
        for spec in specs:
            aiqs = [res[name, spec, s][0] for s in seeds]
            row = [name, f"`{spec}`", *(f"{a:.3f}" for a in aiqs)]
            row.append(f"{np.mean(aiqs):.3f} ± {np.std(aiqs):.3f}")
            if spec == base:
                row += ["—", "—"]
            else:
                deltas = [res[name, spec, s][0] - res[name, base, s][0] for s in seeds]
                boots = [res[name, spec, s][1] - res[name, base, s][1] for s in seeds]
                cis = [interval(b.tolist()) for b in boots]
                below = sum(hi is not None and hi < 0 for _, hi in cis)
                above = sum(lo is not None and lo > 0 for lo, _ in cis)
                row += [f"{np.mean(deltas):+.3f} ± {np.std(deltas):.3f}", f"{below} / {above}"]
                cells = [fmt(d, b) for d, b in zip(deltas, boots)]
                detail.append(f"| {name} | `{spec}` | " + " | ".join(cells) + " |")
            lines.append("| " + " | ".join(row) + " |")
    lines += detail
    lines += ["", f"Wall time {time.perf_counter() - start:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
