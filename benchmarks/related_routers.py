"""Every router of a default report, over seeded splits of the shared sets: where MixLLM wins.

Run: ``HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python benchmarks/related_routers.py
[--seeds 0,1,2,3,4] [--sets routerbench,routellm-gsm8k,routellm-mmlu] [--out FILE.md]``.

Each seed is an 80/20 split (``mixllm.split_random``) of each set (RouteLLM's MMLU: the demo's
seeded sample of 3,000 prompts), evaluated by :func:`mixllm.evaluate.evaluate` with its default
routers (the baselines, MixLLM and the routers of related papers; batch policies swept over
their own knob) and the default embedder, embedded once per set. Per router: AIQ, quality at
10/25/50% of the reference's cost (% of its quality), quality at λ = 0 (a batch policy's run of
highest quality), as means with 95% t-intervals over seeds, and the AIQ difference to MixLLM
paired by split. A router the data cannot feed (no recorded answers) is listed as skipped.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mixllm import load_dataset, split_random
from mixllm.embed import DEFAULT_EMBEDDER, make_embedder
from mixllm.evaluate import evaluate
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.evaluate.run import DEMO_SAMPLES

BUDGETS = (10.0, 25.0, 50.0)


def t_interval(values: Sequence[float | None]) -> tuple[float, float, float]:
    """Mean and 95% t-interval (low, high) of the finite ``values``: NaN bounds with fewer
    than two, all NaN with none."""
    from scipy import stats

    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(a) < 2:
        return (float(a.mean()) if len(a) else math.nan), math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))
    return float(a.mean()), float(a.mean()) - half, float(a.mean()) + half


def t_mean(values: Sequence[float | None], digits: int = 3, scale: float = 1.0) -> str:
    """``mean [low, high]`` of a 95% t-interval (just the mean with one value), times
    ``scale``."""
    mean, low, high = (x * scale for x in t_interval(values))
    if math.isnan(mean):
        return "—"
    if math.isnan(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def run_set(name: str, seeds: list[int]) -> str:
    ds = load_dataset(name)
    size = DEMO_SAMPLES.get(name, len(ds))
    if size < len(ds):
        rows = np.sort(np.random.default_rng(0).choice(len(ds), size, replace=False))
        ds = ds.subset(rows, name=f"{ds.name}, sample of {size}")
    emb = MemoEmbedder(make_embedder(DEFAULT_EMBEDDER))
    cols: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    skipped: set[str] = set()  # notes saying why a router is not in the report
    start = time.perf_counter()
    for seed in seeds:
        train, test = split_random(ds, seed=seed)
        rep = evaluate(train, test, embedder=emb, seed=seed, n_boot=200)
        skipped |= {n for n in rep.context.notes if " skipped" in n}
        budgets = list(rep.context.budgets_pct)
        mix = rep.row("mixllm").aiq.value
        for row in rep.rows:
            if row.kind == "single" and not row.name.endswith("gpt-4-1106-preview"):
                continue
            c = cols[row.name]
            c["aiq"].append(row.aiq.value if row.aiq.value is not None else math.nan)
            for b in BUDGETS:
                est = row.quality_at_budget_pct[budgets.index(b)].value
                c[f"q{b:g}"].append(math.nan if est is None else est)
            c["q0"].append(row.quality_at_lam0.value or math.nan)
            if row.aiq.value is not None and mix is not None:
                c["diff"].append(row.aiq.value - mix)
    took = time.perf_counter() - start
    head = "| router | AIQ | Q@10% | Q@25% | Q@50% | quality at λ = 0 | AIQ − MixLLM (paired) |"
    lines = [
        f"### {ds.name} ({len(seeds)} splits, {took:.0f} s)",
        "",
        head,
        "|" + "---|" * 7,
    ]
    for name_, c in cols.items():
        cells = [
            t_mean(c["aiq"]),
            *(t_mean(c[f"q{b:g}"], digits=1) for b in BUDGETS),
            t_mean(c["q0"]),
        ]
        diff = "" if name_ == "mixllm" else t_mean(c["diff"])
        lines.append(f"| {name_} | " + " | ".join(cells) + f" | {diff} |")
    if skipped:
        lines += ["", *(f"- {note}" for note in sorted(skipped))]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--sets", default="routerbench,routellm-gsm8k,routellm-mmlu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    text = "\n".join(run_set(s, seeds) for s in args.sets.split(","))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
