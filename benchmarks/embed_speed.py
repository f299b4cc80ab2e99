"""Embedder speed and routing-quality proxy on RouterBench prompts (one run, one machine).

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embed_speed.py [CSV] [--n 500]``.
Prints distil/load seconds, ms per query for the static embedder at several truncations and
for MiniLM, and a leave-one-out kNN routing proxy (realised quality when each query goes to the
LLM its 20 nearest neighbours did best on) so that speed is never traded blind for quality.
"""

from __future__ import annotations

import argparse
import ast
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from mixllm.embed import HashingEmbedder, SentenceEmbedder, StaticEmbedder

log = logging.getLogger("embed_speed")
CSV = Path(__file__).resolve().parents[2] / "shared/data/routerbench/routerbench_0shot_subset.csv"


def load(csv: Path) -> tuple[list[str], NDArray[np.float64], NDArray[np.float64], list[str]]:
    df = pd.read_csv(csv)
    llms = [c for c in df.columns if "|" not in c and c not in ("sample_id", "prompt", "eval_name")]
    llms = [c for c in llms if c != "oracle_model_to_route_to"]
    df = df.dropna(subset=llms)
    prompts = [" ".join(ast.literal_eval(p)) for p in df["prompt"]]
    quality = df[llms].to_numpy(float)
    cost = df[[f"{m}|total_cost" for m in llms]].to_numpy(float)
    return prompts, quality, cost, list(df["eval_name"])


def ms_per_query(
    embed: Callable[[Sequence[str]], object],
    texts: list[str],
    *,
    one_by_one: bool,
    repeats: int = 3,
) -> float:
    """Best of ``repeats`` runs (the machine may be shared), in milliseconds per text."""
    embed(texts[:4])  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        if one_by_one:
            for t in texts:
                embed([t])
        else:
            embed(texts)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(texts)


def knn_proxy(
    emb: NDArray[np.float32], quality: NDArray[np.float64], cost: NDArray[np.float64], k: int = 20
) -> tuple[float, float]:
    """Leave-one-out kNN quality/cost predictions; returns (mean per-LLM AUC, AIQ).

    AIQ (RouterBench): area under the upper quality-vs-cost envelope of routing by
    ``q̂ - λ ĉ`` over a λ grid, on the cost range of the single LLMs, divided by its width.
    """
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    nbrs = np.argpartition(-sims, k, axis=1)[:, :k]
    qhat, chat = quality[nbrs].mean(axis=1), cost[nbrs].mean(axis=1)
    auc = np.mean([roc_auc_score(quality[:, j] > 0.5, qhat[:, j]) for j in range(quality.shape[1])])
    rows = np.arange(len(quality))
    points = []
    for lam in np.concatenate([[0.0], np.logspace(-1, 5, 80)]):
        pick = (qhat - lam * chat).argmax(axis=1)
        points.append((cost[rows, pick].mean(), quality[rows, pick].mean()))
    singles = cost.mean(axis=0)
    grid = np.linspace(singles.min(), singles.max(), 1000)
    envelope = [max((q for c, q in points if c <= g), default=0.0) for g in grid]
    return float(auc), float(np.mean(envelope))


def head_tail(model_embedder: StaticEmbedder, texts: list[str], head: int, tail: int) -> list[str]:
    """Keep the first ``head`` and last ``tail`` tokens of each text (by tokenizer offsets)."""
    tok = model_embedder._load().tokenizer
    tok.no_truncation()
    out = []
    for text, enc in zip(texts, tok.encode_batch(texts, add_special_tokens=False), strict=True):
        offs = enc.offsets
        if len(offs) <= head + tail:
            out.append(text)
        else:
            out.append(text[: offs[head - 1][1]] + " … " + text[offs[-tail][0] :])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", nargs="?", type=Path, default=CSV)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--models-dir", type=Path, help="reuse a distilled model here (no distil)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prompts, quality, cost, tasks = load(args.csv)
    rng = np.random.default_rng(0)
    sample = [prompts[i] for i in rng.choice(len(prompts), size=args.n, replace=False)]
    best_single = quality.mean(axis=0).max()
    log.info(
        "%d prompts (%d timed); best single LLM quality %.4f; oracle %.4f",
        len(prompts),
        args.n,
        best_single,
        quality.max(axis=1).mean(),
    )
    task_ids = {t: i for i, t in enumerate(sorted(set(tasks)))}
    onehot = np.eye(len(task_ids), dtype=np.float32)[[task_ids[t] for t in tasks]]
    single_points = list(zip(cost.mean(axis=0), quality.mean(axis=0), strict=True))
    grid = np.linspace(cost.mean(axis=0).min(), cost.mean(axis=0).max(), 1000)
    aiq_single = np.mean([max(q for c, q in single_points if c <= g) for g in grid])
    log.info("single LLMs only: aiq %.4f", aiq_single)
    log.info(
        "task label only (kNN within task): auc %.4f aiq %.4f", *knn_proxy(onehot, quality, cost)
    )

    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = args.models_dir or Path(tmp_dir)
        start = time.perf_counter()
        static = StaticEmbedder(cache_dir=Path(tmp), max_tokens=None)
        static.embed(["warm"])
        log.info(
            "static: first use (import, distil unless --models-dir, save, load) %.1f s",
            time.perf_counter() - start,
        )
        start = time.perf_counter()
        StaticEmbedder(cache_dir=Path(tmp)).embed(["warm"])
        log.info("static: load from cache %.2f s", time.perf_counter() - start)
        n_tokens = [len(e.ids) for e in static._load().tokenizer.encode_batch(prompts)]
        log.info(
            "tokens per prompt: median %d, p90 %d", np.median(n_tokens), np.percentile(n_tokens, 90)
        )
        for max_tokens in (None, 512, 256, 128, 64):
            e = StaticEmbedder(cache_dir=Path(tmp), max_tokens=max_tokens)
            batch = ms_per_query(e.embed, sample, one_by_one=False)
            single = ms_per_query(e.embed, sample[:200], one_by_one=True)
            auc, aiq = knn_proxy(e.embed(prompts), quality, cost)
            log.info(
                "static max_tokens=%s: %.3f ms/q batch, %.3f ms/q one by one; auc %.4f aiq %.4f",
                max_tokens,
                batch,
                single,
                auc,
                aiq,
            )
        for head, tail in ((64, 64), (128, 128)):
            e = StaticEmbedder(cache_dir=Path(tmp), max_tokens=None)
            cut = head_tail(e, prompts, head, tail)
            auc, aiq = knn_proxy(e.embed(cut), quality, cost)
            log.info("static head %d + tail %d tokens: auc %.4f aiq %.4f", head, tail, auc, aiq)

    minilm = SentenceEmbedder()
    start = time.perf_counter()
    minilm.embed(["warm"])
    log.info("minilm: import + load %.1f s", time.perf_counter() - start)
    batch = ms_per_query(minilm.embed, sample, one_by_one=False, repeats=1)
    single = ms_per_query(minilm.embed, sample[:50], one_by_one=True, repeats=1)
    auc, aiq = knn_proxy(minilm.embed(prompts), quality, cost)
    log.info(
        "minilm (256 tokens): %.2f ms/q batch, %.2f ms/q one by one; auc %.4f aiq %.4f",
        batch,
        single,
        auc,
        aiq,
    )
    hashing = HashingEmbedder()
    batch = ms_per_query(hashing.embed, sample, one_by_one=False)
    auc, aiq = knn_proxy(hashing.embed(prompts), quality, cost)
    log.info("hashing-256: %.3f ms/q batch; auc %.4f aiq %.4f", batch, auc, aiq)


if __name__ == "__main__":
    main()
