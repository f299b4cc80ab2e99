from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixllm.data import load_dataset, load_routerdc
from mixllm.data.routerdc import RouterDCPrices
from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError, DataError
from mixllm.types import LLM

# Invented questions in RouterDC's layout (not taken from the RouterDC repository).
MATH = [
    {"question": "Ann has 3 pears and buys 4 more. How many pears?", "scores": {"a/x": 1.0}},
    {"question": "What is 17 times 3?", "scores": {"a/x": 0.0, "b/y": 1.0}},
]
CODE = [
    {"question": "def double(n):\n    '''Return n doubled.'''\n", "scores": {"b/y": 0.4}},
]


def write(path: Path, items: object) -> Path:
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write(tmp_path / "mathqa-test.json", MATH)
    write(tmp_path / "code.json", CODE)
    return tmp_path


def test_folder_is_one_dataset_with_tasks_from_file_stems(folder: Path) -> None:
    ds = load_routerdc(folder)
    assert ds.llms == ("b/y", "a/x")  # code.json is read first (files sorted by name)
    assert ds.query_ids.tolist() == ["code-0", "mathqa-test-0", "mathqa-test-1"]
    assert ds.tasks.tolist() == ["code", "mathqa-test", "mathqa-test"]
    np.testing.assert_array_equal(ds.quality, [[0.4, np.nan], [np.nan, 1.0], [1.0, 0.0]])
    assert np.isnan(ds.cost_usd).all() and np.isnan(ds.output_tokens).all()
    expected = count_tokens([str(p) for p in ds.prompts])
    np.testing.assert_array_equal(ds.prompt_tokens, expected)


def test_costs_from_prices(folder: Path) -> None:
    prices: RouterDCPrices = {"a/x": (1.0, 3.0), "b/y": LLM("b/y", 0.5, 0.5)}
    ds = load_routerdc(folder, prices=prices)
    ptok = ds.prompt_tokens
    j = ds.llm_index("a/x")
    known = np.isfinite(ds.quality[:, j])
    np.testing.assert_allclose(ds.cost_usd[known, j], ptok[known] * 1.0 / 1e6)
    assert ds.prices["a/x"] == LLM("a/x", 1.0, 3.0)
    with_out = load_routerdc(folder, prices=prices, output_tokens=20)
    np.testing.assert_allclose(with_out.cost_usd[known, j], (ptok[known] * 1.0 + 20 * 3.0) / 1e6)
    assert (with_out.output_tokens[known, j] == 20).all()


def test_list_of_files_and_load_dataset(folder: Path) -> None:
    one = load_routerdc([folder / "mathqa-test.json"])
    assert len(one) == 2 and one.task_names == ("mathqa-test",)
    assert len(load_dataset(folder / "code.json")) == 1
    assert load_dataset(folder).query_ids.tolist() == load_routerdc(folder).query_ids.tolist()


def test_null_score_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "t.json", [{"question": "q?", "scores": {"a": None, "b": 0.5}}])
    ds = load_routerdc(path, prices={"a": (1, 1), "b": (1, 1)})
    assert ds.llms == ("b",)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"question": "q"}, r"bad\.json: expected a JSON list .* found dict"),
        ([], r"bad\.json: no questions"),
        (["text"], r"bad\.json item 0: expected an object"),
        ([{"scores": {"a": 1.0}}], r"bad\.json item 0: missing or empty field 'question'"),
        ([{"question": " ", "scores": {}}], r"item 0: missing or empty field 'question'"),
        ([{"question": "q", "scores": [1.0]}], r"item 0: field 'scores' = \[1\.0\] is not"),
        ([{"question": "q", "scores": {"a": 1.5}}], r"item 0: score for LLM 'a' = 1\.5 is out"),
        ([{"question": "q", "scores": {"a": -0.1}}], r"score for LLM 'a' = -0\.1 is outside"),
        ([{"question": "q", "scores": {"a": "0.5"}}], r"score for LLM 'a' = '0\.5' is not a"),
        ([{"question": "q", "scores": {"a": True}}], r"score for LLM 'a' = True is not a num"),
    ],
)
def test_bad_content_names_file_item_and_value(tmp_path: Path, items: object, message: str) -> None:
    path = write(tmp_path / "bad.json", items)
    with pytest.raises(DataError, match=message):
        load_routerdc(path)


def test_bad_files_and_arguments(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.json: invalid JSON"):
        load_routerdc(tmp_path / "broken.json")
    with pytest.raises(DataError, match=r"nope\.json: no such file"):
        load_routerdc(tmp_path / "nope.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no RouterDC \.json files"):
        load_routerdc(empty)
    good = write(tmp_path / "good.json", MATH)
    with pytest.raises(ConfigError, match="price of LLM 'a/x'"):
        load_routerdc(good, prices={"a/x": (-1.0, 1.0)})
    with pytest.raises(ConfigError, match="output_tokens=-3"):
        load_routerdc(good, output_tokens=-3)


def test_folder_with_a_table_still_reads_the_table(tmp_path: Path) -> None:
    write(tmp_path / "extra.json", MATH)
    row = {"query_id": "q1", "prompt": "hi", "llm": "m", "cost_usd": 0.1, "quality": 1.0}
    (tmp_path / "data.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert load_dataset(tmp_path).llms == ("m",)
