"""How much quality must a router give up to keep queries under τ? (streams issue, latency)

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/latency_headroom.py [--seeds 0,1,2,3,4]
[--rate 10] [--beta 0.2]``.

The latency scenario of ``mixllm simulate latency`` on each seed: the same MixLLM router with no
queues (reference), latency-blind and latency-aware. The blind router sends a share *f* of the
stream past τ: the best LLM's slots cannot serve it, so at least that share must go elsewhere.
**Lowest-margin diversion** is a yardstick computed offline from the reference's own decisions:
send the *f*·N queries of the busiest LLM whose score margin over their runner-up is smallest
to that runner-up (ignoring that the runner-up then queues too), and count the quality lost.
Set against it: the latency-aware router's actual loss and the share of decisions it changed.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

import numpy as np

from mixllm import Router, load_dataset, split_random
from mixllm.embed import make_embedder
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.simulate.experiments import latency_runs
from mixllm.simulate.report import run_summary
from mixllm.simulate.run import default_services

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
LAM = 100.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--beta", type=float, default=0.2)
    ap.add_argument("--tau", type=float, default=5.0)
    args = ap.parse_args()
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    embedder = MemoEmbedder(make_embedder("static"))
    prices = {m: ds.llm(m).price_out_per_mtok + ds.llm(m).price_in_per_mtok for m in ds.llms}
    services = default_services(ds.llms, prices)
    print(f"Poisson {args.rate:g}/s, τ {args.tau:g} s, β {args.beta:g}, λ {LAM:g}")
    print("| seed | past τ (blind) | reference quality | aware: loss (pts) | aware: decisions "
          "changed | lowest-margin diversion: loss (pts) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    rows: list[tuple[float, ...]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        train, test = split_random(ds, seed=seed)
        runs = latency_runs(
            train, test, seed=seed, lam=LAM, embedder=embedder, rate_per_s=args.rate,
            services=services, tau_s=args.tau, beta=args.beta,
        )  # fmt: skip
        ref, aware = runs["no queues (reference)"], runs["latency-aware"]
        share = run_summary(runs["latency-blind"])["timeout_share"]
        q_ref, q_aware = (run_summary(r)["quality"] for r in (ref, aware))
        changed = float(np.mean([a.llm != b.llm for a, b in zip(ref, aware, strict=True)]))
        ideal = _lowest_margin_loss(
            Router("mixllm", embedder=embedder, seed=seed).fit(train), test, share
        )
        rows.append((share, q_ref, q_ref - q_aware, changed, ideal))
        print(f"| {seed} | {share:.3f} | {q_ref:.3f} | {100 * (q_ref - q_aware):.1f} | "
              f"{changed:.2f} | {100 * ideal:.1f} |")  # fmt: skip
    m = np.mean(rows, axis=0)
    print(f"| mean | {m[0]:.3f} | {m[1]:.3f} | {100 * m[2]:.1f} | {m[3]:.2f} | {100 * m[4]:.1f} |")


def _lowest_margin_loss(router: Router, test: object, share: float) -> float:
    """Quality lost per query when the busiest LLM's ``share``·N lowest-margin queries go to
    their runner-up (realised outcomes of the test split)."""
    from mixllm.data import Dataset

    assert isinstance(test, Dataset)
    decisions = router.route_many([str(p) for p in test.prompts], lam=LAM)
    busiest = Counter(d.llm for d in decisions).most_common(1)[0][0]
    quality = np.nan_to_num(test.quality)
    rows = [(d.scores[busiest] - d.scores[d.runner_up or busiest], i, d.runner_up)
            for i, d in enumerate(decisions) if d.llm == busiest]  # fmt: skip
    k = min(round(share * len(decisions)), len(rows))
    lost = 0.0
    for _, i, runner_up in sorted(rows)[:k]:
        lost += quality[i, test.llm_index(busiest)] - quality[i, test.llm_index(str(runner_up))]
    return lost / len(decisions)


if __name__ == "__main__":
    main()
