"""``mixllm fit`` with targets: the default, each option, the λ it prints and saves, and the
errors (exit status 2, one line naming the bad value)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mixllm.cli import cli
from mixllm.router import Router
from tests.conftest import make_clustered


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def write_outcomes(path: Path, n: int = 150, *, cheap_is_best: bool = False) -> Path:
    ds = make_clustered(n)
    rows = []
    for o in ds.outcomes():
        quality = o.quality
        if cheap_is_best:  # 'small' right everywhere: the reference is the cheapest LLM
            quality = 1.0 if o.llm == "small" else 0.0
        rows.append(
            {"query_id": o.query_id, "prompt": o.prompt, "llm": o.llm, "quality": quality,
             "cost_usd": o.cost_usd}
        )  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_outcomes(tmp_path_factory.mktemp("fit") / "outcomes.jsonl")


def fit(data: Path, out: Path, *options: object) -> tuple[int, str]:
    return run("fit", data, "--out", out, "--router", "knn", "--embedder", "hashing", *options)


def test_default_target_is_half_the_references_cost(data: Path, tmp_path: Path) -> None:
    code, out = fit(data, tmp_path / "r")
    assert code == 0, out
    assert "target: mean cost at most 50% of big's -> λ = " in out
    lam = float(re.search(r"λ = (\S+)", out).group(1))  # type: ignore[union-attr]
    share = float(re.search(r"\((\S+)% of big's\), mean quality", out).group(1))  # type: ignore[union-attr]
    assert 30 < share <= 50
    router = Router.load(tmp_path / "r")
    assert router.lam == pytest.approx(lam, rel=1e-5)
    assert router.target is not None and router.target.kind == "cost_share"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (("--cost-share", "0.3"), "mean cost at most 30% of big's"),
        (("--budget-per-query", "0.004"), "mean cost at most $0.004 per query"),
        (("--strong-share", "0.25"), "at most 25% of calls to big"),
        (
            ("--min-quality-share", "0.8", "--confidence", "0.8"),
            "mean quality over 500 queries at least 80% of big's, with 80% confidence",
        ),
        (
            ("--min-quality-share", "0.8", "--over", "2000"),
            "mean quality over 2000 queries at least 80% of big's, with 90% confidence",
        ),
        (
            ("--min-quality-share", "0.8", "--over", "inf"),
            "mean quality in the long run at least 80% of big's, with 90% confidence",
        ),
    ],
)
def test_each_target_option(
    options: tuple[str, ...], words: str, data: Path, tmp_path: Path
) -> None:
    code, out = fit(data, tmp_path / "r", *options)
    assert code == 0, out
    assert f"target: {words} -> λ = " in out
    router = Router.load(tmp_path / "r")
    assert router.calibration_ is not None
    assert router.lam == router.lam_for(router.target)  # type: ignore[arg-type]


def test_reference_option_and_lam_without_calibration(data: Path, tmp_path: Path) -> None:
    code, out = fit(data, tmp_path / "r", "--strong-share", "0.6", "--reference", "small")
    assert code == 0, out
    assert "at most 60% of calls to small" in out
    code, out = fit(data, tmp_path / "l", "--lam", "7")
    assert code == 0, out
    assert "target" not in out
    router = Router.load(tmp_path / "l")
    assert router.lam == 7.0 and router.calibration_ is None


@pytest.mark.parametrize(
    ("options", "expect"),
    [
        (("--cost-share", "0"), "--cost-share: cost_share=0.0; expected a share"),
        (("--cost-share", "1.2"), "cost_share=1.2; expected a share of the reference's mean cost"),
        (("--strong-share", "-1"), "strong_share=-1.0"),
        (("--budget-per-query", "0"), "budget_per_query=0.0; expected a mean cost per query"),
        (("--min-quality-share", "1.1"), "min_quality_share=1.1"),
        (("--min-quality-share", "0.9", "--confidence", "1"), "confidence=1.0; expected a prob"),
        (("--confidence", "0.9"), "--confidence 0.9 given without --min-quality-share"),
        (("--min-quality-share", "0.8", "--over", "0"), "--over: horizon='0'; expected a whole"),
        (("--min-quality-share", "0.8", "--over", "1.5"), "--over: horizon='1.5'; expected"),
        (("--min-quality-share", "0.8", "--over", "lots"), "horizon='lots'; expected a whole"),
        (("--cost-share", "0.5", "--over", "100"), "--over 100 given without --min-quality"),
        (("--lam", "3", "--cost-share", "0.5"), "--lam 3 and --cost-share given; expected one"),
        (("--cost-share", "0.5", "--strong-share", "0.5"), "--cost-share and --strong-share"),
        (("--lam", "3", "--reference", "big"), "--reference given with --lam"),
        (("--reference", "gpt-9"), "--reference 'gpt-9'; known LLMs: ['small', 'big']"),
        (("--cost-share", "0.01"), "cannot be met: the cheapest routing costs"),
        (("--min-quality-share", "1", "--confidence", "0.99"), "the best certified is"),
    ],
)
def test_bad_values_exit_2_with_a_message(
    options: tuple[str, ...], expect: str, data: Path, tmp_path: Path
) -> None:
    code, out = fit(data, tmp_path / "r", *options)
    assert code == 2, out
    assert expect in out
    assert "Traceback" not in out
    assert not (tmp_path / "r").exists()


def test_default_falls_back_to_the_cheapest_routing(tmp_path: Path) -> None:
    data = write_outcomes(tmp_path / "cheap.jsonl", 100, cheap_is_best=True)
    code, out = fit(data, tmp_path / "r")
    assert code == 0, out
    assert "the default target (mean cost at most 50% of small's) cannot be met" in out
    router = Router.load(tmp_path / "r")
    assert router.target is not None and router.target.value == pytest.approx(1.0)
    assert np.isfinite(router.lam)
