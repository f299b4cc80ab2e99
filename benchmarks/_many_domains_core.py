"""Shared parts of ``benchmarks/many_domains.py``: RouterDC's data with its embeddings, tag
sources, routers as fit-and-predict functions, scoring per task and paired intervals."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mixllm.data import Dataset
from mixllm.data.routerdc import load_routerdc
from mixllm.types import LLM, QueryBatch

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
FOLDER = DATA / "routerdc_split2"
#: RouterDC's in-distribution test tasks (arc_easy is trained on, not tested).
ROUTERDC_TASKS = ("mmlu_train", "gsm8k-train", "cmmlu_train", "arc_challenge_train",
                  "humaneval_train")  # fmt: skip
SHORT = {"mmlu_train": "MMLU", "gsm8k-train": "GSM8K", "cmmlu_train": "CMMLU",
         "arc_challenge_train": "ARC-C", "humaneval_train": "HumanEval",
         "arc_easy_train": "ARC-E"}  # fmt: skip
F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
#: fit on (train, its embeddings), predict quality (n_test, L) for (test, its embeddings).
#: ``test.tasks`` is only read by routers that are told the task (the task-label router).
Router = Callable[[Dataset, F32, Dataset, F32], F64]


@dataclass(frozen=True)
class Data:
    ds: Dataset
    x: F32  # static embeddings, unit rows
    cluster_id: NDArray[np.object_]  # RouterDC's cluster_id, None where absent


def load(embedder: str = "static") -> Data:
    """RouterDC's split2 files, one price for all LLMs, embeddings cached on disk once."""
    ds = load_routerdc(FOLDER)
    ds = ds.with_prices({m: LLM(m, 0.2, 0.2) for m in ds.llms})
    clusters: list[object] = []
    for f in sorted(FOLDER.glob("*.json")):
        clusters += [item.get("cluster_id") for item in json.loads(f.read_text("utf-8"))]
    return Data(ds, embed(list(ds.prompts), embedder), np.array(clusters, dtype=object))


def embed(texts: Sequence[str], spec: str) -> F32:
    key = hashlib.sha256(("\0".join(texts) + spec).encode()).hexdigest()[:16]
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"mixllm-many-domains-{spec}-{key}.npy"
    if path.exists():
        return np.load(path)  # type: ignore[no-any-return]
    from mixllm.embed import make_embedder

    x = make_embedder(spec).embed(list(texts)).astype(np.float32)
    np.save(path, x)
    return x


def batch(ds: Dataset, x: F32) -> QueryBatch:
    return QueryBatch(tuple(str(q) for q in ds.query_ids), tuple(ds.prompts), x, ds.prompt_tokens)


def split(n: int, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Train and test rows of the seeded 80/20 split (the same as ``split_random``)."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(0.2 * n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def with_tags(ds: Dataset, tags: Sequence[str] | None) -> Dataset:
    """``ds`` whose task labels are ``tags`` (what the tag head reads); ``None``: no labels."""
    labels = [None] * len(ds) if tags is None else list(tags)
    return replace(ds, tasks=np.array(labels, dtype=object))


# -- scores ------------------------------------------------------------------------------------
def realised(test: Dataset, quality_pred: F64) -> F64:
    """Recorded quality of the LLM with the highest predicted quality, per test query."""
    pick = np.argmax(quality_pred, axis=1)
    return np.asarray(test.quality[np.arange(len(test)), pick], dtype=np.float64)


def summary(test: Dataset, got: F64) -> dict[str, float]:
    """Mean quality, task-averaged over all tasks and over RouterDC's five, per task."""
    tasks = test.tasks.astype(str)
    out = {"mean": float(got.mean())}
    per = {t: float(got[tasks == t].mean()) for t in sorted(set(tasks))}
    out.update({f"task:{t}": v for t, v in per.items()})
    out["task-avg"] = float(np.mean(list(per.values())))
    five = [per[t] for t in ROUTERDC_TASKS if t in per]
    out["task-avg5"] = float(np.mean(five)) if len(five) == len(ROUTERDC_TASKS) else float("nan")
    return out


def interval(diffs: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds of paired differences."""
    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    m = float(d.mean())
    if len(d) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return m, m - half, m + half


def fmt(m: float, lo: float, hi: float, scale: float = 100.0) -> str:
    if not np.isfinite(lo):
        return f"{scale * m:+.2f}"
    return f"{scale * m:+.2f} [{scale * lo:+.2f}, {scale * hi:+.2f}]"


# -- tag sources -------------------------------------------------------------------------------
def kmeans_tags(x: F32, k: int, seed: int) -> list[str]:
    from sklearn.cluster import KMeans

    labels = KMeans(k, n_init=3, random_state=seed).fit_predict(x)
    return [f"k{v}" for v in labels]


def within_task_tags(
    x: F32, tasks: Sequence[str], seed: int, k: int = 8, split_tasks: Sequence[str] = ()
) -> list[str]:
    """Task label, refined by KMeans (``k``) inside each task of ``split_tasks``."""
    from sklearn.cluster import KMeans

    out = [str(t) for t in tasks]
    arr = np.asarray(out, dtype=object)
    for t in split_tasks:
        rows = np.flatnonzero(arr == t)
        if len(rows) > 2 * k:
            lab = KMeans(k, n_init=3, random_state=seed).fit_predict(x[rows])
            for r, v in zip(rows.tolist(), lab.tolist()):
                out[r] = f"{t}/{v}"
    return out


def tfidf_tags(prompts: Sequence[str], k: int, seed: int) -> list[str]:
    """KMeans topics of character 2–4-gram TF-IDF (works for English and Chinese alike)."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), max_features=50_000,
                         sublinear_tf=True).fit_transform(prompts)  # fmt: skip
    z = TruncatedSVD(128, random_state=seed).fit_transform(tf)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-9)
    lab = MiniBatchKMeans(k, n_init=3, random_state=seed).fit_predict(z)
    return [f"t{v}" for v in lab]


def cluster_tags(cluster_id: Sequence[object], tasks: Sequence[str]) -> list[str]:
    """RouterDC's ``cluster_id`` where an item has one, else ``none`` (as RouterDC would see)."""
    return ["none" if c is None else f"c{c}" for c, _ in zip(cluster_id, tasks)]
