"""Report files: markdown, byte-stable JSON, a valid PNG, and the terminal table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mixllm.data.split import split_random
from mixllm.evaluate import Report, evaluate, plot_frontier, render_table, write_report
from mixllm.evaluate.plots import hull_curve
from tests.evaluate.fakes import FakeEmbedder, TruthPredictor, make_three

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _report(seed: int = 0) -> Report:
    train, test = split_random(make_three(90), seed=0)
    return evaluate(
        train,
        test,
        routers=["random", "oracle", "knn", TruthPredictor(test, "truth")],
        embedder=FakeEmbedder(),
        n_lams=10,
        n_boot=200,
        seed=seed,
    )


@pytest.fixture(scope="module")
def report() -> Report:
    return _report()


def test_write_report_writes_every_file(report: Report, tmp_path: Path) -> None:
    paths = write_report(report, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == ["frontier.png", "report.json", "report.md", "timings.json"]
    assert all(p.is_file() and p.parent == tmp_path / "out" for p in paths)
    assert (tmp_path / "out" / "frontier.png").read_bytes()[:8] == PNG_MAGIC


def test_json_has_the_expected_keys(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert list(data) == ["format", "context", "routers"]
    assert data["context"]["reference"]["llm"] == "ref"
    assert data["context"]["budgets_pct"] == [10.0, 20.0, 25.0, 50.0]
    row = data["routers"][0]
    assert list(row) == [
        "name", "kind", "aiq", "quality_at_budget_pct", "cost_to_match_pct", "apgr",
        "quality_at_lam0", "gain_over_best_single", "max_quality", "min_cost_usd", "frontier",
        "points", "task_quality_at_lam0", "task_gain_over_best_single",
    ]  # fmt: skip
    assert list(row["aiq"]) == ["value", "low", "high"]
    assert list(row["quality_at_budget_pct"]) == ["10", "20", "25", "50"]
    assert list(row["points"][0]) == ["lam", "quality", "cost_usd", "n_missing", "shares"]
    assert "fit_s" not in json.dumps(data)
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert set(timings) == {"embed_s_per_query", *(r.name for r in report.rows)}


def test_same_seed_gives_byte_identical_json_and_png(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path / "a")
    write_report(_report(), tmp_path / "b")
    for name in ("report.json", "frontier.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    write_report(_report(seed=1), tmp_path / "c")
    assert (tmp_path / "a" / "report.json").read_bytes() != (
        tmp_path / "c" / "report.json"
    ).read_bytes()


def test_markdown_has_the_tables_and_the_context(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# mixllm report: three")
    assert "| router | kind | AIQ [95% CI] | Q @ 10% cost |" in md
    assert "Reference LLM: **ref**" in md and "Cheapest LLM: **cheap**" in md
    assert "| ref (reference) |" in md
    assert "![quality vs cost](frontier.png)" in md
    aiq = report.row("oracle").aiq
    assert f"{aiq.value:.3f} [{aiq.low:.3f}, {aiq.high:.3f}]" in md


def test_render_table_has_one_row_per_router(report: Report) -> None:
    table = render_table(report)
    assert table.row_count == len(report.rows)
    headers = [c.header for c in table.columns]
    assert headers[:3] == ["router", "AIQ [95% CI]", "Q@10%"]
    assert headers[-5:] == ["APGR [95% CI]", "Q@λ0", "gain", "task\navg", "task\ngain"]


def test_plot_frontier_writes_a_png(report: Report, tmp_path: Path) -> None:
    out = plot_frontier(report, tmp_path / "f.png")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_hull_curve_samples_segments_and_extends_flat() -> None:
    x, y = hull_curve(((1.0, 0.5), (3.0, 0.9)), until=4.0)
    assert x[0] == 1.0 and x[-1] == 4.0 and y[-1] == pytest.approx(0.9)
    assert y[len(y) // 2] == pytest.approx(0.5 + 0.2 * (x[len(x) // 2] - 1.0))


def test_free_llms_get_a_linear_cost_axis(tmp_path: Path) -> None:
    ds = make_three(60)
    cost = np.array(ds.cost_usd)
    cost[:, 0] = 0.0  # 'cheap' is free: no log scale
    train, test = split_random(replace(ds, cost_usd=cost), seed=0)
    rep = evaluate(train, test, routers=["oracle"], embedder=FakeEmbedder(), n_boot=200)
    assert rep.context.cheapest_cost_usd == 0.0
    assert plot_frontier(rep, tmp_path / "free.png").read_bytes()[:8] == PNG_MAGIC
