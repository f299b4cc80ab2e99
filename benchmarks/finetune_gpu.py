"""Fine-tune the sentence encoder on task labels (MixLLM §3.1) on a GPU, then score it here.

Two modes:

``train`` runs on a GPU machine with plain ``python3`` (torch, sentence-transformers, numpy,
pandas, scikit-learn, scipy; no venv, no network) from the repository root::

    PYTHONPATH=src python3 benchmarks/finetune_gpu.py train --data .gpu/routerbench.csv \
        --model .gpu/model --out $OUT [--epochs 3] [--batch-size 64] [--lr 2e-5] [--limit N] \
        [--keep end|start]

It splits the data as every benchmark does (``split_random(ds, seed=0)``), fine-tunes
``--model`` with :func:`mixllm.embed.finetune.finetune_encoder` on the training prompts and
their task labels, embeds *all* prompts (dataset order) with the frozen and the fine-tuned
model, and writes ``frozen.npy`` and ``tuned.npy`` (float16, (n_prompts, dim)) and ``run.json``
(device, settings, timings, per-epoch mean loss) to ``--out``. ``--limit N`` fine-tunes on a
seeded random N of the training prompts only (a CPU smoke test). ``--model`` may hold float16
weights; they are cast to float32 before training.

``--keep end`` (default) cuts prompts longer than the model's ``max_seq_length`` (256 word pieces
for MiniLM) from the left, keeping the end, in fine-tuning and embedding alike: the arc-challenge
and winogrande prompts of the RouterBench subset open with the same few-shot examples, longer
than 256 word pieces, so when the start is kept every prompt of those tasks embeds to the same
vector. With ``--keep end`` the frozen model is also run keeping the start, as ``sentence``/
``minilm`` embedders do, into ``frozen_start.npy``.

``evaluate`` runs here on a CPU::

    .venv/bin/python benchmarks/finetune_gpu.py evaluate \
        --data ../shared/data/routerbench/routerbench_0shot_subset.csv --embeddings DIR

It fits ``mixllm`` and ``knn`` routers on the seed-0 training split with each set of saved
vectors (``frozen_start`` too, if saved), and prints a markdown table: test AIQ with 95%
bootstrap intervals (replayed as in ``benchmarks/truncation.py``), the paired tuned − frozen
difference, and the silhouette (cosine) of the embeddings grouped by task, on the test and on
the training split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from mixllm import DataError, Router, load_dataset, split_random
from mixllm import evaluate as ev
from mixllm.data import Dataset
from mixllm.evaluate.replay import filled_costs

ROUTERS = ("mixllm", "knn")


def split_ids(train: Dataset) -> str:
    return hashlib.sha256("\n".join(str(q) for q in train.query_ids).encode()).hexdigest()


def approximate_tokens_if_needed() -> bool:
    """Without bpe-openai or tiktoken, count tokens as ~4 characters (costs only; unused here)."""
    for name in ("bpe_openai", "tiktoken"):
        try:
            __import__(name)
            return False
        except ImportError:
            pass

    class Approx:
        def encode_ordinary(self, text: str) -> list[int]:
            return [0] * (len(text) // 4 + 1)

    stub, encoding = types.ModuleType("tiktoken"), Approx()
    stub.get_encoding = lambda name: encoding  # type: ignore[attr-defined]
    sys.modules["tiktoken"] = stub
    return True


def train(args: argparse.Namespace) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    approx = approximate_tokens_if_needed()
    import torch
    from sentence_transformers import SentenceTransformer

    from mixllm.embed.finetune import finetune_encoder

    if approx:  # price fits on approximate counts are poor, and unused here
        logging.getLogger("mixllm.data.prices").setLevel(logging.ERROR)
    ds = load_dataset(args.data)
    tr, _ = split_random(ds, seed=0)
    keep = np.arange(len(tr))  # the data is sorted by task: --limit takes a seeded sample
    if args.limit is not None:
        keep = np.sort(np.random.default_rng(0).permutation(len(tr))[: args.limit])
    texts, domains = [str(tr.prompts[i]) for i in keep], [str(tr.tasks[i]) for i in keep]
    prompts = [str(p) for p in ds.prompts]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    messages: list[str] = []
    losses: list[float] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())
            if str(record.msg).startswith("finetune epoch") and isinstance(record.args, tuple):
                losses.append(float(cast(float, record.args[1])))

    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s")
    log = logging.getLogger("mixllm.embed.finetune")
    log.setLevel(logging.INFO)
    log.addHandler(Capture())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def encode(folder: Path, side: str) -> tuple[NDArray[np.float16], float, str]:
        model = SentenceTransformer(str(folder), device=device)
        model.tokenizer.truncation_side = side
        dtype = str(next(model.parameters()).dtype)  # what finetune_encoder trains in
        start = time.perf_counter()
        x = model.encode(prompts, batch_size=256, normalize_embeddings=True)
        seconds = time.perf_counter() - start
        return np.asarray(x, dtype=np.float32).astype(np.float16), seconds, dtype

    with tempfile.TemporaryDirectory() as tmp:
        base, tuned_dir = Path(tmp) / "base", Path(tmp) / "tuned"
        side = "left" if args.keep == "end" else "right"
        model = SentenceTransformer(args.model, device="cpu").float()
        model.tokenizer.truncation_side = side  # saved: finetune_encoder truncates the same way
        model.save(str(base))
        frozen, frozen_s, dtype = encode(base, side)
        if args.keep == "end":
            np.save(out / "frozen_start.npy", encode(base, "right")[0])
        if dtype != "torch.float32":
            raise SystemExit(f"the float32 copy of {args.model} reloads as {dtype}")
        start = time.perf_counter()
        finetune_encoder(
            str(base), texts, domains, tuned_dir, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, loss=args.loss, margin=args.margin,
            device=device, seed=0,
        )  # fmt: skip
        finetune_s = time.perf_counter() - start
        tuned, tuned_s, tuned_dtype = encode(tuned_dir, side)
    np.save(out / "frozen.npy", frozen)
    np.save(out / "tuned.npy", tuned)
    run: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "loss": args.loss, "margin": args.margin, "limit": args.limit, "keep": args.keep,
        "max_seq_length": model.max_seq_length,
        "n_train": len(texts), "n_prompts": len(prompts), "dim": int(frozen.shape[1]),
        "train_dtype": dtype, "tuned_dtype": tuned_dtype,
        "finetune_s": round(finetune_s, 2),
        "embed_frozen_s": round(frozen_s, 2), "embed_tuned_s": round(tuned_s, 2),
        "epoch_mean_loss": losses, "log": messages,
        "approximate_token_counts": approx,
        "train_ids_sha256": split_ids(tr),
    }  # fmt: skip
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in run.items() if k != "log"}))


@dataclass(frozen=True)
class SavedEmbedder:
    """Looks up the saved vector of each prompt (follows :class:`mixllm.embed.Embedder`)."""

    name: str
    x: NDArray[np.float32]
    row: dict[str, int]  # prompt -> row of x (first occurrence)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        missing = [t for t in texts if t not in self.row]
        if missing:
            raise DataError(
                f"{self.name}: {len(missing)} prompt(s) have no saved embedding, "
                f"e.g. {missing[0][:80]!r}; embed the same dataset with `train`"
            )
        return self.x[[self.row[t] for t in texts]]


def evaluate(args: argparse.Namespace) -> None:
    from sklearn.metrics import silhouette_score

    folder = Path(args.embeddings)
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    ds = load_dataset(args.data)
    tr, te = split_random(ds, seed=0)
    if run["train_ids_sha256"] != split_ids(tr):
        raise SystemExit("the seed-0 training split differs from the one `train` fine-tuned on")
    quality = np.nan_to_num(te.quality, nan=0.0).mean(axis=0)
    cost = filled_costs(te).mean(axis=0)
    lo, hi = te.llm_index(ev.cheapest_llm(te)), te.llm_index(ev.default_reference(tr))
    yard = ev.Yardstick(float(quality[lo]), float(cost[lo]), float(quality[hi]), float(cost[hi]))
    counts = ev.resample_counts(len(te), args.n_boot, 0)
    row = {str(p): i for i, p in reversed(list(enumerate(ds.prompts)))}
    where = {q: i for i, q in enumerate(ds.query_ids)}
    rows = {"train": [where[q] for q in tr.query_ids], "test": [where[q] for q in te.query_ids]}
    labels = {"train": [str(t) for t in tr.tasks], "test": [str(t) for t in te.tasks]}

    def fmt(point: float, boots: NDArray[np.float64], sign: str = "") -> str:
        if not np.isfinite(point):
            return "fit failed"
        a, b = ev.interval(boots.tolist())
        f = f"{sign}.3f"
        return f"{point:{f}}" if a is None or b is None else f"{point:{f}} [{a:{f}}, {b:{f}}]"

    res: dict[tuple[str, str], tuple[float, NDArray[np.float64]]] = {}
    sil: dict[tuple[str, str], float] = {}
    kinds = [k for k in ("frozen_start", "frozen", "tuned") if (folder / f"{k}.npy").exists()]
    for kind in kinds:
        x = np.load(folder / f"{kind}.npy").astype(np.float32)
        if x.shape[0] != len(ds):
            raise SystemExit(f"{kind}.npy has {x.shape[0]} rows for {len(ds)} prompts")
        x /= np.linalg.norm(x, axis=1, keepdims=True)  # float16 storage: renormalise
        embedder = SavedEmbedder(kind, x, row)
        for part in ("test", "train"):
            sil[kind, part] = float(silhouette_score(x[rows[part]], labels[part], metric="cosine"))
        for name in ROUTERS:
            try:
                router = Router(name, embedder=embedder, seed=0).fit(tr)
            except np.linalg.LinAlgError as exc:  # degenerate features (many identical rows)
                print(f"{kind} {name}: fit failed: {exc}", file=sys.stderr)
                res[kind, name] = np.nan, np.full(args.n_boot, np.nan)
                continue
            rep = ev.replay(router, te, lams=ev.sweep_lams(router, te, 30))
            q, c = np.nan_to_num(rep.quality, nan=0.0), rep.cost_usd
            point = ev.frontier_metrics(c.mean(axis=1), q.mean(axis=1), yard, budgets_pct=())
            boots = ev.bootstrap_frontier(q, c, yard, counts, budgets_pct=())
            res[kind, name] = point.aiq, np.array([b.aiq for b in boots], dtype=np.float64)
    lines = [
        f"Fine-tuned on {run['n_train']} training prompts, {run['epochs']} epoch(s), batch "
        f"{run['batch_size']}, lr {run['lr']}, loss {run['loss']} on {run['device']}: "
        f"{run['finetune_s']} s; epoch mean loss {run['epoch_mean_loss']}; prompts cut keeping "
        f"the {run.get('keep', 'start')} at {run.get('max_seq_length')} word pieces.",
        "",
        f"| embeddings | {' | '.join(f'{n} AIQ [95% CI]' for n in ROUTERS)} "
        "| silhouette test | silhouette train |",
        "|" + " --- |" * (len(ROUTERS) + 3),
    ]
    for kind in kinds:
        cells = [fmt(*res[kind, n]) for n in ROUTERS]
        lines.append(
            f"| {kind} | {' | '.join(cells)} | {sil[kind, 'test']:.3f} | {sil[kind, 'train']:.3f} |"
        )
    diff = [fmt(res["tuned", n][0] - res["frozen", n][0],
                res["tuned", n][1] - res["frozen", n][1], "+") for n in ROUTERS]  # fmt: skip
    dsil = [sil["tuned", p] - sil["frozen", p] for p in ("test", "train")]
    lines.append(
        f"| tuned − frozen (paired) | {' | '.join(diff)} | {dsil[0]:+.3f} | {dsil[1]:+.3f} |"
    )
    lines += ["", f"Test split: {len(te)} queries, seed-0 split, n_boot={args.n_boot}."]
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    t, e = sub.add_parser("train"), sub.add_parser("evaluate")
    for parser, names in ((t, ("--data", "--model", "--out")), (e, ("--data", "--embeddings"))):
        for name in names:
            parser.add_argument(name, required=True)
    t.add_argument("--epochs", type=int, default=3)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--loss", default="centre", choices=("centre", "triplet"))
    t.add_argument("--margin", type=float, default=0.0)
    t.add_argument("--limit", type=int, default=None)
    t.add_argument("--keep", default="end", choices=("end", "start"))
    e.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    train(args) if args.mode == "train" else evaluate(args)


if __name__ == "__main__":
    main()
