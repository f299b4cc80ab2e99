"""Do targets hold on held-out queries? Asked vs realised, over random 80/20 splits of RouterBench.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/targets.py [--splits 20] [--folds 5]
[--only min_quality_share] [--out reports/targets.md]`` (``--only KIND,...``: report only those
kinds of target; every split is fitted all the same).

On each seeded split the default router (``mixllm``, default static embedder) is fitted on the
training part with a target, which cross-fits it (``--folds``) and keeps the calibration; every
target below then gets its λ from that calibration (``Router.lam_for``) and routes the test part.
Realised figures are the test queries' recorded outcomes of the chosen LLMs, relative to the
reference's on the same test queries:

* ``cost_share S``: realised mean cost / the reference's (asked: at most S);
* ``budget_per_query USD``: realised mean cost in USD;
* ``strong_share S``: share of test calls to the reference;
* ``min_quality_share Q`` at confidence C over m queries: realised mean quality / the
  reference's; a split *violates* the target when that ratio is below Q (asked: at most 1 − C
  of splits when m is at most the test part's 508 queries).

The test part has its own sampling noise (508 queries): a guarantee about the expected quality
(the long run, m = inf) does not cover it, one over m ≤ 508 queries does.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from mixllm import Router, load_dataset, split_random
from mixllm.data import Dataset
from mixllm.embed import DEFAULT_EMBEDDER, Embedder, make_embedder
from mixllm.errors import ConfigError
from mixllm.policy import choose
from mixllm.policy.targets import TARGET_KINDS, Target, parse_target

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
TARGETS = [
    parse_target("cost_share", 0.25),
    parse_target("cost_share", 0.5),
    parse_target("budget_per_query", 0.001),
    parse_target("strong_share", 0.3),
    parse_target("min_quality_share", 0.95, 0.9),
    parse_target("min_quality_share", 0.95, 0.9, horizon=508),
    parse_target("min_quality_share", 0.95, 0.9, horizon=None),
    parse_target("min_quality_share", 0.9, 0.9),
    parse_target("min_quality_share", 0.9, 0.9, horizon=None),
]


def run_split(
    ds: Dataset, seed: int, folds: int, embedder: Embedder, targets: list[Target]
) -> dict[Target, dict[str, float] | None]:
    """Per target, the realised test figures on split ``seed`` (None: infeasible)."""
    train, test = split_random(ds, seed=seed)
    router = Router("mixllm", embedder=embedder, target=TARGETS[0], folds=folds, seed=seed)
    router.fit(train)
    calibration = router.calibration_
    assert calibration is not None
    pred = router.predict([str(p) for p in test.prompts]).select(test.llms)
    ref = test.llm_index(calibration.reference)
    rows = np.arange(len(test))
    ref_cost, ref_quality = np.nanmean(test.cost_usd[:, ref]), np.nanmean(test.quality[:, ref])
    out: dict[Target, dict[str, float] | None] = {}
    for target in targets:
        try:
            point = calibration.point_for(target)
        except ConfigError:
            out[target] = None
            continue
        chosen = choose(pred, point.lam)
        cost = float(np.nanmean(test.cost_usd[rows, chosen]))
        quality = float(np.nanmean(test.quality[rows, chosen]))
        out[target] = {
            "lam": point.lam,
            "cost_share": cost / ref_cost,
            "cost_usd": cost,
            "strong_share": float((chosen == ref).mean()),
            "quality_share": quality / ref_quality,
            "oof_cost_share": point.cost_usd / calibration.reference_cost_usd,
            "oof_quality_share": point.quality / calibration.reference_quality,
            "gap_z": _gap_z(test.quality[rows, chosen], test.quality[:, ref], target.value),
        }
    return out


def _gap_z(quality: np.ndarray, reference: np.ndarray, share: float) -> float:
    """Mean of quality − share × the reference's over the test queries, in standard errors
    (below −1.28: the test split itself shows, at 90%, an expected share below ``share``)."""
    d = quality - share * reference
    d = d[~np.isnan(d)]
    return float(d.mean() / (d.std(ddof=1) / np.sqrt(len(d))))


def realised(target: Target, r: dict[str, float]) -> float:
    """The test figure the target is about."""
    key = {"budget_per_query": "cost_usd", "min_quality_share": "quality_share"}
    return r[key.get(target.kind, target.kind)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--only", default=None, help="Comma-separated target kinds to report.")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    kinds = TARGET_KINDS if args.only is None else tuple(args.only.split(","))
    if unknown := set(kinds) - set(TARGET_KINDS):
        ap.error(f"--only {args.only}: unknown kinds {sorted(unknown)}; known: {TARGET_KINDS}")
    targets = [t for t in TARGETS if t.kind in kinds]
    embedder = make_embedder(DEFAULT_EMBEDDER)
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    results: dict[Target, list[dict[str, float] | None]] = {t: [] for t in targets}
    start = time.perf_counter()
    for seed in range(args.splits):
        for target, r in run_split(ds, seed, args.folds, embedder, targets).items():
            results[target].append(r)
        print(f"split {seed} done at {time.perf_counter() - start:.0f} s", flush=True)
    lines = [
        f"{args.splits} random 80/20 splits of routerbench_0shot_subset, router mixllm, "
        f"{args.folds} folds, {time.perf_counter() - start:.0f} s in all",
        "",
        "| target | asked | realised on test: mean (min–max) | out of fold | λ median | "
        "splits meeting it | test cost share | test quality share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        ok = [r for r in results[target] if r is not None]
        infeasible = len(results[target]) - len(ok)
        if not ok:
            lines.append(f"| {target.describe()} | {target.value:g} | infeasible | | | | | |")
            continue
        got = np.array([realised(target, r) for r in ok])
        oof_key = {"cost_share": "oof_cost_share", "min_quality_share": "oof_quality_share"}
        oof = (
            f"{np.mean([r[oof_key[target.kind]] for r in ok]):.3f}"
            if target.kind in oof_key
            else ""
        )
        at_least = target.kind == "min_quality_share"
        meets = got >= target.value if at_least else got <= target.value
        lam = float(np.median([r["lam"] for r in ok]))
        lines.append(
            f"| {target.describe()} | {target.value:g} | {got.mean():.4g} "
            f"({got.min():.4g}–{got.max():.4g}) | {oof} | {lam:.3g} | "
            f"{meets.sum()}/{len(ok)}"
            + (f" ({infeasible} infeasible)" if infeasible else "")
            + f" | {np.mean([r['cost_share'] for r in ok]):.3f}"
            + f" | {np.mean([r['quality_share'] for r in ok]):.3f} |"
        )
        if target.kind == "min_quality_share":
            z = np.array([r["gap_z"] for r in ok])
            lines.append(
                f"|   per split | | {', '.join(f'{g:.3f}' for g in got)} | | | "
                f"below {target.value:g} by more than the test split's noise (z < −1.28): "
                f"{(z < -1.2816).sum()}/{len(ok)}; violation rate "
                f"{(~meets).sum() / len(ok):.0%} | | |"
            )
        if target.kind == "cost_share":
            within = np.abs(got / target.value - 1) <= 0.10
            lines.append(
                f"|   within ±10% of {target.value:g} | | {within.sum()}/{len(ok)} splits; "
                f"mean relative error {np.mean(got / target.value - 1):+.1%} | | | | | |"
            )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
