"""How much quality must a router give up to keep queries under τ? (streams issue, latency)

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/latency_headroom.py [--seeds 0,...,19]
[--rates 11,11.5,12] [--beta 0.1] [--order mixed]``.

The latency scenario of ``mixllm simulate latency`` on each seed: the same MixLLM router with no
queues (reference), latency-blind, and latency-aware with the paper's flat penalty (the default)
and with the penalty scaled by each answer's service time. Set against them, a yardstick of
what the capacity itself costs: the **fluid bound**, a router that knows the whole stream in
advance (every query's scores and every answer's true length) and assigns queries by a linear
program that maximises the total score subject to each LLM serving at most
``slots × (stream duration + τ)`` seconds of work. It ignores when the work arrives (no
queueing at all), so it shows what the capacity itself costs with perfect foresight. Its
fractional solution is rounded to each query's largest share and its *realised* quality loss
reported (a yardstick, not a hard limit: a lucky online run can come in under it).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy import sparse, stats
from scipy.optimize import linprog

from mixllm import Router, load_dataset, split_random
from mixllm.data import Dataset
from mixllm.embed import make_embedder
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.simulate.experiments import AWARE, REFERENCE, SCALED, latency_runs
from mixllm.simulate.queues import Service
from mixllm.simulate.report import run_summary
from mixllm.simulate.run import default_services
from mixllm.simulate.stream import Step

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
LAM = 100.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default=",".join(map(str, range(20))))
    ap.add_argument("--rates", default="11,11.5,12", help="arrivals per second, comma-separated")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--tau", type=float, default=5.0)
    ap.add_argument("--order", default="mixed", choices=["mixed", "as given"])
    args = ap.parse_args()
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    embedder = MemoEmbedder(make_embedder("static"))
    prices = {m: ds.llm(m).price_out_per_mtok + ds.llm(m).price_in_per_mtok for m in ds.llms}
    services = default_services(ds.llms, prices)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"τ {args.tau:g} s, β {args.beta:g}, λ {LAM:g}, queries {args.order}, seeds {seeds}; "
          "mean [95% t-interval]; losses in points against the no-queue reference")  # fmt: skip
    print("| rate (/s) | blind: past τ | aware: past τ | aware: loss | service-scaled: loss "
          "| fluid bound: loss | aware − bound |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for rate in (float(r) for r in args.rates.split(",")):
        rows = np.array([_one_seed(ds, seed, rate, args, embedder, services) for seed in seeds])
        cells = [_ci(rows[:, 0]), _ci(rows[:, 1]), _ci(rows[:, 2]), _ci(rows[:, 3]),
                 _ci(rows[:, 4]), _ci(rows[:, 2] - rows[:, 4])]  # fmt: skip
        print(f"| {rate:g} | " + " | ".join(cells) + " |", flush=True)


def _one_seed(
    ds: Dataset, seed: int, rate: float, args: argparse.Namespace, embedder: MemoEmbedder,
    services: dict[str, Service],
) -> tuple[float, float, float, float, float]:  # fmt: skip
    """(blind share past τ, aware share past τ, aware loss, service-scaled loss, bound loss)."""
    train, test = split_random(ds, seed=seed)
    runs = latency_runs(
        train, test, seed=seed, lam=LAM, embedder=embedder, rate_per_s=rate,
        services=services, tau_s=args.tau, beta=args.beta, order=args.order,
    )  # fmt: skip
    ref = runs[REFERENCE]
    q = {name: run_summary(steps)["quality"] for name, steps in runs.items()}
    bound = _fluid_bound(
        Router("mixllm", embedder=embedder, seed=seed).fit(train), _stream_order(test, ref),
        services, duration_s=ref[-1].arrival_s, tau_s=args.tau,
    )  # fmt: skip
    ref_q = q[REFERENCE]
    return (
        run_summary(runs["latency-blind"])["timeout_share"],
        run_summary(runs[AWARE])["timeout_share"],
        100 * (ref_q - q[AWARE]),
        100 * (ref_q - q[SCALED]),
        100 * bound,
    )


def _ci(values: np.ndarray) -> str:  # type: ignore[type-arg]
    m = float(np.mean(values))
    if len(values) < 2:
        return f"{m:.2f}"
    half = float(
        stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    )
    return f"{m:.2f} [{m - half:.2f}, {m + half:.2f}]"


def _stream_order(test: Dataset, ref: list[Step]) -> Dataset:
    """The test split in the order the runs streamed it (the bound ignores order; its rows
    then line up with the runs')."""
    ids = {str(q): i for i, q in enumerate(test.query_ids)}
    return test.subset([ids[s.query_id] for s in ref])


def _fluid_bound(
    router: Router, test: Dataset, services: dict[str, Service], *, duration_s: float,
    tau_s: float,
) -> float:  # fmt: skip
    """Realised quality lost per query by the capacity-constrained assignment (see above)."""
    decisions = router.route_many([str(p) for p in test.prompts], lam=LAM)
    llms = list(router.llms)
    n, k = len(decisions), len(llms)
    score = np.array([[d.scores[m] for m in llms] for d in decisions])
    tokens = np.nan_to_num(np.asarray(test.output_tokens, dtype=np.float64), nan=200.0)
    cols = [test.llm_index(m) for m in llms]
    work = np.array([[services[m].time_s(tokens[i, c]) for m, c in zip(llms, cols)]
                     for i in range(n)])  # fmt: skip
    capacity = np.array([services[m].concurrency * (duration_s + tau_s) for m in llms])
    # Variable i·k + j: the share of query i sent to LLM j.
    one_each = sparse.kron(sparse.eye(n), np.ones((1, k)))
    per_llm = sparse.csr_matrix(
        (work.ravel(), (np.tile(np.arange(k), n), np.arange(n * k))), shape=(k, n * k)
    )
    sol = linprog(-score.ravel(), A_ub=per_llm, b_ub=capacity, A_eq=one_each,
                  b_eq=np.ones(n), bounds=(0, 1), method="highs")  # fmt: skip
    if not sol.success:
        raise RuntimeError(f"the fluid bound's linear program failed: {sol.message}")
    chosen = sol.x.reshape(n, k).argmax(axis=1)
    quality = np.nan_to_num(np.asarray(test.quality, dtype=np.float64))
    reference = [llms.index(d.llm) for d in decisions]
    lost = [quality[i, cols[reference[i]]] - quality[i, cols[chosen[i]]] for i in range(n)]
    return float(np.mean(lost))


if __name__ == "__main__":
    main()
