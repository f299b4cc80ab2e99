"""Many domains: does MixLLM's tag head help on RouterDC's six tasks × seven open LLMs, and
does the router beat the best single LLM by more than RouterDC's +2.76 points?

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/many_domains.py [--seeds 0-9] [--loto]
[--push] [--quick] [--out reports/many_domains]``; ``--routers "a;b"`` runs only those routers,
``--merge FILE`` joins an earlier run's routers (same seeds) for paired intervals, ``--show``
prints the tables of ``--out``'s ``ablation.json`` and ``push.json`` joined, ``--signal
[--embedder minilm]`` the within-task routing signal out of fold. The ablation took 71–404 s per
seed on 2 shared cores (17 routers), ``--push`` 90–211 s per seed.

Data: ``routerdc_split2`` (7,598 questions; scores in [0, 1]; one price for every LLM, so at
λ = 0 a router picks the LLM of highest predicted quality). Each seeded 80/20 split fits every
router on the training part (static embeddings, computed once and cached in ``$TMPDIR``) and
scores the test part by the recorded quality of the LLM it picks: per query (mean) and
task-averaged (mean over tasks of the per-task mean; ``avg5`` over RouterDC's in-distribution
tasks MMLU, GSM8K, CMMLU, ARC-C, HumanEval, as RouterDC reports; ``avg6`` adds ARC-E).
Intervals: 95% t-intervals over seeds of the paired per-split differences.

Tag sources for the tag head (``MixLLMPredictor(tagged=True)`` reads the training split's task
labels; each source replaces them, and scores still use the true tasks): task labels;
RouterDC's ``cluster_id`` (5 clusters on MMLU, CMMLU, ARC-C; ``none`` elsewhere) and task ×
cluster_id; KMeans on the embeddings at K = 8, 16, 32, 64; task labels refined by KMeans(8)
inside MMLU and CMMLU; character-n-gram TF-IDF topics (K = 32). These rows are the paper's
predictor (``task_prior=False``); "MixLLM default" is ``MixLLMPredictor()`` with the task
labels: the tag head and the task prior blended into its quality predictions. ``--loto``:
train on five tasks, test on the sixth (paired bootstrap over the held-out queries). ``--push``: the
prototypes of ``benchmarks/_many_domains_push.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import _many_domains_core as core  # the sibling module: run as a script
from _many_domains_core import F32, F64, SHORT, Data, batch, with_tags
from mixllm.data import Dataset

Tags = Callable[[Data, np.ndarray, int], list[str] | None]  # (data, train rows, seed) -> tags


def _mixllm(tags: Tags, **kwargs: object) -> Callable[[Data, np.ndarray, int], core.Router]:
    def make(data: Data, tr: np.ndarray, seed: int) -> core.Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            from mixllm.policy import MixLLMPredictor

            labels = tags(data, tr, seed)
            p = MixLLMPredictor(tagged=labels is not None or kwargs.get("tagged", True),
                                task_prior=bool(kwargs.get("task_prior", False)),
                                seed=seed)  # fmt: skip
            p.fit(with_tags(train, labels), batch(train, xtr))
            return p.predict(batch(test, xte), uncertainty=False).quality

        return run

    return make


def _plain(kind: str) -> Callable[[Data, np.ndarray, int], core.Router]:
    def make(data: Data, tr: np.ndarray, seed: int) -> core.Router:
        def run(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
            from mixllm.policy import KNNPredictor, LogisticPredictor, MatrixFactorizationPredictor

            cls = {"knn": KNNPredictor, "logistic": LogisticPredictor,
                   "mf": MatrixFactorizationPredictor}[kind]  # fmt: skip
            p = cls(seed=seed).fit(train, batch(train, xtr))
            return p.predict(batch(test, xte)).quality

        return run

    return make


def best_single(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
    return np.tile(np.nanmean(train.quality, axis=0), (len(test), 1))


def task_label(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
    """Each test query's true task → that task's best LLM on the training split."""
    from mixllm.policy.task_best import TaskBestPredictor

    p = TaskBestPredictor().fit(train, batch(train, xtr))
    return p.predict_tasks(batch(test, xte), [str(t) for t in test.tasks]).quality


def task_centroid(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
    """The task-label router told no task: nearest training task centroid."""
    from mixllm.policy.task_best import TaskBestPredictor

    return TaskBestPredictor().fit(train, batch(train, xtr)).predict(batch(test, xte)).quality


def oracle(train: Dataset, xtr: F32, test: Dataset, xte: F32) -> F64:
    return np.asarray(test.quality, dtype=np.float64)


def _fixed(router: core.Router) -> Callable[[Data, np.ndarray, int], core.Router]:
    return lambda data, tr, seed: router


def _task_tags(data: Data, tr: np.ndarray, seed: int) -> list[str]:
    return [str(t) for t in data.ds.tasks[tr]]


def _kmeans(k: int) -> Tags:
    return lambda data, tr, seed: core.kmeans_tags(data.x[tr], k, seed)


ROUTERS: dict[str, Callable[[Data, np.ndarray, int], core.Router]] = {
    "oracle": _fixed(oracle),
    "best single LLM": _fixed(best_single),
    "task-label router": _fixed(task_label),
    "task-centroid router": _fixed(task_centroid),
    "MixLLM untagged": _mixllm(lambda d, tr, s: None, tagged=False),
    "MixLLM tags: task labels": _mixllm(_task_tags),
    "MixLLM default (task labels + task prior)": _mixllm(_task_tags, task_prior=True),
    "MixLLM tags: cluster_id": _mixllm(
        lambda d, tr, s: core.cluster_tags(d.cluster_id[tr], _task_tags(d, tr, s))
    ),
    "MixLLM tags: task × cluster_id": _mixllm(
        lambda d, tr, s: [
            t if c is None else f"{t}/c{c}" for t, c in zip(_task_tags(d, tr, s), d.cluster_id[tr])
        ]
    ),
    **{f"MixLLM tags: KMeans {k}": _mixllm(_kmeans(k)) for k in (8, 16, 32, 64)},
    "MixLLM tags: task + KMeans 8 in MMLU/CMMLU": _mixllm(
        lambda d, tr, s: core.within_task_tags(
            d.x[tr], _task_tags(d, tr, s), s, 8, ("mmlu_train", "cmmlu_train")
        )
    ),
    "MixLLM tags: TF-IDF topics 32": _mixllm(
        lambda d, tr, s: core.tfidf_tags(list(d.ds.prompts[tr]), 32, s)
    ),
    "kNN": _plain("knn"),
    "logistic": _plain("logistic"),
    "MF": _plain("mf"),
}
QUICK = ("oracle", "best single LLM", "task-label router", "MixLLM untagged",
         "MixLLM tags: task labels", "kNN")  # fmt: skip


def run_split(data: Data, seed: int, names: list[str]) -> dict[str, dict[str, float]]:
    tr, te = core.split(len(data.ds), seed)
    train, test = data.ds.subset(tr), data.ds.subset(te)
    out = {}
    for name in names:
        started = time.perf_counter()
        router = ROUTERS[name](data, tr, seed)
        q = router(train, data.x[tr], test, data.x[te])
        out[name] = core.summary(test, core.realised(test, q))
        out[name]["seconds"] = time.perf_counter() - started
    return out


def print_tables(runs: list[dict[str, dict[str, float]]], base: str, ref: str) -> None:
    names = list(runs[0])
    n = len(runs)
    print(f"\n{n} seeds; quality ×100; Δ: paired 95% t-interval over seeds\n")
    print(f"| router | mean | avg5 | avg6 | Δ mean vs {base} | Δ avg5 vs {base} "
          f"| Δ mean vs {ref} | Δ avg5 vs {ref} | fit s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:

        def d(key: str, other: str, name: str = name) -> str:
            return core.fmt(*core.interval([r[name][key] - r[other][key] for r in runs]))

        m = {k: np.mean([r[name][k] for r in runs]) for k in ("mean", "task-avg5", "task-avg")}
        secs = np.mean([r[name]["seconds"] for r in runs])
        print(f"| {name} | {100 * m['mean']:.2f} | {100 * m['task-avg5']:.2f} "
              f"| {100 * m['task-avg']:.2f} | {d('mean', base)} | {d('task-avg5', base)} "
              f"| {d('mean', ref)} | {d('task-avg5', ref)} | {secs:.1f} |")  # fmt: skip
    tasks = sorted(k for k in runs[0][names[0]] if k.startswith("task:"))
    print(f"\nPer task (mean ×100 over seeds; Δ vs {ref} with its interval)\n")
    print("| router | " + " | ".join(SHORT[t[5:]] for t in tasks) + " |")
    print("|---|" + "---|" * len(tasks))
    for name in names:
        cells = []
        for t in tasks:
            v = np.mean([r[name][t] for r in runs])
            ci = core.fmt(*core.interval([r[name][t] - r[ref][t] for r in runs]))
            cells.append(f"{100 * v:.1f} ({ci})")
        print(f"| {name} | " + " | ".join(cells) + " |")


# -- leave one task out ------------------------------------------------------------------------
LOTO = ("oracle", "best single LLM", "task-centroid router", "MixLLM untagged",
        "MixLLM tags: task labels", "MixLLM tags: KMeans 16", "kNN", "logistic")  # fmt: skip


def loto(data: Data, names: tuple[str, ...], resamples: int = 1000) -> None:
    tasks = data.ds.tasks.astype(str)
    print("\nLeave one task out: train on five tasks, test on the sixth (quality ×100; "
          "Δ vs best single LLM of the five, paired bootstrap 95%)\n")  # fmt: skip
    print("| held-out task | n | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for task in data.ds.task_names:
        tr, te = np.flatnonzero(tasks != task), np.flatnonzero(tasks == task)
        train, test = data.ds.subset(tr), data.ds.subset(te)
        got = {}
        for name in names:
            q = ROUTERS[name](data, tr, 0)(train, data.x[tr], test, data.x[te])
            got[name] = core.realised(test, q)
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(te), (resamples, len(te)))
        cells = []
        for name in names:
            diff = got[name] - got["best single LLM"]
            boot = diff[idx].mean(axis=1)
            lo, hi = np.quantile(boot, [0.025, 0.975])
            cells.append(f"{100 * got[name].mean():.1f} ({core.fmt(diff.mean(), lo, hi)})")
        print(f"| {SHORT[task]} | {len(te)} | " + " | ".join(cells) + " |")


def seeds_arg(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0-9", help="e.g. 0-9 or 0,3,5")
    ap.add_argument("--quick", action="store_true", help="2 seeds, fewer routers")
    ap.add_argument("--loto", action="store_true", help="also leave one task out")
    ap.add_argument("--push", action="store_true", help="the push prototypes, not the ablation")
    ap.add_argument("--routers", default=None, help="router names to run, separated by ;")
    ap.add_argument("--show", action="store_true", help="print the tables of --out's JSON files")
    ap.add_argument("--signal", action="store_true", help="within-task signal only")
    ap.add_argument("--embedder", default="static", help="embedder spec (default static)")
    ap.add_argument("--merge", type=Path, default=None, help="add the runs of an earlier JSON")
    ap.add_argument("--out", type=Path, default=Path("reports/many_domains"))
    args = ap.parse_args()
    seeds = [0, 1] if args.quick else seeds_arg(args.seeds)
    if args.show:  # the ablation's and the push's runs joined by seed
        by_seed: dict[int, dict[str, dict[str, float]]] = {}
        for tag in ("ablation", "push"):
            if (args.out / f"{tag}.json").exists():
                saved = json.loads((args.out / f"{tag}.json").read_text())
                for s, r in zip(saved["seeds"], saved["runs"]):
                    by_seed.setdefault(s, {}).update(r)
        common = [r for r in by_seed.values() if set(r) == set.union(*map(set, by_seed.values()))]
        print_tables(common, "MixLLM untagged", "task-label router")
        return
    data = core.load(args.embedder)
    if args.signal:
        import _many_domains_push as push

        push.signal(data.ds, data.x)
        return
    if args.push:
        import _many_domains_push as push

        ROUTERS.update(push.ROUTERS)
        names = ["best single LLM", "task-label router", *push.DEFAULT]
    else:
        names = list(QUICK if args.quick else ROUTERS)
    if args.routers:
        names = args.routers.split(";")
    print(f"routerdc_split2: {len(data.ds)} queries, {len(data.ds.llms)} LLMs, "
          f"{len(data.ds.task_names)} tasks; static embeddings; seeds {seeds}")  # fmt: skip
    runs = []
    for seed in seeds:
        started = time.perf_counter()
        runs.append(run_split(data, seed, names))
        print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "push" if args.push else "ablation"
    (args.out / f"{tag}.json").write_text(json.dumps({"seeds": seeds, "runs": runs}))
    if args.merge:  # same seeds: the earlier routers join these runs for paired intervals
        earlier = json.loads(args.merge.read_text())
        by_seed = dict(zip(earlier["seeds"], earlier["runs"]))
        runs = [{**by_seed[s], **r} for s, r in zip(seeds, runs)]
    ref = "task-label router"
    print_tables(runs, "MixLLM untagged", ref)
    if args.loto:
        loto(data, LOTO)


if __name__ == "__main__":
    main()
