"""The CLI contract: each bad input ends in a clear message naming the value and exit status 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mixllm.cli import cli
from tests.conftest import make_clustered


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def long_rows(n: int = 40) -> list[dict[str, object]]:
    ds = make_clustered(n)
    return [
        {
            "query_id": o.query_id,
            "prompt": o.prompt,
            "llm": o.llm,
            "quality": o.quality,
            "cost_usd": o.cost_usd,
        }
        for o in ds.outcomes()
    ]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "good.jsonl", long_rows())


def test_fit_then_route_with_lams_and_sweep(good: Path, tmp_path: Path) -> None:
    code, out = run("fit", good, "--out", tmp_path / "r", "--embedder", "hashing")
    assert code == 0, out
    queries = write_csv(tmp_path / "q.csv", [{"sample_id": "a", "prompt": "apple banana"}])
    code, out = run(
        "route", tmp_path / "r", queries, "--out", tmp_path / "o.jsonl", "--lam", 0, 5, 1e6
    )
    assert code == 0, out
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [(x["id"], x["lam"]) for x in lines] == [("a", 0.0), ("a", 5.0), ("a", 1e6)]
    assert lines[-1]["llm"] == "small"
    code, out = run("route", tmp_path / "r", queries, "--out", tmp_path / "s.jsonl", "--sweep", 7)
    assert code == 0, out
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 7


def test_route_takes_lam_or_sweep_not_both(good: Path, tmp_path: Path) -> None:
    run("fit", good, "--out", tmp_path / "r", "--embedder", "hashing")
    queries = write_jsonl(tmp_path / "q.jsonl", [{"id": 1, "prompt": "x"}])
    code, out = run(
        "route", tmp_path / "r", queries, "--out", tmp_path / "o.jsonl", "--lam", 1, "--sweep", 3
    )
    assert code == 2
    assert "one of --lam X [X ...] or --sweep N, not both" in out
    code, out = run("route", tmp_path / "r", queries, "--out", tmp_path / "o", "--lam", 1, "abc")
    assert code == 2
    assert "'abc' is not a number" in out


def mutate(rows: list[dict[str, object]], field: str, value: object) -> list[dict[str, object]]:
    rows = [dict(r) for r in rows]
    rows[3][field] = value
    return rows


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("missing_file", "absent.jsonl"),
        ("unknown_format", "unknown"),
        ("missing_column", "cost_usd"),
        ("non_numeric_cost", "'cheap'"),
        ("negative_cost", "-0.5"),
        ("quality_out_of_range", "1.7"),
        ("duplicate_ids", "duplicate"),
        ("empty_file", "empty"),
    ],
)
def test_fit_rejects_bad_data(case: str, expect: str, tmp_path: Path) -> None:
    rows = long_rows()
    path = {
        "missing_file": lambda: tmp_path / "absent.jsonl",
        "unknown_format": lambda: write_jsonl(tmp_path / "data.xlsx", rows),
        "missing_column": lambda: write_jsonl(
            tmp_path / "d.jsonl", [{k: v for k, v in r.items() if k != "cost_usd"} for r in rows]
        ),
        "non_numeric_cost": lambda: write_jsonl(
            tmp_path / "d.jsonl", mutate(rows, "cost_usd", "cheap")
        ),
        "negative_cost": lambda: write_jsonl(tmp_path / "d.jsonl", mutate(rows, "cost_usd", -0.5)),
        "quality_out_of_range": lambda: write_jsonl(
            tmp_path / "d.jsonl", mutate(rows, "quality", 1.7)
        ),
        "duplicate_ids": lambda: write_jsonl(tmp_path / "d.jsonl", [*rows, rows[0]]),
        "empty_file": lambda: write_jsonl(tmp_path / "d.jsonl", []),
    }[case]()
    code, out = run("fit", path, "--out", tmp_path / "r", "--embedder", "hashing")
    assert code == 2, out
    assert expect in out
    assert "Traceback" not in out


@pytest.mark.parametrize(("option", "value"), [("--router", "knnn"), ("--embedder", "word2vecc")])
def test_unknown_router_or_embedder(option: str, value: str, good: Path, tmp_path: Path) -> None:
    args = ["fit", good, "--out", tmp_path / "r", "--embedder", "hashing", option, value]
    code, out = run(*args)
    assert code == 2
    assert f"'{value}'" in out
    assert "known" in out


def test_evaluate_rejects_unknown_router(good: Path, tmp_path: Path) -> None:
    code, out = run("evaluate", good, "--routers", "knn,nope", "--report", tmp_path / "rep")
    assert code == 2
    assert "'nope'" in out


def test_route_rejects_bad_router_dir_and_queries(good: Path, tmp_path: Path) -> None:
    queries = write_jsonl(tmp_path / "q.jsonl", [{"id": 1, "prompt": "x"}])
    code, out = run("route", tmp_path / "nowhere", queries, "--out", tmp_path / "o", "--lam", 1)
    assert code == 2
    assert "manifest.json" in out
    run("fit", good, "--out", tmp_path / "r", "--embedder", "hashing")
    code, out = run(
        "route", tmp_path / "r", tmp_path / "absent.csv", "--out", tmp_path / "o", "--sweep", 3
    )
    assert code == 2
    assert "absent.csv" in out


@pytest.mark.slow
def test_fit_and_sweep_on_the_shared_routerbench_file(data_dir: Path, tmp_path: Path) -> None:
    source = data_dir / "routerbench" / "routerbench_0shot_subset.csv"
    csv.field_size_limit(2**31 - 1)
    with source.open(newline="") as f:
        rows = [{"sample_id": r["sample_id"], "prompt": r["prompt"]} for r in csv.DictReader(f)]
    queries = write_csv(tmp_path / "queries.csv", rows[::10])  # only sample_id and prompt
    code, out = run("fit", source, "--out", tmp_path / "r", "--embedder", "hashing")
    assert code == 0, out
    assert "11 LLMs, 2541 queries" in out
    code, out = run("route", tmp_path / "r", queries, "--out", tmp_path / "o.jsonl", "--sweep", 20)
    assert code == 0, out
    lines = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(lines) == 20 * len(rows[::10])
    lams = sorted({x["lam"] for x in lines})
    assert len(lams) == 20
    by_lam = {lam: [x["llm"] for x in lines if x["lam"] == lam] for lam in (lams[0], lams[-1])}
    assert set(by_lam[lams[-1]]) == {"mistralai/mistral-7b-chat"}  # the cheapest LLM
    assert by_lam[lams[0]].count("gpt-4-1106-preview") > len(by_lam[lams[0]]) / 2


@pytest.mark.parametrize("command", ["fit", "evaluate", "demo", "simulate"])
def test_default_embedder_is_the_last_64_tokens(command: str) -> None:
    code, out = run(command, "--help")
    assert code == 0, out
    assert "[default: static?max_tokens=64&keep=end]" in " ".join(out.split())
