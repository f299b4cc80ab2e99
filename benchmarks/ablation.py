"""Ablation of the MixLLM router on the RouterBench subset (seeded 80/20 split, same harness).

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ablation.py [--out reports/ablation]
[--embedders static,minilm] [--alpha 0.05]``. Rows: the full router; without the tag-enhanced
features; without the uncertainty bonus (α = 0, the router's default); each quality predictor
(random forest as in the paper, logistic, gradient boosting, kNN, chosen by CV); per embedder.
Writes one report per embedder (report.md with intervals) and prints the AIQ table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mixllm import load_dataset, split_random
from mixllm.embed import make_embedder
from mixllm.evaluate import evaluate, write_report
from mixllm.policy import MixLLMPredictor

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))


def variants() -> list[MixLLMPredictor]:
    out = []
    for name, kwargs in [
        ("mixllm", {}),
        ("mixllm-untagged", {"tagged": False}),
        ("mixllm-q:rf", {"quality": "rf"}),
        ("mixllm-q:hgb", {"quality": "hgb"}),
        ("mixllm-q:knn", {"quality": "knn"}),
        ("mixllm-q:auto", {"quality": "auto"}),
    ]:
        predictor = MixLLMPredictor(**kwargs)  # type: ignore[arg-type]
        predictor.name = name
        out.append(predictor)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("reports/ablation"))
    ap.add_argument("--embedders", default="static,minilm")
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args()
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    train, test = split_random(ds, seed=0)
    for spec in args.embedders.split(","):
        emb = make_embedder(spec)
        for alpha in (args.alpha, 0.0):
            routers = variants() if alpha == 0.0 else variants()[:1]
            report = evaluate(
                train, test, routers=["knn", "logistic", *routers], embedder=emb, alpha=alpha
            )
            out = args.out / f"{spec}-alpha{alpha:g}"
            write_report(report, out)
            for row in report.rows:
                if row.kind != "single":
                    print(f"{spec:7} alpha={alpha:<5g} {row.name:16} AIQ {row.aiq}")


if __name__ == "__main__":
    main()
