"""What the shadow-traffic tests share: a small replayed pool with recorded answers and
qualities by topic, the gateway settings, and readers of the shadow rows it stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixllm import Router
from mixllm.data import Dataset, Outcome
from mixllm.serve import ReplayBackend, Settings
from mixllm.serve.replay import RecordedJudge
from mixllm.serve.settings import ShadowSettings
from mixllm.types import LLM

__all__ = [
    "JUDGE",
    "LLMS",
    "PROMPTS",
    "TOPICS",
    "_backends",
    "_chat",
    "_dataset",
    "_predicted",
    "_settings",
    "_shadow_rows",
]

TOPICS = ("cats", "tax law", "rust", "poems")
LLMS = {  # name: (price in, price out per Mtok, quality by topic)
    "small": (0.2, 0.6, (0.9, 0.2, 0.4, 0.7)),
    "medium": (1.0, 3.0, (0.8, 0.6, 0.7, 0.6)),
    "large": (5.0, 15.0, (0.9, 0.9, 0.9, 0.8)),
}
PROMPTS = [f"question {i} about {TOPICS[i % 4]}" for i in range(40)]
JUDGE = "recorded-judge"


def _dataset() -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    for i, prompt in enumerate(PROMPTS):
        p_tok, o_tok = 10 + i % 7, 20 + (i * 3) % 11
        for llm, (p_in, p_out, by_topic) in LLMS.items():
            quality = float(rng.random() < by_topic[i % 4])
            cost = (p_tok * p_in + o_tok * p_out) / 1e6
            rows.append(
                Outcome(f"q{i}", prompt, llm, quality, cost, prompt_tokens=p_tok,
                        output_tokens=o_tok, task=TOPICS[i % 4], response=f"{llm} answers {i}.")
            )  # fmt: skip
    prices = {m: LLM(m, p_in, p_out) for m, (p_in, p_out, _) in LLMS.items()}
    return Dataset.from_outcomes(rows, name="shadowed", prices=prices)


def _backends(data: Dataset, judge: Any = None) -> dict[str, Any]:
    backends: dict[str, Any] = {m: ReplayBackend(m, data) for m in LLMS}
    backends[JUDGE] = judge if judge is not None else RecordedJudge(data)
    return backends


def _settings(**shadow: Any) -> Settings:
    values: dict[str, Any] = {"share": 1.0, "budget_usd_per_day": 10.0, "judge": JUDGE}
    values.update(shadow)
    return Settings(deadline_s=10.0, checkpoint_every=10_000, shadow=ShadowSettings(**values))


def _chat(prompt: str, **more: Any) -> dict[str, Any]:
    return {"model": "mixllm", "messages": [{"role": "user", "content": prompt}], **more}


def _shadow_rows(db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(
            "SELECT d.decision_id, d.shadow_of, d.llm, d.shadow_outcome, d.cost_usd, "
            "d.prompt, f.quality, f.cost_usd AS fb_cost FROM decisions AS d LEFT JOIN feedback "
            "AS f ON f.decision_id = d.decision_id WHERE d.shadow_of IS NOT NULL ORDER BY d.rowid"
        ).fetchall()
    finally:
        conn.close()


def _predicted(router: Router, prompt: str) -> dict[str, float]:
    pred = router.predict([prompt])
    return dict(zip(pred.llms, pred.quality[0].tolist(), strict=True))


@pytest.fixture(scope="module")
def data() -> Dataset:
    return _dataset()


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory, data: Dataset) -> Path:
    path = tmp_path_factory.mktemp("shadow") / "router"
    Router("mixllm", embedder="hashing", lam=50.0).fit(data).save(path)
    return path
