"""Does the tag-enhanced embedding head (MixLLM §3.1) help routing? One run, one machine.

Run: ``.venv/bin/python benchmarks/tagged_projection.py [--data routerbench|routellm-mmlu|PATH]
[--predictors knn,logistic,mlp] [--seeds 0,1,2] [--speed] [--finetune [--device cuda]]``.

For each seeded 80/20 split: static embeddings of train and test; :class:`DomainProjection`
fitted on the training rows (task labels, or KMeans clusters); then per variant the cosine
silhouette of the test rows by task (domain separation) and, for each predictor fitted on the
training rows, the per-LLM Brier score and AUC of its predicted quality against the recorded
quality on the test rows (means over LLMs, then over seeds; ΔAUC against the raw input).
``--speed`` also times a fit on 30,000 × 384 synthetic rows. ``--finetune`` (first seed only;
meant for a GPU: on a 2-core CPU one MiniLM step on 32 RouterBench prompts took ~30 s) compares
MiniLM before and after :func:`finetune_encoder` on the training prompts and their tasks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score, silhouette_score

from mixllm.data import Dataset, load_dataset
from mixllm.embed import DomainProjection, SentenceEmbedder, finetune_encoder, make_embedder
from mixllm.embed.sentence import minilm_path
from mixllm.policy import KNNPredictor, LogisticPredictor, MLPPredictor
from mixllm.policy.state import BasePredictor
from mixllm.types import QueryBatch

DATA = Path(__file__).resolve().parents[2] / "shared/data"
CSV = DATA / "routerbench/routerbench_0shot_subset.csv"
PREDICTORS: dict[str, Callable[[], BasePredictor]] = {
    "knn": lambda: KNNPredictor(seed=0),
    "logistic": lambda: LogisticPredictor(seed=0),
    "mlp": lambda: MLPPredictor(seed=0),
}
# name -> (DomainProjection keywords or None for the raw input, use task labels)
VARIANTS: dict[str, tuple[dict[str, float] | None, bool]] = {
    "raw input": (None, True),
    "PCA start + input (untrained)": ({"epochs": 0, "input_weight": 1.0}, True),
    "head alone, labels (paper)": ({"input_weight": 0.0}, True),
    "head alone, KMeans": ({"input_weight": 0.0}, False),
    "head + input, labels (default)": ({"input_weight": 1.0}, True),
    "head + input, KMeans": ({"input_weight": 1.0}, False),
}
F32 = NDArray[np.float32]


def batch(ds: Dataset, x: F32) -> QueryBatch:
    return QueryBatch(tuple(str(q) for q in ds.query_ids), tuple(ds.prompts), x, ds.prompt_tokens)


def quality_scores(name: str, train: Dataset, test: Dataset, ztr: F32, zte: F32) -> list[float]:
    """Mean per-LLM Brier score and AUC of a predictor's quality on the test rows."""
    pred = PREDICTORS[name]().fit(train, batch(train, ztr)).predict(batch(test, zte)).quality
    briers, aucs = [], []
    for j in range(test.quality.shape[1]):
        seen = np.isfinite(test.quality[:, j])
        y, p = test.quality[seen, j], pred[seen, j]
        briers.append(float(np.mean((p - y) ** 2)))
        if len(np.unique(y > 0.5)) == 2:
            aucs.append(float(roc_auc_score(y > 0.5, p)))
    return [float(np.mean(briers)), float(np.mean(aucs))]


def run_split(ds: Dataset, emb: F32, seed: int, predictors: list[str]) -> dict[str, list[float]]:
    """Per variant: [silhouette, fit seconds, n domains, (Brier, AUC) per predictor]."""
    order = np.random.default_rng(seed).permutation(len(ds))
    n_test = round(0.2 * len(ds))
    te, tr = np.sort(order[:n_test]), np.sort(order[n_test:])
    train, test = ds.subset(tr), ds.subset(te)
    tasks_tr = [str(t) for t in train.tasks]
    out: dict[str, list[float]] = {}
    for variant, (kwargs, labelled) in VARIANTS.items():
        started = time.perf_counter()
        if kwargs is None:
            ztr, zte, n_domains = emb[tr], emb[te], 0
        else:
            head = DomainProjection(**kwargs, seed=seed)  # type: ignore[arg-type]
            ztr = head.fit_transform(emb[tr], tasks_tr if labelled else None)
            zte, n_domains = head.transform(emb[te]), len(head.domains_)
        seconds = time.perf_counter() - started
        sil = float(silhouette_score(zte, test.tasks.astype(str), metric="cosine"))
        row = [sil, seconds, float(n_domains)]
        for name in predictors:
            row += quality_scores(name, train, test, ztr, zte)
        out[variant] = row
    return out


def finetune_rows(
    ds: Dataset, seed: int, predictors: list[str], device: str | None
) -> dict[str, list[float]]:
    """Like :func:`run_split` for MiniLM as bundled and MiniLM fine-tuned on the train split."""
    order = np.random.default_rng(seed).permutation(len(ds))
    n_test = round(0.2 * len(ds))
    te, tr = np.sort(order[:n_test]), np.sort(order[n_test:])
    train, test = ds.subset(tr), ds.subset(te)
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        tuned = finetune_encoder(
            minilm_path(), list(train.prompts), [str(t) for t in train.tasks], Path(tmp) / "m",
            device=device, seed=seed,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        for variant, model, fit_s in (
            ("MiniLM", None, 0.0),
            ("MiniLM fine-tuned", str(tuned), seconds),
        ):
            emb = SentenceEmbedder(model, device=device or "cpu").embed(list(ds.prompts))
            sil = float(silhouette_score(emb[te], test.tasks.astype(str), metric="cosine"))
            row = [sil, fit_s, float(len(ds.task_names))]
            for name in predictors:
                row += quality_scores(name, train, test, emb[tr], emb[te])
            out[variant] = row
    return out


def speed(n: int = 30_000, d: int = 384) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 20, n)
    x = (0.3 * rng.standard_normal((20, d))[labels] + rng.standard_normal((n, d))).astype(
        np.float32
    )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"d{v}" for v in labels]
    for what, kwargs, domains in (
        ("labels (20 domains)", {}, names),
        ("KMeans n_clusters=16", {"n_clusters": 16}, None),
        ("KMeans auto", {}, None),
    ):
        started = time.perf_counter()
        head = DomainProjection(**kwargs).fit(x, domains)  # type: ignore[arg-type]
        print(
            f"fit {n} x {d}, {what}: {time.perf_counter() - started:.2f} s "
            f"({len(head.domains_)} domains, loss {head.loss_history_[0]:.3f} → "
            f"{head.loss_history_[-1]:.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(CSV), help="a file or a named set")
    parser.add_argument("--predictors", default="knn", help="comma list of knn,logistic,mlp")
    parser.add_argument("--seeds", default="0", help="comma list of split seeds")
    parser.add_argument("--speed", action="store_true", help="also time a 30k x 384 fit")
    parser.add_argument("--finetune", action="store_true", help="also fine-tune MiniLM (GPU)")
    parser.add_argument("--device", default=None, help="torch device for --finetune")
    args = parser.parse_args()
    predictors = args.predictors.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    ds = load_dataset(args.data, environ={"MIXLLM_DATA_DIR": str(DATA)})
    emb = make_embedder("static").embed(list(ds.prompts))
    print(
        f"{ds.name}: {len(ds)} queries, {len(ds.llms)} LLMs, {len(ds.task_names)} tasks; "
        f"static embeddings {emb.shape[1]}-d; seeds {seeds}"
    )
    runs = [run_split(ds, emb, s, predictors) for s in seeds]
    header = f"{'variant':32s} {'domains':>7s} {'fit s':>6s} {'silh.':>6s}"
    header += "".join(f" {p + ' Brier':>12s} {p + ' AUC':>9s} {'ΔAUC':>7s}" for p in predictors)
    print(header)
    if args.finetune:
        tuned = finetune_rows(ds, seeds[0], predictors, args.device)
        runs = [{**r, **tuned} for r in runs]  # seed 0 only: shown beside the mean of all seeds
    raw = np.mean([r["raw input"] for r in runs], axis=0)
    for variant in runs[0]:
        m = np.mean([r[variant] for r in runs], axis=0)
        ref = np.mean([r["MiniLM"] for r in runs], axis=0) if "MiniLM" in variant else raw
        line = f"{variant:32s} {m[2]:7.0f} {m[1]:6.2f} {m[0]:6.3f}"
        for i in range(len(predictors)):
            brier, auc = m[3 + 2 * i], m[4 + 2 * i]
            line += f" {brier:12.4f} {auc:9.4f} {auc - ref[4 + 2 * i]:+7.4f}"
        print(line)
    if args.speed:
        speed()


if __name__ == "__main__":
    main()
