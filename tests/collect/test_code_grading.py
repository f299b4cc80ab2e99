"""Code answers graded by their tests through ``mixllm collect``: an answer that loops forever or
deletes files costs nothing but its own row (quality 0), and the other rows are graded as usual."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mixllm.serve.run import serve_in_thread
from tests.collect.conftest import pool_file, read_jsonl, run_cli

TESTS = "assert double(2) == 4\nassert double(-3) == -6\n"


def _answers(sentinel: Path) -> dict[str, str]:
    """What each fake LLM answers to every prompt: code in a markdown fence."""
    good = "def double(x):\n    return 2 * x\n"
    return {
        "small": f"Here you go:\n```python\n{good}```\n",
        "big": "```python\ndef double(x):\n    return x + 2\n```",  # wrong
        "loop": "```python\nwhile True:\n    pass\n```",
        "wipe": (f"```python\nimport shutil\nshutil.rmtree({str(sentinel)!r})\n{good}```"),
    }


def _upstream(answers: dict[str, str]) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        model = str((await request.json())["model"])
        text = answers[model]
        message = {"role": "assistant", "content": text}
        return JSONResponse({
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split())},
        })  # fmt: skip

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def test_code_answers_are_graded_in_the_sandbox_and_a_bad_one_costs_only_its_row(
    tmp_path: Path,
) -> None:
    sentinel = tmp_path / "precious"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("do not delete")
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {"query_id": f"q{i}", "prompt": f"Write double(x), variant {i}.", "reference": TESTS,
         "grader": "code", "task": "code"}
        for i in range(2)
    ]  # fmt: skip
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    llms = ("small", "big", "loop", "wipe")
    with serve_in_thread(_upstream(_answers(sentinel))) as base:
        pool = pool_file(tmp_path / "pool.toml", base, ("small", "big"))
        # two more priced LLMs at the same upstream
        extra = "".join(
            f'[[upstreams]]\nllm = "{m}"\nbase_url = "{base}"\nmodel = "{m}"\n'
            "price_in_per_mtok = 1.0\nprice_out_per_mtok = 1.0\n\n"
            for m in ("loop", "wipe")
        )
        pool.write_text(pool.read_text() + extra)
        out = tmp_path / "outcomes.jsonl"
        code, output = run_cli(
            "collect", prompts, "--config", pool, "--out", out, "--code-timeout", "2"
        )
    assert code == 0, output
    got = {(r["query_id"], r["llm"]): r for r in read_jsonl(out)}
    assert set(got) == {(f"q{i}", m) for i in range(2) for m in llms}
    for i in range(2):
        assert got[(f"q{i}", "small")]["quality"] == 1.0
        assert got[(f"q{i}", "big")]["quality"] == 0.0
        assert got[(f"q{i}", "loop")]["quality"] == 0.0  # timed out
        assert got[(f"q{i}", "wipe")]["quality"] == 0.0  # refused by the sandbox
        assert all(got[(f"q{i}", m)]["grader"] == "code" for m in llms)
    assert (sentinel / "keep.txt").read_text() == "do not delete"


def test_a_bad_code_timeout_is_refused(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"query_id": "q", "prompt": "p"}) + "\n")
    pool = pool_file(tmp_path / "pool.toml", "http://127.0.0.1:9/v1")
    code, output = run_cli(
        "collect", prompts, "--config", pool, "--out", tmp_path / "o.jsonl", "--code-timeout", "0"
    )
    assert code == 2
    assert "--code-timeout 0" in output
