"""Bad prompts, pools and options end in a message naming the value and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixllm.collect import pool_from_text, read_prompts, sample_prompts
from mixllm.errors import ConfigError, DataError
from tests.collect.conftest import pool_file, prompts_file, run_cli

BASE = "http://127.0.0.1:9/v1"  # never reached: every case fails before any call


def test_prompts_read_from_jsonl_and_csv(tmp_path: Path) -> None:
    jl = tmp_path / "p.jsonl"
    jl.write_text(
        json.dumps({"id": 7, "prompt": "2+2?", "reference": "4", "task": "math"}) + "\n\n"
        + json.dumps({"query_id": "b", "prompt": "Capital of France?", "grader": "judge"})
        + "\n"
    )  # fmt: skip
    rows = read_prompts(jl)
    assert [(r.query_id, r.reference, r.task, r.grader) for r in rows] == [
        ("7", "4", "math", None),
        ("b", None, None, "judge"),
    ]
    csv = tmp_path / "p.csv"
    csv.write_text('query_id,prompt,reference\nx,"a, b",B\ny,c,\n')
    assert [(r.prompt, r.reference) for r in read_prompts(csv)] == [("a, b", "B"), ("c", None)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"query_id": "a"}\n', "line 1: missing or empty field 'prompt'"),
        ('{"prompt": "x"}\n', "line 1: missing or empty field 'query_id'"),
        ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
         "line 2: duplicate query id 'a' (first on line 1)"),
        ('{"id": "a", "prompt": "x", "grader": "vibes"}\n', "field 'grader' = 'vibes'"),
        ('{"id": "a", "prompt": ["x"]}\n', "field 'prompt' = ['x'] is not text"),
        ("not json\n", "line 1: invalid JSON"),
        ("", "no prompts"),
    ],
)  # fmt: skip
def test_bad_prompt_rows_name_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(DataError, match=r"p\.jsonl") as info:
        read_prompts(path)
    assert expected in str(info.value)


def test_sample_is_seeded_and_keeps_file_order(tmp_path: Path) -> None:
    rows = read_prompts(prompts_file(tmp_path / "p.jsonl", 50))
    a, b = sample_prompts(rows, 10, seed=3), sample_prompts(rows, 10, seed=3)
    assert a == b and len(a) == 10
    ids = [int(r.query_id[1:]) for r in a]
    assert ids == sorted(ids)
    assert sample_prompts(rows, 10, seed=4) != a


def test_pool_needs_prices_and_known_keys() -> None:
    table = f'[[upstreams]]\nllm = "small"\nbase_url = "{BASE}"\nmodel = "m"\n'
    with pytest.raises(ConfigError, match=r"'small'.*missing \['price_in_per_mtok'"):
        pool_from_text(table, environ={})
    with pytest.raises(ConfigError, match=r"price_out_per_mtok=-1; expected a number >= 0"):
        pool_from_text(table + "price_in_per_mtok = 1\nprice_out_per_mtok = -1\n", environ={})
    with pytest.raises(ConfigError, match=r"unknown tables \['upstream'\]"):
        pool_from_text(table.replace("upstreams", "upstream"), environ={})


def test_cli_bad_inputs_exit_2_naming_the_value(tmp_path: Path) -> None:
    prompts = prompts_file(tmp_path / "p.jsonl", 3)
    pool = pool_file(tmp_path / "pool.toml", BASE)
    out = tmp_path / "o.jsonl"
    no_prompt = tmp_path / "bad.csv"
    no_prompt.write_text("query_id,question\na,what?\n")
    cases = [
        ((no_prompt, "--config", pool), "bad.csv line 2: missing or empty field 'prompt'"),
        ((prompts, "--config", pool, "--llms", "small,huge"),
         "unknown LLM(s) ['huge']; the pool has ['small', 'big']"),
        ((prompts, "--config", pool, "--judge", "oracle"), "--judge: unknown LLM 'oracle'"),
        ((prompts, "--config", pool, "--grader", "vibes"), "unknown grader 'vibes'"),
        ((prompts, "--config", pool, "--grader", "judge"), "--grader judge needs a judge"),
        ((prompts, "--config", pool, "--concurrency", "0"), "--concurrency 0; expected"),
        ((prompts, "--config", pool, "--max-usd", "-1"), "--max-usd -1.0; expected"),
        ((prompts,), "give exactly one of --config POOL.toml or --replay DATA"),
    ]  # fmt: skip
    for args, expected in cases:
        code, output = run_cli("collect", *args, "--out", out)
        assert code == 2, (args, output)
        assert expected in " ".join(output.split()), (args, output)
    no_price = tmp_path / "no_price.toml"
    no_price.write_text(
        pool.read_text().replace("price_in_per_mtok = 10.0\nprice_out_per_mtok = 30.0\n", "")
    )
    code, output = run_cli("collect", prompts, "--config", no_price, "--out", out)
    assert code == 2
    assert "[[upstreams]] 'big': missing ['price_in_per_mtok', 'price_out_per_mtok']" in output
    assert not out.exists()
