"""The whole flow offline on the RouterBench subset: prompts -> collect (replayed answers, the
recorded judge) -> a router as good as one fitted on the recorded rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixllm.data import Dataset, load_dataset, load_longform
from mixllm.evaluate import evaluate
from tests.collect.conftest import read_jsonl, run_cli


@pytest.fixture(scope="module")
def routerbench_csv(data_dir: Path) -> Path:
    return data_dir / "routerbench" / "routerbench_0shot_subset.csv"


@pytest.fixture(scope="module")
def recorded(routerbench_csv: Path) -> Dataset:
    return load_dataset(routerbench_csv)


@pytest.fixture(scope="module")
def collected(routerbench_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 sampled prompts, collected from all 11 LLMs by replay, graded by the recorded judge."""
    work = tmp_path_factory.mktemp("collect")
    prompts, out = work / "p.jsonl", work / "o.jsonl"
    code, output = run_cli("data", "prompts", routerbench_csv, "--out", prompts, "--sample", 150)
    assert code == 0 and "wrote 150 prompts" in output, output
    code, output = run_cli("collect", prompts, "--replay", routerbench_csv, "--judge", "recorded",
                           "--out", out)  # fmt: skip
    assert code == 0, output
    return out


def first_rows(ds: Dataset) -> dict[str, int]:
    """Prompt -> its first row (the row a replay answers from)."""
    rows: dict[str, int] = {}
    for i, p in enumerate(ds.prompts):
        rows.setdefault(str(p).strip(), i)
    return rows


def test_collected_rows_match_the_recorded_ones(collected: Path, recorded: Dataset) -> None:
    rows = read_jsonl(collected)
    keys = [(r["query_id"], r["llm"]) for r in rows]
    assert len(keys) == len(set(keys)) == 150 * 11
    assert {r["llm"] for r in rows} == set(recorded.llms)
    where = first_rows(recorded)
    unknown = 0
    for r in rows:
        i, j = where[r["prompt"].strip()], recorded.llm_index(r["llm"])
        q = recorded.quality[i, j]
        if np.isnan(q):
            assert r["quality"] is None  # no recorded verdict: unknown, never 0
            unknown += 1
        else:
            assert r["quality"] == q  # 0/1 come back exactly through [[1]] / [[10]]
        assert r["cost_usd"] == pytest.approx(recorded.cost_usd[i, j], rel=1e-9, abs=1e-15)
        assert r["response"] == recorded.responses[i, j]  # type: ignore[index]
        assert r["grader"] == "judge:recorded" and r["task"] == recorded.tasks[i]
    judged = read_jsonl(collected.with_name("o.jsonl.judge.jsonl"))
    assert len(judged) == len(rows)
    assert sum(j["quality"] is None for j in judged) == unknown
    assert all(j["attempts"] == (2 if j["quality"] is None else 1) for j in judged)


def _aiq(report: Any) -> Any:
    return next(r.aiq for r in report.rows if r.name == "mixllm")


@pytest.mark.slow
def test_router_on_collected_data_is_as_good_as_on_recorded_data(
    collected: Path, recorded: Dataset
) -> None:
    mine = load_longform(collected)
    index = {q: i for i, q in enumerate(recorded.query_ids)}
    same = recorded.subset([index[q] for q in mine.query_ids])
    rest = np.setdiff1d(np.arange(len(recorded)), [index[q] for q in mine.query_ids])
    test = recorded.subset(np.random.default_rng(0).choice(rest, size=500, replace=False))
    kwargs: dict[str, Any] = {"routers": ["mixllm"], "embedder": "hashing", "n_boot": 500}
    aiq_mine = _aiq(evaluate(mine, test, **kwargs))
    aiq_recorded = _aiq(evaluate(same, test, **kwargs))
    print(f"AIQ collected {aiq_mine.value:.4f}; recorded {aiq_recorded.value:.4f} "
          f"[{aiq_recorded.low:.4f}, {aiq_recorded.high:.4f}]")  # fmt: skip
    assert aiq_recorded.low <= aiq_mine.value <= aiq_recorded.high


def test_pairwise_with_the_recorded_judge(routerbench_csv: Path, recorded: Dataset,
                                          tmp_path: Path) -> None:  # fmt: skip
    prompts, out = tmp_path / "p.jsonl", tmp_path / "o.jsonl"
    assert run_cli("data", "prompts", routerbench_csv, "--out", prompts, "--sample", 15)[0] == 0
    ref, llms = "gpt-4-1106-preview", "gpt-4-1106-preview,mistralai/mistral-7b-chat,claude-v2"
    code, output = run_cli("collect", prompts, "--replay", routerbench_csv, "--judge", "recorded",
                           "--pairwise", ref, "--llms", llms, "--out", out)  # fmt: skip
    assert code == 0, output
    where = first_rows(recorded)
    rows = read_jsonl(out)
    assert len(rows) == 45
    for r in rows:
        i = where[r["prompt"].strip()]
        mine, base = (recorded.quality[i, recorded.llm_index(m)] for m in (r["llm"], ref))
        if r["llm"] == ref:
            expected: float | None = 0.5
        elif np.isnan(mine) or np.isnan(base):
            expected = None
        else:
            expected = 1.0 if mine > base else 0.0 if mine < base else 0.5
        assert r["quality"] == expected, r["llm"]
        assert r["grader"] == f"pairwise:recorded vs {ref}"
