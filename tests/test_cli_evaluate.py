"""``mixllm evaluate`` on any data: separate test data, the split fraction, the reference LLM, a
price table for data without costs, and the warning when AIQ says nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mixllm.cli import cli
from mixllm.data.longform import write_longform
from tests.conftest import make_clustered

FAST = ("--embedder", "hashing", "--routers", "cheapest,oracle,knn", "--n-boot", "200")
PRICES = "llm,price_in_per_mtok,price_out_per_mtok\n"


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def report(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "report.json").read_text())
    return data


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_longform(make_clustered(60), tmp_path / "data.jsonl")


def routerdc_file(path: Path, n: int = 40) -> Path:
    """A RouterDC task file (no costs): 'small' good on fruit, 'big' good on everything."""
    items = []
    for i in range(n):
        fruit = i % 2 == 0
        words = "apple banana cherry" if fruit else "quantum photon laser"
        items.append(
            {
                "question": f"{words} question {i} " + "word " * (i % 7),
                "scores": {"small": 1.0 if fruit or i % 5 == 0 else 0.0, "big": 1.0},
            }
        )
    path.write_text(json.dumps(items))
    return path


def test_separate_test_data(tmp_path: Path) -> None:
    train = write_longform(make_clustered(50, seed=1), tmp_path / "train.jsonl")
    test = write_longform(make_clustered(30, seed=2), tmp_path / "test.jsonl")
    code, out = run("evaluate", train, "--test", test, "--report", tmp_path / "r", *FAST)
    assert code == 0, out
    context = report(tmp_path / "r")["context"]
    assert (context["n_train"], context["n_test"]) == (50, 30)


def test_test_size(data: Path, tmp_path: Path) -> None:
    code, out = run("evaluate", data, "--test-size", 0.5, "--report", tmp_path / "r", *FAST)
    assert code == 0, out
    context = report(tmp_path / "r")["context"]
    assert (context["n_train"], context["n_test"]) == (30, 30)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("--test-size", "1.5"), "1.5 is not in the range 0.0<x<1.0"),
        (("--test-size", "0.3", "--split", "task", "--test-tasks", "topic0"), "--test-size is for"),
        (("--test", "DATA", "--test-size", "0.3"), "drop --test-size"),
        (("--reference", "gpt-9"), "unknown reference LLM 'gpt-9'; known: ['small', 'big']"),
        (("--output-tokens", "5"), "without a price table; give --prices FILE"),
        (("--prices", "absent.csv"), "absent.csv: no such price table"),
    ],
)
def test_bad_options_exit_2_naming_the_value(
    data: Path, tmp_path: Path, args: tuple[str, ...], expect: str
) -> None:
    args = tuple(str(data) if a == "DATA" else a for a in args)
    code, out = run("evaluate", data, *args, "--report", tmp_path / "r", *FAST)
    assert code == 2, out
    assert expect in " ".join(out.split())


def test_reference(data: Path, tmp_path: Path) -> None:
    code, out = run("evaluate", data, "--reference", "small", "--report", tmp_path / "r", *FAST)
    assert code == 0, out
    context = report(tmp_path / "r")["context"]
    assert context["reference"]["llm"] == "small"
    assert context["cheapest"]["llm"] == "small"  # the reference is the cheapest: AIQ says nothing
    said = " ".join(out.split())
    assert "AIQ says nothing" in said and "reference LLM small is also the cheapest" in said


def test_prices_give_costs_to_data_without_them(tmp_path: Path) -> None:
    source = routerdc_file(tmp_path / "task.json")
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES + "small,1,2\nbig,10,30\n")
    code, out = run(
        "evaluate", source, "--prices", prices, "--output-tokens", 100,
        "--report", tmp_path / "r", *FAST,
    )  # fmt: skip
    assert code == 0, out
    data = report(tmp_path / "r")
    assert "AIQ says nothing" not in out and data["context"]["warnings"] == []
    notes = " ".join(data["context"]["notes"])
    assert "costs computed from the prices in" in notes
    assert "assumed 100 output tokens" in notes
    single = {r["name"]: r["points"][0]["cost_usd"] for r in data["routers"]}
    # mean cost = (mean prompt tokens T x price_in + 100 x price_out) / 1e6
    tokens = single["single:small"] * 1e6 - 100 * 2
    assert 5 < tokens < 20
    assert single["single:big"] == pytest.approx((tokens * 10 + 100 * 30) / 1e6, rel=1e-4)


def test_prices_missing_an_llm_are_named(tmp_path: Path) -> None:
    source = routerdc_file(tmp_path / "task.json")
    prices = tmp_path / "prices.toml"
    prices.write_text('["big"]\nprice_in_per_mtok = 1\nprice_out_per_mtok = 1\n')
    code, out = run("evaluate", source, "--prices", prices, "--report", tmp_path / "r", *FAST)
    assert code == 2
    assert "no price for LLM(s) ['small'] of the data" in " ".join(out.split())


def test_one_price_for_all_warns_that_aiq_says_nothing(tmp_path: Path) -> None:
    source = routerdc_file(tmp_path / "task.json")
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES + "*,0.2,0.2\n")
    code, out = run("evaluate", source, "--prices", prices, "--report", tmp_path / "r", *FAST)
    assert code == 0, out
    said = " ".join(out.split())
    assert "warning: AIQ says nothing on this data: every LLM costs the same" in said
    assert "gain over the best single LLM (big)" in said
    md = (tmp_path / "r" / "report.md").read_text()
    assert "**Warning:** AIQ says nothing" in md
    oracle = next(r for r in report(tmp_path / "r")["routers"] if r["name"] == "oracle")
    assert oracle["gain_over_best_single"]["value"] == pytest.approx(0.0)  # 'big' is always right


@pytest.mark.slow
def test_routerdc_files_with_prices_and_separate_test_data(data_dir: Path, tmp_path: Path) -> None:
    folder = data_dir / "routerdc_split2"
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES + "*,0.2,0.2\n")
    code, out = run(
        "evaluate", folder / "arc_challenge_train.json", "--test", folder / "humaneval_train.json",
        "--prices", prices, "--output-tokens", 200, "--reference", "Meta-Llama-3-8B",
        "--report", tmp_path / "r", *FAST,
    )  # fmt: skip
    assert code == 0, out
    data = report(tmp_path / "r")
    context = data["context"]
    assert (context["n_train"], context["n_test"]) == (820, 115)
    assert context["reference"]["llm"] == "meta-llama/Meta-Llama-3-8B"  # by its short name
    assert len(context["llms"]) == 7
    # one price for every LLM: each query costs the same whichever answers it
    assert "every LLM costs the same" in " ".join(context["warnings"])
    assert "warning: AIQ says nothing" in " ".join(out.split())
    oracle = next(r for r in data["routers"] if r["name"] == "oracle")
    assert oracle["gain_over_best_single"]["value"] > 0


# -- mixllm route: the saved λ and --explain ----------------------------------------------------
def queries_file(path: Path) -> Path:
    rows = [
        {"id": "f", "prompt": "apple banana cherry grape"},
        {"id": "p", "prompt": "photon laser"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_route_without_lam_uses_the_saved_lam(data: Path, tmp_path: Path) -> None:
    code, out = run("fit", data, "--out", tmp_path / "r", "--embedder", "hashing", "--lam", 1e6)
    assert code == 0, out
    queries = queries_file(tmp_path / "q.jsonl")
    code, out = run("route", tmp_path / "r", queries, "--out", tmp_path / "o.jsonl")
    assert code == 0, out
    assert "routed with the router's saved λ = 1e+06" in out
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(x["id"], x["lam"], x["llm"]) for x in lines] == [
        ("f", 1e6, "small"),
        ("p", 1e6, "small"),
    ]
    assert "quality" not in lines[0]


def test_route_with_a_target_says_it(data: Path, tmp_path: Path) -> None:
    code, out = run(
        "fit", data, "--out", tmp_path / "r", "--embedder", "hashing", "--router", "knn",
        "--cost-share", 0.5,
    )  # fmt: skip
    assert code == 0, out
    queries = queries_file(tmp_path / "q.jsonl")
    code, out = run("route", tmp_path / "r", queries, "--out", tmp_path / "o.jsonl")
    assert code == 0, out
    said = " ".join(out.split())
    assert "routed with the router's saved λ = " in said and "(its target: " in said
    lam = float(said.split("saved λ = ")[1].split()[0])
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [x["lam"] for x in lines] == pytest.approx([lam, lam], rel=1e-5)


@pytest.mark.parametrize("lam", [0.0, 30.0, 1e6])
def test_route_explain_gives_the_predictions_behind_each_choice(
    data: Path, tmp_path: Path, lam: float
) -> None:
    code, out = run("fit", data, "--out", tmp_path / "r", "--embedder", "hashing", "--lam", 1)
    assert code == 0, out
    queries = queries_file(tmp_path / "q.jsonl")
    code, out = run(
        "route", tmp_path / "r", queries, "--out", tmp_path / "o.jsonl", "--lam", lam, "--explain"
    )
    assert code == 0, out
    for line in (json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()):
        assert set(line) == {"id", "lam", "llm", "quality", "cost_usd", "others"}
        assert line["lam"] == lam
        (other, (q, c)), *_ = line["others"].items()
        assert {line["llm"], other} == {"small", "big"}
        assert 0.0 <= line["quality"] <= 1.0 and line["cost_usd"] > 0 and c > 0
        if lam == 0.0:  # best predicted quality
            assert line["quality"] >= q
        if lam == 1e6:  # cheapest predicted
            assert line["cost_usd"] <= c
