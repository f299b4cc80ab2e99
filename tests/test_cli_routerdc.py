"""RouterDC's task files through the command line: ``mixllm fit`` and ``mixllm evaluate`` with a
price table, ``--tags``, and the task-averaged column of the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixllm import Router
from mixllm.policy import MixLLMPredictor
from tests.test_cli_evaluate import PRICES, report, run

FAST = ("--embedder", "hashing", "--n-boot", "200")


def routerdc_folder(folder: Path) -> Path:
    """Three invented task files of unequal size in RouterDC's layout: 'small' is good on fruit
    and sums, 'big' on physics; the physics and fruit items carry cluster ids."""
    tasks = {
        "fruit": ("apple banana cherry", 12, {"small": 1.0, "big": 0.0}),
        "physics": ("quantum photon laser", 30, {"small": 0.0, "big": 1.0}),
        "sums": ("add these numbers", 8, {"small": 1.0, "big": 0.5}),
    }
    folder.mkdir()
    for task, (words, n, scores) in tasks.items():
        items: list[dict[str, object]] = []
        for i in range(n):
            item: dict[str, object] = {"question": f"{words} {i} " + "w " * (i % 5)}
            item["scores"] = dict(scores) if i % 6 else {"small": 0.5, "big": 0.5}
            if task != "sums":
                item["cluster_id"] = i % 2
            items.append(item)
        (folder / f"{task}_train.json").write_text(json.dumps(items))
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return routerdc_folder(tmp_path / "routerdc")


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(PRICES + "small,0.1,0.1\nbig,0.4,0.4\n")
    return path


def test_fit_with_prices_and_domain_tags(folder: Path, prices: Path, tmp_path: Path) -> None:
    code, out = run(
        "fit", folder, "--prices", prices, "--output-tokens", 50, "--tags", "domain",
        "--lam", 0, "--out", tmp_path / "r", "--embedder", "hashing",
    )  # fmt: skip
    assert code == 0, out
    assert "costs computed from the prices in" in out
    assert "saved mixllm router (2 LLMs, 50 queries)" in out
    router = Router.load(tmp_path / "r")
    predictor = router.predictor
    assert isinstance(predictor, MixLLMPredictor) and predictor.tags == "domain"
    head = predictor.projection_
    assert head is not None  # cluster ids of fruit and physics; 'sums' has none: its task
    assert head.domains_ == ("fruit_train/c0", "fruit_train/c1", "physics_train/c0",
                             "physics_train/c1", "sums_train")  # fmt: skip
    assert router.prices_["big"].price_in_per_mtok == 0.4
    assert predictor.task_prior and predictor.blend_ is not None  # three labelled tasks
    assert predictor.blend_.tasks_ == ("fruit_train", "physics_train", "sums_train")


def test_fit_tags_none_is_untagged(folder: Path, prices: Path, tmp_path: Path) -> None:
    code, out = run(
        "fit", folder, "--prices", prices, "--tags", "none", "--lam", 0,
        "--out", tmp_path / "r", "--embedder", "hashing",
    )  # fmt: skip
    assert code == 0, out
    predictor = Router.load(tmp_path / "r").predictor
    assert isinstance(predictor, MixLLMPredictor) and predictor.projection_ is None
    assert predictor.blend_ is not None


def test_fit_no_task_prior_is_the_papers_predictor(
    folder: Path, prices: Path, tmp_path: Path
) -> None:
    code, out = run(
        "fit", folder, "--prices", prices, "--no-task-prior", "--lam", 0,
        "--out", tmp_path / "r", "--embedder", "hashing",
    )  # fmt: skip
    assert code == 0, out
    predictor = Router.load(tmp_path / "r").predictor
    assert isinstance(predictor, MixLLMPredictor) and predictor.tags == "task"
    assert predictor.task_prior is False and predictor.blend_ is None


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--tags", "clusters"), "tags='clusters'; expected 'task', 'domain', 'kmeans'"),
        (("--tags", "kmeans:1"), "tags='kmeans:1'; expected"),
        (("--tags", "task", "--router", "knn"), "--tags is an option of the mixllm router"),
        (("--no-task-prior", "--router", "knn"), "--no-task-prior is an option of the mixllm"),
        (("--output-tokens", "10"), "--output-tokens without --prices"),
    ],
)
def test_bad_fit_options_exit_2(
    folder: Path, tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    code, out = run("fit", folder, *args, "--lam", 0, "--out", tmp_path / "r")
    assert code == 2, out
    assert said in " ".join(out.split())
    assert not (tmp_path / "r").exists()


def test_evaluate_reports_the_task_average(folder: Path, prices: Path, tmp_path: Path) -> None:
    code, out = run(
        "evaluate", folder, "--prices", prices, "--test-size", 0.5, "--routers", "oracle,mixllm",
        "--report", tmp_path / "rep", *FAST,
    )  # fmt: skip
    assert code == 0, out
    data = report(tmp_path / "rep")
    average = data["context"]["task_average"]
    assert average["tasks"] == ["fruit_train", "physics_train", "sums_train"]
    rows = {r["name"]: r for r in data["routers"]}
    assert set(rows) == {"oracle", "mixllm", "single:small", "single:big"}
    for row in rows.values():
        value = row["task_quality_at_lam0"]
        assert value["low"] <= value["value"] <= value["high"]
    best = rows[f"single:{average['best_single']['llm']}"]
    assert best["task_quality_at_lam0"]["value"] == pytest.approx(average["best_single"]["quality"])
    assert best["task_gain_over_best_single"]["value"] == pytest.approx(0.0)
    assert rows["oracle"]["task_gain_over_best_single"]["value"] > 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "task-averaged [95% CI]" in md
    assert "avg" in out  # the terminal table's column
