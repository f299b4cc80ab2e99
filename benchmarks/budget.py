"""A budget for the whole test batch: budgeted assignment vs per-query λ, and OptLLM.

Run: ``.venv/bin/python benchmarks/budget.py [--seeds 5] [--shares 0.1,0.25,0.33,0.5]
[--batch-sizes 10,25,50,100]``.

On each seeded 80/20 split of the RouterBench subset (static embedder), the default router
(``mixllm``) is fitted on the training part with a ``cost_share`` target, which cross-fits it
and keeps the calibration. For each budget B = share × GPT-4's total recorded cost on the test
part, the test batch is routed these ways from the same predictions:

* (a) ``budget``: :class:`~mixllm.policy.budget.BudgetSolver` on the predicted quality and cost,
  within B of *predicted* cost (``budget, known costs``: the same with the recorded costs as
  the costs, which must never spend more than B);
* ``budget, held 90%``/``95%``: :func:`~mixllm.policy.spend.hold_within_budget`, planned on
  the expected costs from the calibration's cost errors so that the *recorded* spend stays
  within B with that probability;
* (b) ``λ guessed``: per-query λ routing at the λ the calibration gives for ``cost_share``
  = share (the λ that meets the budget on the training split, out of fold);
* (c) ``λ matched``: per-query λ tuned after the fact to (a)'s realised spend (quality
  interpolated on a sweep of 400 λ over the test predictions);
* (d) ``optllm``: :class:`~mixllm.policy.optllm.OptLLMPolicy` fitted on the training part, run
  at budget B.

Printed per share: realised spend and quality as % of GPT-4's on the same test part (mean and
95% t-interval over the seeds), paired differences in quality points, and how many splits
spent more than B.

``--batch-sizes 10,25,50,100`` adds small batches, where one query's choice weighs most: the
test part is cut into batches of each size (seeded order), each routed within B = share × its
GPT-4 cost, against the per-query λ that spends the most without spending more than the budgeted
assignment did (a λ strictly between two switch points, so a choice λ routing can make: no
interpolation between two λ). Both on the recorded costs as known costs, and both on predicted
costs (spend compared as realised); the held budgets on predicted costs too: how often they
pass the budget, and what holding costs in quality.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mixllm import Router, load_dataset, split_random
from mixllm._queries import query_batch
from mixllm.data.dataset import Dataset
from mixllm.embed import DEFAULT_EMBEDDER, make_embedder
from mixllm.errors import ConfigError
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.policy import choose, lambda_grid
from mixllm.policy.budget import BudgetSolver
from mixllm.policy.optllm import OptLLMPolicy
from mixllm.policy.spend import SpendErrors, hold_within_budget
from mixllm.policy.targets import parse_target
from mixllm.types import Prediction
from related_routers import t_mean  # the sibling script: run as a script

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
SOURCE = DATA / "routerbench" / "routerbench_0shot_subset.csv"
GPT4 = "gpt-4-1106-preview"
HELD = (0.9, 0.95)
WAYS = (
    "budget", "budget, known costs", *(f"budget, held {c:.0%}" for c in HELD),
    "λ guessed", "λ matched", "optllm",
)  # fmt: skip


def realised(test: Dataset, choice: NDArray[np.int64]) -> tuple[float, float]:
    """Total recorded cost (USD) and mean recorded quality of the chosen LLMs."""
    rows = np.arange(len(test))
    return math.fsum(test.cost_usd[rows, choice]), float(np.nanmean(test.quality[rows, choice]))


def matched_quality(test: Dataset, pred: Prediction, spend: float) -> float:
    """Mean quality of per-query λ routing at realised spend ``spend``, interpolated on λ."""
    points = sorted(realised(test, choose(pred, float(lam))) for lam in lambda_grid(pred, 400))
    costs, qualities = zip(*points, strict=True)
    return float(np.interp(spend, costs, qualities))


def step_choices(pred: Prediction) -> list[NDArray[np.int64]]:
    """Every choice per-query λ routing can make on ``pred``, from λ = ∞ (all cheapest) down to
    0: λ routing at each midpoint between consecutive switch points Δquality / Δcost."""
    slopes = np.unique(BudgetSolver(pred).slopes_)[::-1]
    lams = [2 * slopes[0] + 1.0] if len(slopes) else [1.0]
    lams += [*((slopes[:-1] + slopes[1:]) / 2).tolist(), 0.0]
    return [choose(pred, float(lam)) for lam in lams]


def at_most(test: Dataset, choices: list[NDArray[np.int64]], spend: float) -> tuple[float, float]:
    """(spend, quality) of the λ choice that spends the most without passing ``spend``."""
    points = [realised(test, c) for c in choices]
    within = [p for p in points if p[0] <= spend * (1 + 1e-12)] or [min(points)]
    return max(within)


def small_batches(
    test: Dataset,
    pred: Prediction,
    sizes: Sequence[int],
    shares: Sequence[float],
    seed: int,
    spend: SpendErrors,
) -> dict[tuple[int, float, str], list[float]]:
    """Per (size, share, costs): budgeted − per-query λ quality, in points of GPT-4's quality on
    each batch, the λ spending at most what the budgeted assignment spent."""
    out: dict[tuple[int, float, str], list[float]] = {}
    order = np.random.default_rng(seed).permutation(len(test))
    g = test.llm_index(GPT4)
    for size in sizes:
        for start in range(0, len(order) - size + 1, size):
            rows = np.sort(order[start : start + size])
            part = test.subset(rows)
            ref_q = float(np.nanmean(part.quality[:, g]))
            if ref_q <= 0:
                continue
            sub = Prediction(pred.llms, pred.quality[rows], pred.cost_usd[rows])
            known = Prediction(pred.llms, sub.quality, np.asarray(part.cost_usd, dtype=np.float64))
            for costs, p in (("known", known), ("predicted", sub)):
                solver, choices = BudgetSolver(p), step_choices(p)
                for share in shares:
                    budget = share * math.fsum(part.cost_usd[:, g])
                    if budget < solver.min_spend_usd:
                        continue
                    a = realised(part, solver.assign(budget))
                    lam = at_most(part, choices, a[0])
                    diff = 100 * (a[1] - lam[1]) / ref_q
                    out.setdefault((size, share, costs), []).append(diff)
                    over = float(a[0] > budget * (1 + 1e-12))
                    out.setdefault((size, share, f"{costs}, over"), []).append(over)
                    if costs == "known":
                        continue
                    for c in HELD:
                        with contextlib.suppress(ConfigError):  # cannot be held: not counted
                            held = realised(
                                part, hold_within_budget(p, budget, spend, confidence=c).choice
                            )
                            key = f"held {c:.0%}"
                            out.setdefault((size, share, f"{key}, over"), []).append(
                                float(held[0] > budget * (1 + 1e-12))
                            )
                            diff = 100 * (held[1] - a[1]) / ref_q
                            out.setdefault((size, share, f"{key} − budget"), []).append(diff)
    return out


def run_split(
    ds: Dataset, seed: int, shares: Sequence[float], emb: MemoEmbedder, sizes: Sequence[int] = ()
) -> tuple[dict[float, dict[str, tuple[float, float]]], dict[tuple[int, float, str], list[float]]]:
    """Per share, per way: (spend % of GPT-4's, quality % of GPT-4's) on split ``seed``; and
    :func:`small_batches` for ``sizes``."""
    train, test = split_random(ds, seed=seed)
    target = parse_target("cost_share", shares[0])
    router = Router("mixllm", embedder=emb, target=target, reference=GPT4, seed=seed)
    with contextlib.suppress(ConfigError):  # fitted and calibrated all the same
        router.fit(train)
    prompts = [str(p) for p in test.prompts]
    pred = router.predict(prompts).select(test.llms)
    known = Prediction(pred.llms, pred.quality, np.asarray(test.cost_usd, dtype=np.float64))
    g = test.llm_index(GPT4)
    ref_cost = math.fsum(test.cost_usd[:, g])
    ref_quality = float(np.nanmean(test.quality[:, g]))
    optllm = OptLLMPolicy(seed=seed)
    train_q = query_batch(
        emb, [str(p) for p in train.prompts], [str(q) for q in train.query_ids],
        prompt_tokens=train.prompt_tokens,
    )  # fmt: skip
    optllm.fit(train, train_q)
    test_q = query_batch(emb, prompts, [str(q) for q in test.query_ids],
                         prompt_tokens=test.prompt_tokens)  # fmt: skip
    solver, solver_known = BudgetSolver(pred), BudgetSolver(known)
    assert router.calibration_ is not None and router.calibration_.spend is not None
    spend = router.calibration_.spend
    out: dict[float, dict[str, tuple[float, float]]] = {}
    for share in shares:
        budget = share * ref_cost
        cells: dict[str, tuple[float, float]] = {}
        a = realised(test, solver.assign(budget))
        cells["budget"] = a
        cells["budget, known costs"] = realised(test, solver_known.assign(budget))
        for c in HELD:
            held = hold_within_budget(pred, budget, spend, confidence=c)
            cells[f"budget, held {c:.0%}"] = realised(test, held.choice)
        try:
            lam = router.lam_for(parse_target("cost_share", share))
            cells["λ guessed"] = realised(test, choose(pred, lam))
        except ConfigError:
            cells["λ guessed"] = (math.nan, math.nan)
        cells["λ matched"] = (a[0], matched_quality(test, pred, a[0]))
        run = optllm.run(test, test_q, budget)
        cells["optllm"] = (math.fsum(run.cost_usd), float(np.nanmean(run.quality)))
        out[share] = {
            way: (100 * spend / ref_cost, 100 * quality / ref_quality)
            for way, (spend, quality) in cells.items()
        }
        out[share]["_budget"] = (100 * share, math.nan)
    return out, small_batches(test, pred, sizes, shares, seed, spend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--shares", default="0.1,0.25,0.33,0.5")
    parser.add_argument("--batch-sizes", default="", help="e.g. 10,25,50,100 (default: none)")
    args = parser.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    ds = load_dataset(SOURCE)
    emb = MemoEmbedder(make_embedder(DEFAULT_EMBEDDER))
    started = time.perf_counter()
    splits, small = [], defaultdict(list)
    for seed in range(args.seeds):
        whole, batches = run_split(ds, seed, shares, emb, sizes)
        splits.append(whole)
        for key, diffs in batches.items():
            small[key] += diffs
        print(f"split {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    n = len(splits)
    print(f"\n### RouterBench subset, {n} seeded 80/20 splits, static embedder")
    print("Spend and quality in % of GPT-4's on the same test part (mean [95% t-interval]).\n")
    for share in shares:
        print(f"#### budget = {100 * share:g}% of GPT-4's cost on the test part\n")
        print("| way | spend % | quality % | splits over budget |")
        print("|---|---|---|---|")
        for way in WAYS:
            spend = [s[share][way][0] for s in splits]
            quality = [s[share][way][1] for s in splits]
            over = sum(x > 100 * share * (1 + 1e-12) for x in spend if np.isfinite(x))
            print(
                f"| {way} | {t_mean(spend, digits=1)} | {t_mean(quality, digits=1)} | {over}/{n} |"
            )
        print()
        for left, right in (("budget", "λ guessed"), ("budget", "λ matched"), ("optllm", "budget")):
            diff = [s[share][left][1] - s[share][right][1] for s in splits]
            print(f"- quality {left} − {right}: {t_mean(diff, digits=1)} points of GPT-4's quality")
        print()
    if sizes:
        print_small(small, sizes, shares)


def print_small(
    small: dict[tuple[int, float, str], list[float]], sizes: Sequence[int], shares: Sequence[float]
) -> None:
    """The small-batch table: budgeted − per-query λ at no more spend, per size and share."""
    print("#### Small batches: budgeted − per-query λ spending at most as much (points of GPT-4's")
    print("quality per batch; mean [95% t-interval] over batches of all splits)\n")
    print("| batch size | costs | " + " | ".join(f"{100 * s:g}%" for s in shares) + " |")
    print("|---|---|" + "---|" * len(shares))
    for size in sizes:
        for costs in ("known", "predicted"):
            cells = [t_mean(small.get((size, s, costs), []), digits=2) for s in shares]
            n = len(small.get((size, shares[0], costs), []))
            print(f"| {size} ({n} batches) | {costs} | " + " | ".join(cells) + " |")
    for costs in ("known", "predicted", *(f"held {c:.0%}" for c in HELD)):
        over = [x for key, xs in small.items() if key[2] == f"{costs}, over" for x in xs]
        print(f"\n{costs}: spent more than the budget in {sum(over):.0f} of {len(over)} runs")
    for c in HELD:
        print(f"\nheld {c:.0%} − budget on predicted costs, quality points per batch:\n")
        for size in sizes:
            cells = [t_mean(small.get((size, s, f"held {c:.0%} − budget"), []), 2) for s in shares]
            print(f"| {size} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
