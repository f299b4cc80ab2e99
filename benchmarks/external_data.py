"""Routers on data outside ``../shared/data`` and on transformed real data (same harness).

Run: ``MIXLLM_DATA_DIR=../shared/data HF_HUB_OFFLINE=1 .venv/bin/python
benchmarks/external_data.py [--out external.md] [--embedder static] [--n-boot 300]``.

Parts (each a seeded 80/20 ``split_random`` unless said otherwise; routers tune their
hyper-parameters only by their own cross-validation on the training split):

a. **synthetic**: ``synthesize_routing`` (4,000 queries, 15 LLMs with invented names, no task
   labels, 5% missing cells), written as long-layout JSONL to a temporary folder and read back
   with ``load_dataset``. The row ``bayes (true p)`` routes on the true success probabilities
   and expected costs: the headroom a router could reach.
b. **RouterBench, disguised**: the shared subset with LLM names replaced by unseen names, task
   labels removed and 5 of the 11 LLMs chosen at random.
c. **RouterBench, cross-task** (out of distribution): train on two tasks, test on the third.

AIQ and Q@25% come from :func:`mixllm.evaluate.evaluate` (Q@25%: quality at 25% of the
reference LLM's cost, in % of its quality; the reference is the best-quality LLM on the
training split). Intervals: 95% bootstrap over test queries.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from mixllm.data import (
    Dataset,
    load_dataset,
    split_by_task,
    split_random,
    synthesize_routing,
    write_longform,
)
from mixllm.embed import Embedder, make_embedder
from mixllm.evaluate import Estimate, Report, evaluate
from mixllm.policy import OraclePredictor, Predictor
from mixllm.types import LLM

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
ROUTERS = ("random", "cheapest", "oracle", "knn", "logistic", "mixllm")
BAYES = "bayes (true p)"


def _fmt(e: Estimate, scale: float = 1.0, digits: int = 3) -> str:
    if e.value is None:
        return "n/a"
    if e.low is None or e.high is None:
        return f"{e.value * scale:.{digits}f}"
    return f"{e.value * scale:.{digits}f} [{e.low * scale:.{digits}f}, {e.high * scale:.{digits}f}]"


def table(title: str, report: Report) -> str:
    """A markdown table of one report: learned routers, baselines, best single LLM."""
    ctx = report.context
    k25 = ctx.budgets_pct.index(25.0)
    rows = [r for r in report.rows if r.kind != "single"]
    singles = [r for r in report.rows if r.kind == "single"]
    best = max(singles, key=lambda r: r.aiq.value or 0.0)
    lines = [
        f"### {title}",
        "",
        f"{ctx.n_train} train / {ctx.n_test} test queries, {len(ctx.llms)} LLMs; reference "
        f"`{ctx.reference}`, cheapest `{ctx.cheapest}`; embedder {ctx.embedder}, "
        f"{ctx.n_boot} resamples.",
        "",
        "| router | AIQ [95% CI] | Q@25% [95% CI] | cost to match |",
        "|---|---|---|---|",
    ]
    for r in [*rows, best]:
        name = f"best single: `{r.name.removeprefix('single:')}`" if r is best else r.name
        match = "never" if r.cost_to_match_pct is None else f"{r.cost_to_match_pct:.1f}%"
        q25 = _fmt(r.quality_at_budget_pct[k25], digits=1)
        lines.append(f"| {name} | {_fmt(r.aiq)} | {q25} | {match} |")
    return "\n".join(lines) + "\n"


def part_synthetic(emb: Embedder, n_boot: int, seed: int) -> str:
    truth = synthesize_routing(n_queries=4000, n_llms=15, seed=seed, missing_share=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_longform(truth.dataset, Path(tmp) / "synthetic.jsonl")
        ds = load_dataset(path)
    assert not ds.has_tasks and set(ds.llms) == set(truth.dataset.llms)
    train, test = split_random(ds, seed=seed)
    bayes = OraclePredictor(outcomes=truth.bayes_outcomes())
    bayes.name = BAYES
    routers: list[str | Predictor] = [*ROUTERS, bayes]
    report = evaluate(train, test, routers=routers, embedder=emb, n_boot=n_boot, seed=seed)
    return table("a. Synthetic (4,000 queries, 15 unseen LLMs, no tasks, via JSONL)", report)


def disguise(ds: Dataset, *, n_llms: int, seed: int) -> Dataset:
    """``ds`` with unseen LLM names, no task labels and ``n_llms`` of its LLMs chosen at random."""
    rng = np.random.default_rng(seed)
    keep = sorted(rng.choice(ds.n_llms, size=n_llms, replace=False).tolist())
    names = {ds.llms[j]: f"lab{k}/model-{rng.integers(16**4):04x}" for k, j in enumerate(keep)}
    picked = ds.select_llms([ds.llms[j] for j in keep])
    prices = {
        names[m]: LLM(names[m], p.price_in_per_mtok, p.price_out_per_mtok)
        for m, p in picked.prices.items()
    }
    return replace(
        picked,
        llms=tuple(names[m] for m in picked.llms),
        prices=prices,
        tasks=np.full(len(ds), None, dtype=object),
        name=f"{ds.name}-disguised",
    )


def part_disguised(rb: Dataset, emb: Embedder, n_boot: int, seed: int) -> str:
    ds = disguise(rb, n_llms=5, seed=seed)
    train, test = split_random(ds, seed=seed)
    report = evaluate(train, test, routers=ROUTERS, embedder=emb, n_boot=n_boot, seed=seed)
    return table("b. RouterBench, 5 of 11 LLMs renamed, no task labels", report)


def part_cross_task(rb: Dataset, emb: Embedder, n_boot: int, seed: int) -> list[str]:
    out = []
    for task in rb.task_names:
        train, test = split_by_task(rb, [task])
        report = evaluate(train, test, routers=ROUTERS, embedder=emb, n_boot=n_boot, seed=seed)
        out.append(
            table(f"c. RouterBench cross-task: test on `{task}`, train on the others", report)
        )
    return out


def _run_parts(rb: Dataset, emb: Embedder, n_boot: int, seed: int) -> Iterator[str]:
    yield part_synthetic(emb, n_boot, seed)
    yield part_disguised(rb, emb, n_boot, seed)
    yield from part_cross_task(rb, emb, n_boot, seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=None, help="write the tables as markdown here")
    ap.add_argument("--embedder", default="static")
    ap.add_argument("--n-boot", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    emb = make_embedder(args.embedder)
    rb = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    parts: list[str] = []
    start = time.perf_counter()
    for text in _run_parts(rb, emb, args.n_boot, args.seed):
        print(text, flush=True)
        parts.append(text)
    note = f"Total run time {time.perf_counter() - start:.0f} s (one run, one machine).\n"
    print(note)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        header = "# Routers on external and transformed data\n\n"
        args.out.write_text(header + "\n".join(parts) + "\n" + note, encoding="utf-8")


if __name__ == "__main__":
    main()
