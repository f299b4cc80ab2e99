"""Cascades and small-model uncertainty routing vs MixLLM by λ and GPT-4 alone.

Run: ``.venv/bin/python benchmarks/cascades.py [--seeds 5] [--sets routerbench,gsm8k]``.
For each data set and each of ``--seeds`` seeded 80/20 splits (static embedder), every router
goes through the same harness (:func:`mixllm.evaluate.evaluate`: λ swept for predictors, the
knob for batch policies, every call's cost counted). Printed per router: AIQ and quality at
10/25/50% of the reference LLM's cost (% of its quality) as mean and 95% t-interval over the
seeds, then the paired difference (same split) of each answer-reading policy minus the plain
vote cascade. RouteLLM's gsm8k has two LLMs, so the vote there has one voter.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from mixllm import load_dataset, split_random
from mixllm.data.dataset import Dataset
from mixllm.embed import make_embedder
from mixllm.evaluate import evaluate
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.policy.cascade import CascadePolicy
from mixllm.policy.cascade_router import CascadeRouterPolicy
from mixllm.policy.cascade_vote import VoteCascadePolicy
from mixllm.policy.uncertainty_small import SmallUncertaintyPolicy
from related_routers import t_mean  # the sibling script: run as a script

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
SETS = {
    "routerbench": DATA / "routerbench" / "routerbench_0shot_subset.csv",
    "gsm8k": DATA / "routellm" / "gsm8k",
}
BUDGETS = (10.0, 25.0, 50.0)
VOTE = "cascade-vote"


def routers(ds: Dataset) -> list[object]:
    k = min(3, ds.n_llms - 1)
    return [
        "mixllm",
        CascadePolicy(),
        VoteCascadePolicy(k=k, pool=max(k, min(6, ds.n_llms - 1)), max_cost_share=0.25),
        CascadeRouterPolicy(n_first=min(2, ds.n_llms - 1)),
        SmallUncertaintyPolicy(),
    ]


def run_set(name: str, seeds: int, emb: MemoEmbedder) -> None:
    ds = load_dataset(SETS[name])
    table: dict[str, dict[str, list[float]]] = {}
    refq: list[float] = []
    refc: list[float] = []
    ref = ""
    for seed in range(seeds):
        train, test = split_random(ds, seed=seed)
        report = evaluate(
            train, test, routers=routers(ds), embedder=emb, n_lams=30, n_boot=200, seed=seed
        )  # type: ignore[arg-type]
        ctx = report.context
        ref = ctx.reference
        refq.append(ctx.reference_quality)
        refc.append(ctx.reference_cost_usd)
        for row in report.rows:
            if row.kind == "single" and row.name != f"single:{ctx.reference}":
                continue
            cells = table.setdefault(row.name, {})
            cells.setdefault("AIQ", []).append(float(row.aiq.value or 0.0))
            for b in BUDGETS:
                est = row.quality_at_budget_pct[ctx.budgets_pct.index(b)]
                cells.setdefault(f"Q@{b:g}%", []).append(float(est.value or 0.0))
        if seed == 0:
            for pol in report.rows:
                if pol.kind == "single":
                    continue
                print(f"  seed 0 {pol.name}: max quality {pol.max_quality:.3f}, "
                      f"min cost ${pol.min_cost_usd:.6f}")  # fmt: skip
            print(f"  reference {ctx.reference}: quality {ctx.reference_quality:.3f}, cost "
                  f"${ctx.reference_cost_usd:.6f}; notes {list(ctx.notes)}")  # fmt: skip
    print(f"\n### {name}: {len(ds)} queries, {ds.n_llms} LLMs, {seeds} seeded 80/20 splits")
    cols = ["AIQ", *(f"Q@{b:g}%" for b in BUDGETS)]
    print("| router | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    print(f"| {ref} alone | quality {t_mean(refq, digits=3)} | cost ${np.mean(refc):.6f} | | |")
    for router, cells in table.items():
        if router.startswith("single:"):
            continue
        print(f"| {router} | " + " | ".join(t_mean(cells[c], digits=3) for c in cols) + " |")
    if VOTE in table:
        print(f"\npaired difference vs {VOTE} (same split), mean [95% t-interval]:")
        for router in ("cascade", "cascade-router", "small-uncertainty", "mixllm"):
            if router in table:
                diffs = {c: np.subtract(table[router][c], table[VOTE][c]) for c in cols}
                print(
                    f"| {router} − vote | " + " | ".join(t_mean(diffs[c], digits=3) for c in cols)
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sets", default="routerbench,gsm8k")
    args = ap.parse_args()
    emb = MemoEmbedder(make_embedder("static"))
    for name in args.sets.split(","):
        run_set(name, args.seeds, emb)


if __name__ == "__main__":
    main()
