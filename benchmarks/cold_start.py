"""Cold start: how soon a router with the default settings tries and learns an LLM added
without data, and what the newcomer bonus costs a router to which no LLM is added.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cold_start.py [--seeds 0,1,2,3,4]
[--newcomer zero-one-ai/Yi-34B-Chat] [--lam 100] [--explore 0,0.1,0.3] [--out
reports/cold_start.md]``.

The setup is the ``mixllm simulate pool`` scenario's with the router's defaults (α = 0): on each
seeded split of the RouterBench subset (``$MIXLLM_DATA_DIR`` or ../shared/data; 25% test, so
that 500 queries follow the join) a MixLLM router trained without ``--newcomer`` streams the
test split (Poisson, 5 queries/s, no waits) with refined feedback (``learn_one`` after every
answer); the newcomer joins at query ``--join-at`` with its prices and no data. Each value of
``--explore`` is a ``MixLLMPredictor(explore_new=...)`` (0: no newcomer bonus, the behaviour
before it existed). The reference is the same router trained with the newcomer ("knew it from
the start"): the share of calls it gives the newcomer is the newcomer's *fair share*.

Reported, with 95% t-intervals over seeds: the newcomer's share of calls per window of 50
queries after the join, against the reference's; the quality of the queries after the join;
and the quality of the whole stream routed by the reference (no LLM added) with each value of
``explore_new`` (paired differences against 0). Everything is deterministic for its seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mixllm import Router, load_dataset, split_random
from mixllm.data import Dataset
from mixllm.embed import make_embedder
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.policy import MixLLMPredictor
from mixllm.simulate.arrivals import Poisson
from mixllm.simulate.queues import Service
from mixllm.simulate.stream import PoolEvent, Step, StreamConfig, run_stream
from mixllm.types import LLM
from related_routers import t_mean  # the sibling script: run as a script

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
IDLE = Service(ttft_s=0.5, tokens_per_s=50.0, concurrency=1_000)  # as the pool scenario's


def config(lam: float, seed: int, events: Sequence[PoolEvent] = ()) -> StreamConfig:
    return StreamConfig(
        lam=lam, arrivals=Poisson(rate_per_s=5.0), tau_s=60.0, feedback="refined",
        default_service=IDLE, events=tuple(events), seed=seed,
    )  # fmt: skip


def router(train: Dataset, embedder: MemoEmbedder, seed: int, explore: float) -> Router:
    predictor = MixLLMPredictor(explore_new=explore, seed=seed)
    return Router(predictor, embedder=embedder, seed=seed).fit(train)


def shares(steps: Sequence[Step], llm: str, start: int, window: int, n: int) -> list[float]:
    """Share of calls to ``llm`` in each of ``n`` windows of ``window`` queries from ``start``."""
    out = []
    for k in range(n):
        chunk = steps[start + k * window : start + (k + 1) * window]
        out.append(sum(s.llm == llm for s in chunk) / max(len(chunk), 1))
    return out


def quality_cost(steps: Sequence[Step]) -> tuple[float, float]:
    return float(np.mean([s.quality for s in steps])), float(np.mean([s.cost_usd for s in steps]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--newcomer", default="zero-one-ai/Yi-34B-Chat")
    ap.add_argument("--lam", type=float, default=100.0)
    ap.add_argument("--explore", default="0,0.1,0.3", help="explore_new values; 0 = none")
    ap.add_argument("--join-at", type=int, default=100)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--test-size", type=float, default=0.25)
    ap.add_argument("--embedder", default="static")
    ap.add_argument(
        "--order",
        choices=["data", "shuffled"],
        default="data",
        help="stream the test queries in the data's order (task by task) or shuffled (seeded)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    explores = [float(e) for e in args.explore.split(",")]
    os.environ.setdefault("MIXLLM_DATA_DIR", str(DATA))
    ds = load_dataset("routerbench")
    embedder = MemoEmbedder(make_embedder(args.embedder))
    new, at, lam = args.newcomer, args.join_at, args.lam
    w, nw = args.window, args.windows
    fair: list[list[float]] = []
    curve: dict[float, list[list[float]]] = {e: [] for e in explores}
    after: dict[str, list[tuple[float, float]]] = {}
    whole: dict[float, list[float]] = {e: [] for e in explores}
    started = time.perf_counter()
    for seed in seeds:
        train, test = split_random(ds, test_size=args.test_size, seed=seed)
        if args.order == "shuffled":
            test = test.subset(np.random.default_rng(seed).permutation(len(test)))
        for e in explores:  # no LLM added: the newcomer bonus never applies
            steps = run_stream(router(train, embedder, seed, e), test, config(lam, seed))
            whole[e].append(float(np.mean([s.quality for s in steps])))
            if e == explores[0]:
                fair.append(shares(steps, new, at, w, nw))
                after.setdefault("knew it from the start", []).append(quality_cost(steps[at:]))
        late = train.select_llms([m for m in train.llms if m != new])
        price = train.llm(new)
        event = PoolEvent(at=at, add=LLM(new, price.price_in_per_mtok, price.price_out_per_mtok))
        for e in explores:
            steps = run_stream(router(late, embedder, seed, e), test, config(lam, seed, [event]))
            curve[e].append(shares(steps, new, at, w, nw))
            after.setdefault(f"joins, explore_new = {e:g}", []).append(quality_cost(steps[at:]))
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    lines = [
        f"# Cold start: {new} joins at query {at} without data (λ = {lam:g}, α = 0, "
        f"seeds {args.seeds}, {len(test)} queries per stream, {args.order} order)",
        "",
        f"Share of calls to {new} per window of {w} queries after it joins (mean [95% CI]):",
        "",
        "| queries after the join | knew it from the start (fair share) | "
        + " | ".join(f"joins, explore_new = {e:g}" for e in explores)
        + " |",
        "| --- | --- |" + " --- |" * len(explores),
    ]
    for k in range(nw):
        cells = [t_mean([f[k] for f in fair], 2)] + [
            t_mean([c[k] for c in curve[e]], 2) for e in explores
        ]
        lines.append(f"| {k * w + 1}-{(k + 1) * w} | " + " | ".join(cells) + " |")
    total = {e: [float(np.mean(c)) for c in curve[e]] for e in explores}
    cells = [t_mean([float(np.mean(f)) for f in fair], 2)] + [t_mean(total[e], 2) for e in explores]
    lines.append(f"| **1-{nw * w}** | " + " | ".join(cells) + " |")
    lines += ["", f"Per seed, share over the {nw * w} queries after the join:", ""]
    lines.append("| seed | fair share | " + " | ".join(f"{e:g}" for e in explores) + " |")
    lines.append("| --- | --- |" + " --- |" * len(explores))
    for i, seed in enumerate(seeds):
        cells = [f"{np.mean(fair[i]):.2f}"] + [f"{total[e][i]:.2f}" for e in explores]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", "The queries after the join:", ""]
    lines += ["| run | quality | cost (mUSD/query) |", "| --- | --- | --- |"]
    for name, v in after.items():
        q, c = [x[0] for x in v], [x[1] for x in v]
        lines.append(f"| {name} | {t_mean(q, 3)} | {t_mean(c, 3, 1e3)} |")
    base = np.array(whole[explores[0]])
    lines += [
        "",
        f"No LLM added (the router trained with every LLM), whole stream, against explore_new = "
        f"{explores[0]:g} (paired over seeds; quality points):",
        "",
        "| explore_new | quality | difference (points) |",
        "| --- | --- | --- |",
    ]
    for e in explores:
        diff = (np.array(whole[e]) - base).tolist()
        lines.append(f"| {e:g} | {t_mean(whole[e], 3)} | {t_mean(diff, 2, 100.0)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
