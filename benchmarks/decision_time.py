"""Decision time of a router: one query at a time (p50/p99) and in batches, per embedder.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/decision_time.py [--n 300] [--embedders
'static,static?max_tokens=64&keep=end,static?max_tokens=64,minilm'] [--routers knn,mixllm]
[--alpha 0.05]``; ``static?max_tokens=64&keep=end`` is the router's default
(``mixllm.embed.DEFAULT_EMBEDDER``), ``static`` reads 512 tokens. Routers are fitted
on the RouterBench subset (seeded 80/20 split, ``$MIXLLM_DATA_DIR`` or ../shared/data); test
prompts are routed cold (no embedding cache), so each decision includes embedding the prompt,
counting its tokens once, predicting and choosing. Everything is measured in the same run and
reported beside the kNN baseline as a ratio; the absolute numbers depend on the machine.

BLAS runs on one thread (``OPENBLAS_NUM_THREADS=1``, ``OMP_NUM_THREADS=1``, set before numpy
is imported, unless already set): a router serving requests runs one decision per core, and a
threaded BLAS only adds hand-off costs at this size. The ``mixllm α=…`` row is the MixLLM
router with the LinUCB bonus in its scores (with α = 0 the router does not compute it); the
line after the table times the same router while it learns from the recorded outcome of every
decision (``learn_one`` after each one), as on a gateway with feedback.

Token counts are memoised by text, and a gateway meets new prompts: every timed decision (and
every timed batch) starts with that memo emptied, so it counts its prompt's tokens anew. What
prompts share is memoised across them, as on a gateway: the words the embedder has tokenized
and the paragraphs whose tokens were counted (system prompts, few-shot examples); the ``p50
all cold`` column empties the paragraph memo too before each decision. The ``p50 warm``
column routes the same prompts with their counts memoised (a λ sweep, a retry).

``--torch-threads N`` sets PyTorch's intra-op threads (``torch.set_num_threads``) for the
sentence embedders; by default PyTorch follows ``OMP_NUM_THREADS``, which is 1 here.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import copy  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from mixllm import Feedback, Router, load_dataset, split_random  # noqa: E402
from mixllm.data import Dataset, tokens  # noqa: E402
from mixllm.embed import DEFAULT_EMBEDDER, make_embedder  # noqa: E402

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
LAM = 100.0


def forget_token_counts(*, paragraphs: bool = False) -> None:
    tokens._count_cached.cache_clear()
    if paragraphs:
        tokens._PARAGRAPHS.clear()


def time_single(
    router: Router, prompts: list[str], *, cold: bool = True, paragraphs: bool = False
) -> np.ndarray:
    out = []
    for p in prompts:
        if cold:
            forget_token_counts(paragraphs=paragraphs)
        start = time.perf_counter()
        router.route(p, lam=LAM)
        out.append(time.perf_counter() - start)
    return np.array(out) * 1e3


def time_batch(router: Router, prompts: list[str], size: int) -> float:
    total = 0.0
    for i in range(0, len(prompts), size):
        forget_token_counts()
        start = time.perf_counter()
        router.route_many(prompts[i : i + size], lam=LAM)
        total += time.perf_counter() - start
    return total * 1e3 / len(prompts)


def measure(router: Router, prompts: list[str]) -> tuple[float, ...]:
    """p50 and p99 of single decisions on new prompts, p50 all cold, p50 warm, then ms per
    query in batches of 32, 256."""
    router.route("warm up", lam=1.0)
    single = time_single(router, prompts)
    all_cold = float(np.percentile(time_single(router, prompts, paragraphs=True), 50))
    # The same prompts again: the embedder is cold (no cache) so this repeats the work.
    tokens.count_tokens(prompts)  # memoise every count for the warm pass
    warm = float(np.percentile(time_single(router, prompts, cold=False), 50))
    b32, b256 = (time_batch(router, prompts, b) for b in (32, 256))
    p50, p99 = np.percentile(single, [50, 99])
    return float(p50), float(p99), all_cold, warm, b32, b256


def time_learning(router: Router, test: Dataset, n: int) -> np.ndarray:
    """ms per cold decision when the recorded outcome is fed back (``learn_one``) after each one,
    so every decision follows an update of the LinUCB statistics."""
    out = []
    for i in range(n):
        forget_token_counts()
        start = time.perf_counter()
        d = router.route(str(test.prompts[i]), lam=LAM)
        out.append(time.perf_counter() - start)
        j = test.llm_index(d.llm)
        q, c = float(np.nan_to_num(test.quality[i, j])), float(test.cost_usd[i, j])
        router.learn_one(d, Feedback(quality=q, cost_usd=c))
    return np.array(out) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--embedders", default=f"static,{DEFAULT_EMBEDDER},static?max_tokens=64,minilm")
    ap.add_argument("--routers", default="knn,mixllm")
    ap.add_argument("--alpha", type=float, default=0.05, help="α of the extra MixLLM row; 0: none")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads; 0: leave")
    args = ap.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    train, test = split_random(ds, seed=0)
    prompts = [str(p) for p in test.prompts[: args.n]]
    rows = []
    online: list[tuple[str, float, float]] = []
    for spec in args.embedders.split(","):
        for name in args.routers.split(","):
            router = Router(name, embedder=make_embedder(spec, cache=False)).fit(train)
            rows.append((spec, name, *measure(router, prompts)))
            if name == "mixllm" and args.alpha:
                explore = copy.copy(router)
                explore.alpha = args.alpha
                rows.append((spec, f"mixllm α={args.alpha:g}", *measure(explore, prompts)))
                learning = time_learning(explore, test, len(prompts))
                online.append((spec, *np.percentile(learning, [50, 99])))
    print_table(rows, len(prompts))
    for spec, p50, p99 in online:
        print(
            f"{spec}: mixllm α={args.alpha:g} learning from every answer (learn_one after "
            f"each decision): p50 {p50:.3f} ms, p99 {p99:.3f} ms per decision"
        )


def print_table(rows: list[tuple[Any, ...]], n: int) -> None:
    threads = ", ".join(f"{v}={os.environ[v]}" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))
    base = {r[0]: r for r in rows if r[1] == "knn"}
    if "torch" in sys.modules:
        threads += f", torch threads={sys.modules['torch'].get_num_threads()}"
    print(f"{n} RouterBench test prompts, λ={LAM:g}, {os.cpu_count()} CPUs, BLAS: {threads}")
    print("p50/p99: one decision on a new prompt (its token count not memoised); p50 all cold:")
    print("nor its paragraphs' counts; p50 warm: its count memoised")
    print("ms per query (ratio to kNN with the same embedder)")
    width = max(len(r[0]) for r in rows)
    names = ("p50", "p99", "p50 all cold", "p50 warm", "batch32", "batch256")
    head = "".join(f"{h:>16}" for h in names)
    print(f"{'embedder':{width}} {'router':12}{head}")
    for spec, name, *values in rows:
        ref = base.get(spec)
        cells = []
        for k, v in enumerate(values):
            ratio = f"({v / ref[2 + k]:.2f}x)" if ref is not None else ""
            cells.append(f"{v:8.3f} {ratio:>7}")
        print(f"{spec:{width}} {name:12}" + "".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
