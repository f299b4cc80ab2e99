"""Collection runs against a scripted upstream: retries, failures, the spending cap, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixllm.collect import (
    CallPolicy,
    CollectSpec,
    Grading,
    PromptRow,
    collect,
    load_pool,
)
from mixllm.collect.calls import MESSAGE_OVERHEAD_TOKENS
from mixllm.data import count_tokens, load_longform
from tests.collect.conftest import (
    PRICES,
    Upstream,
    pool_file,
    prompts_file,
    read_jsonl,
    run_cli,
)


def pairs(path: Path) -> list[tuple[str, str]]:
    return [(r["query_id"], r["llm"]) for r in read_jsonl(path)]


def test_rows_are_the_long_layout_with_cost_from_usage(
    upstream: tuple[Upstream, str], tmp_path: Path
) -> None:
    up, base = upstream
    out = tmp_path / "o.jsonl"
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        json.dumps({"id": "a", "prompt": "What is two plus two?", "reference": "2 answer 5",
                    "task": "math"}) + "\n"
        + json.dumps({"id": "b", "prompt": "Name a colour.", "grader": "none"}) + "\n"
    )  # fmt: skip
    code, output = run_cli("collect", prompts, "--config", pool_file(tmp_path / "pool.toml", base),
                           "--out", out, "--grader", "exact")  # fmt: skip
    assert code == 0, output
    rows = {(r["query_id"], r["llm"]): r for r in read_jsonl(out)}
    assert set(rows) == {(q, m) for q in "ab" for m in ("small", "big")}
    small_a = rows[("a", "small")]
    assert small_a["response"] == "small answer 5"
    assert small_a["prompt_tokens"] == 5 and small_a["output_tokens"] == 3
    assert small_a["cost_usd"] == pytest.approx((5 * 1.0 + 3 * 2.0) / 1e6)
    assert small_a["task"] == "math" and small_a["grader"] == "exact"
    assert small_a["quality"] == 0.0  # "small answer 5" is not "2 answer 5"
    assert rows[("b", "big")]["quality"] is None and rows[("b", "big")]["grader"] == "none"
    assert "task" not in rows[("b", "big")]
    ds = load_longform(out)  # mixllm fit reads it
    assert len(ds) == 2 and set(ds.llms) == {"small", "big"}
    assert sum(up.seen.values()) == 4


def test_retryable_errors_are_retried_and_a_400_is_listed_then_retried(
    upstream: tuple[Upstream, str], tmp_path: Path
) -> None:
    up, base = upstream
    up.failures = {"small": [429, 429], "big": [503, 503, 503]}
    prompts = prompts_file(tmp_path / "p.jsonl", 1)
    pool = pool_file(tmp_path / "pool.toml", base)
    out = tmp_path / "o.jsonl"
    code, output = run_cli("collect", prompts, "--config", pool, "--out", out)
    assert code == 0, output
    assert sorted(pairs(out)) == [("q0", "big"), ("q0", "small")]
    attempts = {r["llm"]: r["attempts"] for r in read_jsonl(out.with_name("o.jsonl.answers.jsonl"))}
    assert attempts == {"small": 3, "big": 4}

    up.fail_always = {"small": 400}
    more = prompts_file(tmp_path / "p2.jsonl", 3)
    code, output = run_cli("collect", more, "--config", pool, "--out", out, "--retries", "1")
    assert code == 1, output
    assert "2 pairs failed" in output and "HTTP 400" in output
    errors = read_jsonl(out.with_name("o.jsonl.errors.jsonl"))
    assert sorted((e["query_id"], e["llm"], e["attempts"]) for e in errors) == [
        ("q1", "small", 1), ("q2", "small", 1),
    ]  # fmt: skip
    assert up.seen[("small", "w1 w1 w1 w1 w1")] == 1  # a 400 is not retried
    up.fail_always = {}
    code, output = run_cli("collect", more, "--config", pool, "--out", out)
    assert code == 0, output
    assert sorted(pairs(out)) == sorted((f"q{i}", m) for i in range(3) for m in ("small", "big"))
    assert read_jsonl(out.with_name("o.jsonl.errors.jsonl")) == []


def spend(out: Path) -> tuple[float, float]:
    answers = sum(r["cost_usd"] for r in read_jsonl(out.with_name(out.name + ".answers.jsonl")))
    judge = sum(r["cost_usd"] for r in read_jsonl(out.with_name(out.name + ".judge.jsonl")))
    return answers, judge


def test_max_usd_holds_with_the_judge_and_a_rerun_continues(
    upstream: tuple[Upstream, str], tmp_path: Path
) -> None:
    up, base = upstream
    prompts = prompts_file(tmp_path / "p.jsonl", 30, words=20)
    pool = pool_file(tmp_path / "pool.toml", base, judge=True)
    out = tmp_path / "o.jsonl"
    cap = 0.02  # ~ a third of what the whole run costs (0.065)
    args = ("collect", prompts, "--config", pool, "--out", out, "--judge", "judge",
            "--max-tokens", "50", "--concurrency", "3")  # fmt: skip
    code, output = run_cli(*args, "--max-usd", cap)
    assert code == 1, output
    text = " ".join(output.split())
    assert f"stopped at --max-usd ${cap:g}" in text and "pairs left" in text
    answers, judge = spend(out)
    assert judge > 0 and answers + judge <= cap, output
    rows = read_jsonl(out)
    assert 0 < len(rows) < 60
    assert [r["quality"] for r in rows] == pytest.approx([6 / 9] * len(rows))  # "[[7]]"
    assert {r["grader"] for r in rows} == {"judge:judge"}
    left = int(text.split(" pairs left")[0].split()[-1])
    assert left == 60 - len(rows)

    code, output = run_cli(*args, "--max-usd", 1.0)
    assert code == 0, output
    assert sorted(pairs(out)) == sorted((f"q{i}", m) for i in range(30) for m in ("small", "big"))
    answers, judge = spend(out)
    assert answers + judge <= 1.0
    assert f"${answers + judge:.6f} in all" in output
    # answers already received in the first run are graded, not asked again
    assert all(n == 1 for (model, _), n in up.answered.items() if model != "judge")


def test_resume_cuts_a_torn_line_and_refuses_other_prompts(
    upstream: tuple[Upstream, str], tmp_path: Path
) -> None:
    _, base = upstream
    prompts = prompts_file(tmp_path / "p.jsonl", 4)
    pool = pool_file(tmp_path / "pool.toml", base, ("small",))
    out = tmp_path / "o.jsonl"
    assert run_cli("collect", prompts, "--config", pool, "--out", out)[0] == 0
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:25])  # killed in the middle of a write
    answers = out.with_name("o.jsonl.answers.jsonl")
    answers.write_text("".join(answers.read_text().splitlines(keepends=True)[:2]))
    code, output = run_cli("collect", prompts, "--config", pool, "--out", out)
    assert code == 0, output
    assert "wrote 2 rows" in output
    assert sorted(pairs(out)) == [(f"q{i}", "small") for i in range(4)]
    assert all(line.endswith("}") for line in out.read_text().splitlines())

    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "q1", "prompt": "something else"}) + "\n")
    code, output = run_cli("collect", other, "--config", pool, "--out", out)
    assert code == 2
    assert "query 'q1' has a different prompt" in output


def test_worst_case_is_reserved_before_each_call(
    upstream: tuple[Upstream, str], tmp_path: Path
) -> None:
    up, base = upstream
    pool = load_pool(pool_file(tmp_path / "pool.toml", base, ("big",)), environ={})
    prompt = "one two three four"
    worst = (count_tokens([prompt])[0] + MESSAGE_OVERHEAD_TOKENS) * 10.0 / 1e6 + 100 * 30.0 / 1e6
    spec = CollectSpec(CallPolicy(max_tokens=100), max_usd=worst * 0.999, grading=Grading("none"))
    summary = collect([PromptRow("a", prompt)], pool, tmp_path / "o.jsonl", spec)
    assert summary.stopped_by_budget and summary.left == 1 and summary.spent_usd == 0
    assert not up.seen  # not even started
    pool = load_pool(tmp_path / "pool.toml", environ={})
    spec = CollectSpec(CallPolicy(max_tokens=100), max_usd=worst, grading=Grading("none"))
    summary = collect([PromptRow("a", prompt)], pool, tmp_path / "o.jsonl", spec)
    assert summary.left == 0 and 0 < summary.spent_usd <= worst
    assert summary.spent_usd == pytest.approx((4 * PRICES["big"][0] + 3 * 30.0) / 1e6)


def test_an_unparseable_judge_leaves_the_quality_unknown_and_is_paid_for(
    upstream: tuple[Upstream, str], tmp_path: Path
) -> None:
    up, base = upstream
    prompts = prompts_file(tmp_path / "p.jsonl", 2)
    out = tmp_path / "o.jsonl"
    code, output = run_cli("collect", prompts, "--config", pool_file(tmp_path / "pool.toml", base),
                           "--llms", "small", "--judge", "big", "--out", out)  # fmt: skip
    assert code == 0, output
    rows = read_jsonl(out)
    assert [(r["llm"], r["quality"], r["grader"]) for r in rows] == [
        ("small", None, "judge:big")
    ] * 2
    judged = read_jsonl(out.with_name("o.jsonl.judge.jsonl"))
    assert [(j["attempts"], j["calls"], j["quality"]) for j in judged] == [(2, 2, None)] * 2
    assert all(r.startswith("big answer ") for j in judged for r in j["replies"])
    _, judge = spend(out)
    assert judge == pytest.approx(sum(j["cost_usd"] for j in judged)) and judge > 0
    assert f"judge ${judge:.6f}" in output
    assert sum(n for (model, _), n in up.seen.items() if model == "big") == 4
