"""Quality and length predictors on the RouterBench subset: CV choice, test accuracy, speed.

Run: ``python benchmarks/predict_models.py [--data PATH] [--n-jobs 2]``. Prints markdown tables:
per kind the train-split CV Brier score, test Brier / AUC / ECE (mean over LLMs), fit time and
predict time (one query; a batch of 500, per query); per LLM test Brier and AUC; predicted
against recorded cost (mean-length baseline against the length regressors); bonus speed.
All numbers come from one run on one machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from mixllm.data import load_dataset, split_random
from mixllm.embed import make_embedder
from mixllm.predict import (
    LengthModel,
    MeanLengthCostModel,
    QualityModel,
    UncertaintyModel,
    brier_score,
    cost_errors,
    cost_from_tokens,
    expected_calibration_error,
)

DEFAULT_DATA = "../shared/data/routerbench/routerbench_0shot_subset.csv"


def per_query_ms(fn: Callable[[], Any], n_rows: int, repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` calls, per row, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / n_rows * 1e3


def auc(pred: np.ndarray, quality: np.ndarray) -> np.ndarray:
    out = []
    for j in range(quality.shape[1]):
        seen = np.isfinite(quality[:, j])
        y = quality[seen, j] > 0.5
        out.append(roc_auc_score(y, pred[seen, j]) if 0 < y.sum() < len(y) else np.nan)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--n-jobs", type=int, default=1)
    args = parser.parse_args()
    ds = load_dataset(args.data)
    train, test = split_random(ds, seed=0)
    embedder = make_embedder("static")
    x_tr, x_te = embedder.embed(list(train.prompts)), embedder.embed(list(test.prompts))
    short = [m.split("/")[-1][:18] for m in ds.llms]
    print(f"{ds.name}: {len(train)} train / {len(test)} test queries, {ds.n_llms} LLMs, "
          f"embedder {embedder.name} (dim {x_tr.shape[1]})\n")  # fmt: skip

    print("## Quality (Brier: lower is better; CV on the train split, rest on test)\n")
    print(
        "| kind | CV Brier | test Brier | test AUC | test ECE | fit s | 1 query ms | batch ms/q |"
    )
    print("|---|---|---|---|---|---|---|---|")
    per_llm: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    cv_auto: dict[str, float] = {}
    for kind in ("auto", "auto/llm", "rf", "logistic", "hgb", "knn"):
        select = "llm" if kind.endswith("/llm") else "dataset"
        start = time.perf_counter()
        model = QualityModel(kind.split("/")[0], select=select, n_jobs=args.n_jobs)
        model.fit(x_tr, train.quality)
        fit_s = time.perf_counter() - start
        pred = model.predict(x_te)
        brier, aucs = brier_score(pred, test.quality), auc(pred, test.quality)
        per_llm[kind] = (brier, aucs)
        ece = expected_calibration_error(pred, test.quality)
        one = per_query_ms(partial(model.predict, x_te[:1]), 1, 200)
        batch = per_query_ms(partial(model.predict, x_te[:500]), 500, 5)
        if kind == "auto":
            cv_auto = {k: float(np.nanmean(s)) for k, s in model.cv_scores_.items()}
        used = [model.cv_scores_[k][j] for j, k in enumerate(model.kinds_) if k != "constant"]
        label = f"{kind} → {model.kind_}" if kind == "auto" else kind
        if select == "llm":
            label = f"{kind} → {sorted(set(model.kinds_))}"
        cells = [f"{np.nanmean(used):.4f}", f"{np.nanmean(brier):.4f}", f"{np.nanmean(aucs):.3f}",
                 f"{ece:.4f}", f"{fit_s:.1f}", f"{one:.3f}", f"{batch:.4f}"]  # fmt: skip
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(f"\nCV Brier per kind (auto, mean over LLMs): {cv_auto}\n")
    prior = np.nanmean(train.quality, axis=0)
    base = brier_score(np.broadcast_to(prior, test.quality.shape), test.quality)
    print(f"| prior (train mean per LLM) | | {np.nanmean(base):.4f} | 0.500 | | | | |\n")

    print("### Per LLM test Brier / AUC\n")
    kinds = ["rf", "logistic", "hgb", "knn"]
    print("| LLM | " + " | ".join(kinds) + " |\n|---|" + "---|" * len(kinds))
    for j, name in enumerate(short):
        cells = [f"{per_llm[k][0][j]:.3f} / {per_llm[k][1][j]:.3f}" for k in kinds]
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\n## Output length → cost (test split)\n")
    price_in = np.array([ds.llm(m).price_in_per_mtok for m in ds.llms])
    price_out = np.array([ds.llm(m).price_out_per_mtok for m in ds.llms])
    baseline = MeanLengthCostModel().fit(train).predict(test.prompt_tokens)
    rows = {"mean-length baseline": cost_errors(baseline, test.cost_usd, ds.llms)}
    print("| kind | CV MAE tokens (auto) | test MAE tokens | fit s | 1 query ms |")
    print("|---|---|---|---|---|")
    cv_len: dict[str, float] = {}
    for kind in ("auto", "mean", "ridge", "hgb", "knn"):
        start = time.perf_counter()
        lm = LengthModel(kind).fit(x_tr, train.prompt_tokens, train.output_tokens)
        fit_s = time.perf_counter() - start
        tokens = lm.predict(x_te, test.prompt_tokens)
        seen = np.isfinite(test.output_tokens)
        mae = np.abs(tokens - test.output_tokens)[seen].mean()
        cost = cost_from_tokens(test.prompt_tokens, tokens, price_in, price_out)
        rows[f"LengthModel({kind})"] = cost_errors(cost, test.cost_usd, ds.llms)
        one = per_query_ms(partial(lm.predict, x_te[:1], test.prompt_tokens[:1]), 1, 200)
        if kind == "auto":
            cv_len = {k: float(np.nanmean(s)) for k, s in lm.cv_scores_.items()}
        label = f"auto → {lm.kind_}" if kind == "auto" else kind
        print(f"| {label} | {cv_len[lm.kind_]:.2f} | {mae:.2f} | {fit_s:.1f} | {one:.3f} |")
    print("\nCost MAE (micro-USD) / median relative error, per LLM:\n")
    print("| LLM | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows))
    for j, name in enumerate(short):
        cells = [f"{r[j].mae_usd * 1e6:.1f} / {r[j].median_rel_error:.3f}" for r in rows.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    means = [
        f"{np.mean([e.mae_usd for e in r]) * 1e6:.1f} / "
        f"{np.mean([e.median_rel_error for e in r]):.3f}"
        for r in rows.values()
    ]
    print("| **mean** | " + " | ".join(means) + " |")

    um = UncertaintyModel().fit(x_tr, np.isfinite(train.quality))
    one = per_query_ms(lambda: um.bonus(x_te[:1]), 1, 200)
    batch = per_query_ms(lambda: um.bonus(x_te[:500]), 500, 5)
    upd = per_query_ms(lambda: um.update(0, x_te[0]), 1, 200)
    print(f"\nUncertainty bonus: {one:.3f} ms for one query, {batch:.4f} ms/query in a batch of "
          f"500; one Sherman–Morrison update {upd:.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
