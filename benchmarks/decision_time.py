"""Decision time of a router: one query at a time (p50/p99) and in batches, per embedder.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/decision_time.py [--n 300] [--embedders
static,minilm] [--routers knn,mixllm]``. Routers are fitted on the RouterBench subset (seeded
80/20 split, ``$MIXLLM_DATA_DIR`` or ../shared/data); test prompts are routed cold (no embedding
cache), so each decision includes embedding the prompt, counting its tokens once, predicting
and choosing. Everything is measured in the same run and reported beside the kNN baseline as a
ratio; the absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from mixllm import Router, load_dataset, split_random
from mixllm.data import count_tokens
from mixllm.embed import make_embedder

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))


def time_single(router: Router, prompts: list[str]) -> np.ndarray:
    out = []
    for p in prompts:
        start = time.perf_counter()
        router.route(p, lam=100.0)
        out.append(time.perf_counter() - start)
    return np.array(out) * 1e3


def time_batch(router: Router, prompts: list[str], size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(prompts), size):
        router.route_many(prompts[i : i + size], lam=100.0)
    return (time.perf_counter() - start) * 1e3 / len(prompts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--embedders", default="static,minilm")
    ap.add_argument("--routers", default="knn,mixllm")
    args = ap.parse_args()
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    train, test = split_random(ds, seed=0)
    prompts = [str(p) for p in test.prompts[: args.n]]
    count_tokens(prompts)  # token counts are memoised: warm them so every router pays the same
    rows = []
    for spec in args.embedders.split(","):
        for name in args.routers.split(","):
            router = Router(name, embedder=make_embedder(spec, cache=False)).fit(train)
            router.route("warm up", lam=1.0)
            single = time_single(router, prompts)
            # The same prompts again: the embedder is cold (no cache) so this repeats the work.
            batch = {b: time_batch(router, prompts, b) for b in (32, 256)}
            rows.append((spec, name, *np.percentile(single, [50, 99]), batch[32], batch[256]))
    base = {spec: r for r in rows for spec2 in [r[0]] if r[1] == "knn" for spec in [spec2]}
    print(f"{len(prompts)} RouterBench test prompts, ms per query (ratio to kNN, same embedder)")
    print(f"{'embedder':8} {'router':8} {'p50':>14} {'p99':>14} {'batch32':>14} {'batch256':>14}")
    for spec, name, p50, p99, b32, b256 in rows:
        ref = base.get(spec)
        cells = []
        for k, v in enumerate((p50, p99, b32, b256)):
            ratio = f"({v / ref[2 + k]:.2f}x)" if ref is not None else ""
            cells.append(f"{v:7.3f} {ratio:>6}")
        print(f"{spec:8} {name:8} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
