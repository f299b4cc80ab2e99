"""``mixllm route --budget-usd`` and Router.route_within_budget: the whole file within a budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mixllm.errors import ConfigError
from mixllm.router import Router
from tests.test_cli import long_rows, run, write_jsonl

#: Costs exact in binary, the same for every query: predicted cost = recorded cost.
SMALL, BIG = 2.0**-10, 2.0**-7


def fixed_cost_rows(n: int = 40) -> list[dict[str, object]]:
    return [{**r, "cost_usd": SMALL if r["llm"] == "small" else BIG} for r in long_rows(n)]


@pytest.fixture
def fitted(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    rows = fixed_cost_rows()
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    code, out = run("fit", data, "--out", tmp_path / "r", "--embedder", "hashing")
    assert code == 0, out
    prompts = sorted({str(r["prompt"]) for r in rows})[:20]
    queries = write_jsonl(
        tmp_path / "q.jsonl", [{"id": f"x{i}", "prompt": p} for i, p in enumerate(prompts)]
    )
    return tmp_path / "r", queries, prompts


def test_route_within_budget_spends_at_most_the_budget(
    fitted: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    router_dir, queries, prompts = fitted
    budget = 20 * SMALL + 7 * (BIG - SMALL)  # room for exactly 7 queries on 'big'
    code, out = run(
        "route", router_dir, queries, "--out", tmp_path / "o.jsonl", "--budget-usd", budget
    )
    assert code == 0, out
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert len(lines) == 20
    assert {x["budget_usd"] for x in lines} == {budget}
    spend = math.fsum(SMALL if x["llm"] == "small" else BIG for x in lines)
    assert spend <= budget
    assert sum(x["llm"] == "big" for x in lines) == 7  # the whole budget put to use
    assert f"routed 20 queries within ${budget:.6g}: predicted spend ${spend:.6g}" in out
    assert "wrote 20 decisions" in out
    # The same as the Python API.
    router = Router.load(router_dir)
    decisions = router.route_within_budget(prompts, budget)
    assert [d.llm for d in decisions] == [x["llm"] for x in lines]
    assert len({d.lam for d in decisions}) == 1


def test_route_within_budget_candidates(fitted: tuple[Path, Path, list[str]]) -> None:
    router = Router.load(fitted[0])
    decisions = router.route_within_budget(fitted[2], 1.0, candidates=["small"])
    assert {d.llm for d in decisions} == {"small"}
    assert {d.llm for d in router.route_within_budget(fitted[2], 1.0)} == {"big"}
    with pytest.raises(ConfigError, match="below"):
        router.route_within_budget(fitted[2], 0.0)


@pytest.mark.parametrize(
    ("budget", "expect"),
    [
        ("-1", "budget_usd=-1.0; expected a number >= 0"),
        ("nan", "budget_usd=nan; expected a number >= 0"),
        ("lots", "--budget-usd 'lots' is not a number"),
        ("0.001", "budget_usd=0.001 is below $0.0195312"),  # 20 queries x 2**-10
    ],
)
def test_bad_budget_exits_with_the_message(
    fitted: tuple[Path, Path, list[str]], tmp_path: Path, budget: str, expect: str
) -> None:
    router_dir, queries, _ = fitted
    code, out = run("route", router_dir, queries, "--out", tmp_path / "o", "--budget-usd", budget)
    assert code == 2
    assert expect in out
    assert not (tmp_path / "o").exists()


def test_budget_excludes_lam_and_sweep(
    fitted: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    router_dir, queries, _ = fitted
    for extra in (("--lam", "1"), ("--sweep", "3")):
        code, out = run(
            "route", router_dir, queries, "--out", tmp_path / "o", "--budget-usd", "1", *extra
        )
        assert code == 2
        assert "one of --lam, --sweep or --budget-usd" in out


def test_confidence_holds_the_budget_on_what_is_spent(
    fitted: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    """Here the predicted costs are the recorded ones, so the cross-fitted errors are nil and a
    budget held at any confidence routes as the plain one; the saved router keeps them."""
    router_dir, queries, prompts = fitted
    router = Router.load(router_dir)
    assert router.calibration_ is not None and router.calibration_.spend is not None
    assert router.calibration_.spend.by_llm == {
        "big": pytest.approx((1.0, 0.0, 0.0)),
        "small": pytest.approx((1.0, 0.0, 0.0)),
    }
    budget = 20 * SMALL + 7 * (BIG - SMALL)
    plain = router.route_within_budget(prompts, budget)
    held = router.route_within_budget(prompts, budget, confidence=0.99)
    assert [d.llm for d in held] == [d.llm for d in plain]
    code, out = run(
        "route", router_dir, queries, "--out", tmp_path / "o.jsonl",
        "--budget-usd", budget, "--confidence", "0.95",
    )  # fmt: skip
    assert code == 0, out
    spend = 20 * SMALL + 7 * (BIG - SMALL)
    assert f"expected spend ${spend:.6g}, at most ${spend:.6g} with probability 0.95" in out


def test_confidence_needs_a_calibrated_router(fitted: tuple[Path, Path, list[str]]) -> None:
    from mixllm.data import load_dataset

    router = Router("mixllm", embedder="hashing", lam=1.0)
    router.fit(load_dataset(fitted[0].parent / "train.jsonl"))
    assert router.route_within_budget(fitted[2], 1.0)  # the plain budget needs none
    with pytest.raises(ConfigError, match=r"confidence=0\.9 needs the router's measure"):
        router.route_within_budget(fitted[2], 1.0, confidence=0.9)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("--confidence", "0.9"), "--confidence goes with --budget-usd X"),
        (("--budget-usd", "1", "--confidence", "1.5"), "confidence=1.5; expected a probability"),
    ],
)
def test_bad_confidence_exits_with_the_message(
    fitted: tuple[Path, Path, list[str]], tmp_path: Path, args: tuple[str, ...], expect: str
) -> None:
    router_dir, queries, _ = fitted
    code, out = run("route", router_dir, queries, "--out", tmp_path / "o", *args)
    assert code == 2
    assert expect in out
    assert not (tmp_path / "o").exists()
