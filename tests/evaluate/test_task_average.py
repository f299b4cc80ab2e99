"""Task-averaged quality at λ = 0 in a report: the mean over tasks of each task's mean, checked
against a computation by hand, with intervals over the report's own resamples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.evaluate import Report, evaluate
from mixllm.evaluate.bootstrap import interval, resample_counts
from mixllm.evaluate.report import render_markdown, render_table, report_to_dict, write_report
from mixllm.evaluate.task_average import TaskAverage
from tests.evaluate.fakes import FakeEmbedder

# Tasks of very different sizes: 'big' wins the large task, 'small' the two small ones, so the
# per-query mean and the task average disagree about the best single LLM.
SIZES = {"code": 4, "math": 6, "trivia": 30}


def tasked(seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    tasks = np.array([t for t, k in SIZES.items() for _ in range(k)], dtype=object)
    n = len(tasks)
    p_big = np.where(tasks == "trivia", 0.9, 0.2)
    p_small = np.where(tasks == "trivia", 0.3, 0.8)
    quality = np.stack([rng.random(n) < p_small, rng.random(n) < p_big], axis=1).astype(float)
    quality[3, 0] = np.nan  # a missing outcome counts as 0
    return Dataset(
        query_ids=np.array([f"s{seed}-q{i}" for i in range(n)], dtype=object),
        prompts=np.array([f"{t} question {i} of set {seed}" for i, t in enumerate(tasks)]),
        llms=("small", "big"),
        quality=quality,
        cost_usd=np.tile([0.001, 0.01], (n, 1)),
        prompt_tokens=np.full(n, 10.0),
        output_tokens=np.full((n, 2), 5.0),
        latency_s=np.full((n, 2), np.nan),
        tasks=tasks,
        name=f"tasked-{seed}",
    )


def by_hand(q: np.ndarray, tasks: np.ndarray) -> float:
    """The mean over tasks of each task's mean (missing as 0), one loop at a time."""
    q = np.nan_to_num(q, nan=0.0)
    means = [float(np.mean([q[i] for i in range(len(q)) if tasks[i] == t])) for t in SIZES]
    return sum(means) / len(means)


@pytest.fixture(scope="module")
def test_set() -> Dataset:
    return tasked(1)


@pytest.fixture(scope="module")
def report(test_set: Dataset) -> Report:
    return evaluate(
        tasked(0), test_set, routers=["oracle"], embedder=FakeEmbedder(), n_lams=3, n_boot=200
    )


def test_task_average_equals_a_hand_computation(report: Report, test_set: Dataset) -> None:
    c = report.context
    assert c.tasks == ("code", "math", "trivia")
    per_llm = {
        m: by_hand(test_set.quality[:, j], test_set.tasks) for j, m in enumerate(("small", "big"))
    }
    best = max(per_llm, key=per_llm.__getitem__)
    assert c.task_best_single == best
    assert c.task_best_single_quality == pytest.approx(per_llm[best], abs=1e-12)
    for m, value in per_llm.items():
        row = report.row(f"single:{m}")
        assert row.task_quality_at_lam0.value == pytest.approx(value, abs=1e-12)
        gain = row.task_gain_over_best_single.value
        assert gain == pytest.approx(value - per_llm[best], abs=1e-12)
    oracle = by_hand(np.nanmax(np.nan_to_num(test_set.quality, nan=0.0), axis=1), test_set.tasks)
    assert report.row("oracle").task_quality_at_lam0.value == pytest.approx(oracle, abs=1e-12)
    # the per-query mean is still there, and differs (the tasks have different sizes)
    small = report.row("single:small")
    assert small.quality_at_lam0.value == pytest.approx(np.nansum(test_set.quality[:, 0]) / 40)
    assert abs(small.quality_at_lam0.value - per_llm["small"]) > 0.01  # type: ignore[operator]


def test_intervals_come_from_the_same_resamples(report: Report, test_set: Dataset) -> None:
    counts = resample_counts(len(test_set), 200, seed=0)  # what evaluate drew (seed 0)
    q = np.nan_to_num(test_set.quality[:, 1], nan=0.0)
    boots = []
    for draw in counts:
        idx = np.repeat(np.arange(len(q)), draw.astype(int))
        sub_tasks = test_set.tasks[idx]
        means = [q[idx][sub_tasks == t].mean() for t in SIZES if (sub_tasks == t).any()]
        boots.append(float(np.mean(means)))
    low, high = interval(boots)
    row = report.row("single:big")
    assert row.task_quality_at_lam0.low == pytest.approx(low, abs=1e-12)
    assert row.task_quality_at_lam0.high == pytest.approx(high, abs=1e-12)
    assert low < row.task_quality_at_lam0.value < high  # type: ignore[operator]


def test_report_files_and_table_show_it(report: Report, tmp_path: Path) -> None:
    data = report_to_dict(report)
    context = data["context"]
    assert isinstance(context, dict)
    assert context["task_average"] == {
        "tasks": ["code", "math", "trivia"],
        "best_single": {
            "llm": report.context.task_best_single,
            "quality": pytest.approx(report.context.task_best_single_quality, rel=1e-5),
        },
    }
    routers = data["routers"]
    assert isinstance(routers, list)
    keys = list(routers[0])  # type: ignore[arg-type]
    # added after the keys a report had before, which keep their order
    assert keys[-3:] == ["points", "task_quality_at_lam0", "task_gain_over_best_single"]
    md = render_markdown(report)
    assert "task-averaged [95% CI]" in md
    assert f"gain over {report.context.task_best_single} [95% CI]" in md
    from rich.console import Console

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_table(report))
    text = console.export_text()
    assert "avg" in text and "its gain: over" in " ".join(text.split())
    assert f"{report.row('oracle').task_quality_at_lam0.value:.3f}" in text
    write_report(report, tmp_path)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert "task_quality_at_lam0" in saved["routers"][0]


def test_no_task_columns_without_two_tasks(test_set: Dataset) -> None:
    one = Dataset(**{**test_set.__dict__, "tasks": np.full(len(test_set), "all", dtype=object)})
    assert TaskAverage.of(one) is None
    some = test_set.tasks.copy()
    some[0] = None
    assert TaskAverage.of(Dataset(**{**test_set.__dict__, "tasks": some})) is None
    rep = evaluate(one, one, routers=[], embedder=FakeEmbedder(), n_lams=2, n_boot=200)
    assert rep.context.tasks == ()
    assert rep.row("single:big").task_quality_at_lam0.value is None
    data = report_to_dict(rep)
    assert "task_average" not in data["context"]  # type: ignore[operator]
    assert "task_quality_at_lam0" not in data["routers"][0]  # type: ignore[index, operator]
    assert "task-averaged" not in render_markdown(rep)
