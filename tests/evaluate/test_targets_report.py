"""Targets reported as met or not on the test split: the realised figures against the test split's
recorded outcomes, met and not met, infeasible targets as rows, and ``mixllm evaluate`` with
target options (report files, printed table, bad values)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mixllm.cli import cli
from mixllm.data import Dataset, make_routing_dataset, split_random
from mixllm.data.longform import write_longform
from mixllm.evaluate.harness import default_reference
from mixllm.evaluate.targets import evaluate_targets, target_rows, targets_markdown, targets_to_dict
from mixllm.policy.targets import parse_target
from mixllm.router import Router


@pytest.fixture(scope="module")
def split() -> tuple[Dataset, Dataset]:
    return split_random(make_routing_dataset(n_queries=300, n_llms=3, seed=0), seed=0)


@pytest.fixture(scope="module")
def router(split: tuple[Dataset, Dataset]) -> Router:
    train, _ = split
    target = parse_target("cost_share", 0.3)
    ref = default_reference(train)
    return Router("mixllm", embedder="hashing", target=target, reference=ref).fit(train)


def direct(router: Router, test: Dataset, lam: float) -> dict[str, float]:
    """What routing ``test`` at ``lam`` realised, from the recorded outcomes of the choices."""
    decisions = router.route_many([str(p) for p in test.prompts], lam=lam)
    cols = np.array([test.llms.index(d.llm) for d in decisions])
    rows = np.arange(len(test))
    ref = test.llms.index(router.reference or "")
    cost, quality = test.cost_usd[rows, cols], test.quality[rows, cols]
    return {
        "cost_usd": float(cost.mean()),
        "cost_share": float(cost.mean() / test.cost_usd[:, ref].mean()),
        "reference_share": float((cols == ref).mean()),
        "quality": float(quality.mean()),
        "quality_share": float(quality.mean() / test.quality[:, ref].mean()),
    }


def test_realised_figures_are_the_test_outcomes_of_the_choices(
    router: Router, split: tuple[Dataset, Dataset]
) -> None:
    _, test = split
    targets = [
        parse_target("cost_share", 0.3),
        parse_target("strong_share", 0.2),
        parse_target("min_quality_share", 0.5, horizon=None),
    ]
    rows = target_rows(router, test, targets)
    assert [r.target for r in rows] == targets
    for row in rows:
        assert row.lam is not None and row.test is not None and row.out_of_fold is not None
        assert row.lam == pytest.approx(router.lam_for(row.target))
        got = direct(router, test, row.lam)
        t = row.test
        assert t.cost_usd == pytest.approx(got["cost_usd"], rel=1e-9)
        assert t.cost_share == pytest.approx(got["cost_share"], rel=1e-9)
        assert t.reference_share == pytest.approx(got["reference_share"], abs=1e-12)
        assert t.quality == pytest.approx(got["quality"], rel=1e-9)
        assert t.quality_share == pytest.approx(got["quality_share"], rel=1e-9)
        point = router.calibration_.point_for(row.target)  # type: ignore[union-attr]
        assert (row.out_of_fold.cost_usd, row.out_of_fold.quality) == (
            point.cost_usd,
            point.quality,
        )
    # "met" is the realised figure within the target
    assert rows[0].met == (rows[0].test.cost_share <= 0.3)  # type: ignore[union-attr,operator]
    assert rows[1].met == (rows[1].test.reference_share <= 0.2)  # type: ignore[union-attr]
    assert rows[2].met == (rows[2].test.quality_share >= 0.5)  # type: ignore[union-attr,operator]


def test_met_flips_with_the_test_outcomes(router: Router, split: tuple[Dataset, Dataset]) -> None:
    _, test = split
    ref = test.llms.index(router.reference or "")
    loose = parse_target("budget_per_query", float(test.cost_usd.max()))  # no routing costs more
    share = parse_target("cost_share", 0.3)
    met, routed = target_rows(router, test, [loose, share])
    assert met.met is True
    assert routed.test is not None and routed.test.reference_share < 0.9
    # the same λ on a test split where every other LLM costs 100 times as much: far above 30%
    dear = test.cost_usd * 100
    dear[:, ref] = test.cost_usd[:, ref]
    _, not_met = target_rows(router, replace(test, cost_usd=dear), [loose, share])
    assert not_met.lam == routed.lam and not_met.met is False
    assert not_met.test is not None and not_met.test.cost_share > 1  # type: ignore[operator]


def test_an_infeasible_target_is_a_row_saying_why(
    router: Router, split: tuple[Dataset, Dataset]
) -> None:
    _, test = split
    rows = target_rows(router, test, [parse_target("cost_share", 1e-6)])
    assert rows[0].lam is None and rows[0].met is None and rows[0].test is None
    assert "cannot be met: the cheapest routing costs" in rows[0].reason
    data = targets_to_dict(rows)
    assert data[0]["met"] is None and data[0]["infeasible"] == rows[0].reason
    assert data[0]["lam"] is None and data[0]["test"] is None
    md = "\n".join(targets_markdown(rows))
    assert "| infeasible |" in md and f"- {rows[0].reason}" in md


def test_evaluate_targets_without_any_calibration_says_why(split: tuple[Dataset, Dataset]) -> None:
    train, test = split
    rows = evaluate_targets(
        train.subset(range(3)), test, [parse_target("strong_share", 0.5)], embedder="hashing"
    )
    assert rows[0].met is None and "folds=5" in rows[0].reason


# -- the command --------------------------------------------------------------------------------
def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = make_routing_dataset(n_queries=250, n_llms=3, seed=1)
    return write_longform(ds, tmp_path_factory.mktemp("targets") / "data.jsonl")


FAST = ("--routers", "cheapest", "--embedder", "hashing", "--n-boot", "200")


def test_evaluate_reports_each_target_on_the_test_split(data: Path, tmp_path: Path) -> None:
    code, out = run(
        "evaluate", data, "--report", tmp_path / "r", *FAST,
        "--cost-share", "0.4", "--cost-share", "1e-6", "--min-quality-share", "0.5",
        "--over", "inf",
    )  # fmt: skip
    assert code == 0, out
    assert "Targets on the test split" in out and "infeasible" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    rows = report["targets"]
    ref = report["context"]["reference"]
    assert [r["target"]["kind"] for r in rows] == ["cost_share", "cost_share", "min_quality_share"]
    assert all(r["reference"] == ref["llm"] for r in rows)
    first, infeasible, quality = rows
    assert first["met"] == (first["test"]["cost_share"] <= 0.4)
    assert first["test"]["cost_share"] == pytest.approx(
        first["test"]["cost_usd"] / ref["cost_usd"], rel=1e-4
    )
    assert quality["met"] == (quality["test"]["quality_share"] >= 0.5)
    assert infeasible["met"] is None and "cannot be met" in infeasible["infeasible"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Targets on the test split" in md
    assert f"| mean cost at most 40% of {ref['llm']}'s | " in md


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("--cost-share", "1.5"), "--cost-share: cost_share=1.5; expected a share"),
        (("--budget-per-query", "-1"), "--budget-per-query: budget_per_query=-1.0; expected"),
        (("--strong-share", "0"), "--strong-share: strong_share=0.0; expected"),
        (("--min-quality-share", "0.9", "--confidence", "1.5"), "confidence=1.5; expected"),
        (("--confidence", "0.8"), "--confidence 0.8 given without --min-quality-share"),
        (("--min-quality-share", "0.9", "--over", "0"), "--over: horizon='0'; expected"),
        (("--cost-share", "abc"), "'abc' is not a valid float"),
    ],
)
def test_bad_target_values_exit_2_naming_the_value(
    data: Path, tmp_path: Path, args: tuple[str, ...], expect: str
) -> None:
    code, out = run("evaluate", data, "--report", tmp_path / "r", *FAST, *args)
    assert code == 2, out
    assert expect in out
    assert not (tmp_path / "r").exists()
