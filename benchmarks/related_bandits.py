"""MetaLLM, PickLLM and LLM Bandit against MixLLM, LinUCB and gpt-4 alone on RouterBench.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/related_bandits.py [--seeds 0,1,2,3,4]
[--n-lams 20] [--out reports/related_bandits.md]``.

Each seed is an 80/20 split of the RouterBench subset (``$MIXLLM_DATA_DIR`` or ../shared/data),
embedded once with the ``static`` embedder and evaluated by :func:`mixllm.evaluate.evaluate`
(the same harness as ``mixllm evaluate``: predictors swept over λ, PickLLM over its cost
weight). ``llm-bandit+probes`` is LLM Bandit fitted without ``claude-v2``, which then joins
from its outcomes on the 30 probe prompts of the training split (``llm-bandit+cold``: from no
outcome, the known LLMs' mean identity). Reported per router: AIQ (the harness's cost range,
the cheapest LLM to the reference), the highest quality of the sweep and its cost per query,
and the quality (as % of gpt-4's) at 10%, 25% and 50% of gpt-4's cost, as means with 95%
t-intervals over seeds.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

from mixllm import load_dataset, split_random
from mixllm.data import Dataset
from mixllm.embed import make_embedder
from mixllm.evaluate import evaluate
from mixllm.evaluate._memo import MemoEmbedder
from mixllm.policy import LLMBanditPredictor, MetaLLMPredictor
from mixllm.policy.pickllm import PickLLMAutomatonPolicy, PickLLMPolicy, PickLLMQPolicy
from mixllm.types import QueryBatch
from related_routers import t_interval  # the sibling script: run as a script

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
GPT4 = "gpt-4-1106-preview"
#: The LLM that joins LLM Bandit late (the best single LLM after gpt-4 on these rows).
NEWCOMER = "claude-v2"


def _cost_at_max(row: Any) -> float:
    """Mean cost per query of the sweep point of highest quality."""
    best = max(row.points, key=lambda p: (p.quality, -p.cost_usd))
    return float(best.cost_usd)


def _named(obj: Any, name: str) -> Any:
    obj.name = name
    return obj


class JoinsLate(LLMBanditPredictor):
    """LLM Bandit fitted without ``newcomer``, which then joins from its outcomes on the probe
    prompts (``probes=True``) or from nothing (``probes=False``)."""

    def __init__(self, newcomer: str = "", probes: bool = True, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.newcomer, self.probes = newcomer, probes
        self.name = f"llm-bandit+{'probes' if probes else 'cold'}"

    def fit(self, train: Dataset, queries: QueryBatch) -> JoinsLate:
        others = [m for m in train.llms if m != self.newcomer]
        super().fit(train.select_llms(others), queries)
        if not self.probes:
            self.add_llm(train.llm(self.newcomer))
        else:
            probes = self.probe_queries()
            rows = np.array([queries.ids.index(q) for q in probes.ids])
            outcomes = train.subset(rows).select_llms([self.newcomer])
            self.add_llm(train.llm(self.newcomer), seed=outcomes, queries=probes)
        order = [self.llms_.index(m) for m in train.llms]  # back to the dataset's column order
        self.identity_, self.precision_ = self.identity_[order], self.precision_[order]
        cost = self.cost_model_
        for attr in ("price_in_", "price_out_", "mean_output_tokens_", "use_prices_"):
            setattr(cost, attr, getattr(cost, attr)[order])
        cost.fallback_cost_usd_ = cost.fallback_cost_usd_[order]
        self.llms_ = train.llms
        return self


def routers(seed: int) -> list[Any]:
    """The routers compared (MetaLLM three ways: p = 0 trained on every logged outcome, the
    bandit-replay training, and p = 200 per USD, about a tenth of a point per gpt-4 call)."""
    return [
        "mixllm", "linucb", "metallm",
        _named(MetaLLMPredictor(offline="bandit", seed=seed), "metallm-bandit"),
        _named(MetaLLMPredictor(cost_scaling=200.0), "metallm-p200"),
        "llm-bandit",
        PickLLMPolicy(seed=seed), PickLLMAutomatonPolicy(seed=seed), PickLLMQPolicy(seed=seed),
        *[JoinsLate(NEWCOMER, probes, seed) for probes in (True, False)],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--n-lams", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    emb = MemoEmbedder(make_embedder("static"))
    rows: dict[str, dict[str, list[float | None]]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        train, test = split_random(ds, seed=seed)
        report = evaluate(
            train, test, routers=routers(seed), embedder=emb, reference=GPT4,
            n_lams=args.n_lams, n_boot=200, seed=seed,
        )  # fmt: skip
        for r in report.rows:
            if r.name.startswith("single:") and r.name != f"single:{GPT4}":
                continue
            got = rows.setdefault(r.name, {})
            got.setdefault("aiq", []).append(r.aiq.value)
            got.setdefault("q_max", []).append(r.max_quality)
            got.setdefault("cost_q_max_usd", []).append(_cost_at_max(r))
            for pct, est in zip(report.context.budgets_pct, r.quality_at_budget_pct, strict=True):
                got.setdefault(f"q@{pct:g}%", []).append(est.value)
        print(f"seed {seed} done", flush=True)
    keys = ["aiq", "q_max", "cost_q_max_usd", "q@10%", "q@25%", "q@50%"]
    lines = ["| router | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, got in rows.items():
        cells = []
        for k in keys:
            mean, low, high = t_interval(got.get(k, []))
            cells.append(f"{mean:.4g} ± {(high - low) / 2:.2g}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
