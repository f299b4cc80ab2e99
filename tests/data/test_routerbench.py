from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.routerbench import is_routerbench_columns, load_routerbench
from mixllm.errors import DataError
from tests.data.conftest import WIDE_PRICES

LLMS = (
    "WizardLM/WizardLM-13B-V1.2",
    "claude-instant-v1",
    "claude-v1",
    "claude-v2",
    "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview",
    "meta/code-llama-instruct-34b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
)


def test_shared_subset_shape_tasks_and_llms(routerbench: Dataset) -> None:
    assert len(routerbench) == 2541
    assert routerbench.llms == LLMS
    assert routerbench.task_names == ("arc-challenge", "mbpp", "winogrande")
    tasks = list(routerbench.tasks)
    assert (tasks.count("arc-challenge"), tasks.count("winogrande"), tasks.count("mbpp")) == (
        1173,
        1024,
        344,
    )
    assert routerbench.query_ids[0] == "arc-challenge.test.0"


def test_shared_subset_reference_figures(routerbench: Dataset) -> None:
    gpt4, mistral = (
        routerbench.llm_index("gpt-4-1106-preview"),
        routerbench.llm_index("mistralai/mistral-7b-chat"),
    )
    assert np.nanmean(routerbench.quality[:, gpt4]) == pytest.approx(0.88, abs=0.01)
    assert routerbench.cost_usd[:, gpt4].mean() == pytest.approx(0.0050, abs=0.0001)
    assert np.nanmean(routerbench.quality[:, mistral]) == pytest.approx(0.58, abs=0.015)
    assert routerbench.cost_usd[:, mistral].mean() == pytest.approx(0.00008, abs=0.00001)


def test_blanks_are_missing_not_zero(routerbench: Dataset) -> None:
    missing = np.isnan(routerbench.quality).sum(axis=0)
    assert missing[routerbench.llm_index("gpt-3.5-turbo-1106")] == 5
    assert missing.sum() == 45
    assert not np.isnan(routerbench.cost_usd).any()


def test_prompts_and_responses_are_parsed_text(routerbench: Dataset) -> None:
    assert routerbench.responses is not None
    assert not any(str(p).startswith("['") for p in routerbench.prompts)
    assert routerbench.prompts[0].startswith("George wants to warm his hands")
    assert routerbench.responses[0, routerbench.llm_index("gpt-4-1106-preview")] == "C"
    assert np.median(routerbench.prompt_tokens) > 300
    assert not np.isnan(routerbench.output_tokens).any()


def test_recorded_costs_equal_fitted_prices_times_tokens(routerbench: Dataset) -> None:
    for j, name in enumerate(routerbench.llms):
        llm = routerbench.llm(name)
        rebuilt = llm.cost_usd(routerbench.prompt_tokens, routerbench.output_tokens[:, j])
        np.testing.assert_allclose(rebuilt, routerbench.cost_usd[:, j], rtol=1e-9)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pkl"])
def test_reads_csv_parquet_and_trusted_pickles(
    suffix: str, wide: Callable[..., Any], tmp_path: Path
) -> None:
    frame = wide()
    path = tmp_path / f"rb{suffix}"
    {
        ".csv": lambda: frame.to_csv(path, index=False),
        ".parquet": lambda: frame.to_parquet(path),
        ".pkl": lambda: frame.to_pickle(path),
    }[suffix]()
    ds = load_routerbench(path, allow_pickle=suffix == ".pkl")
    assert ds.llms == ("big", "small")
    assert ds.name == "rb"
    assert ds.prompts[1] == "Question 1: what is 1 + 1? Think."
    for name, (p_in, p_out) in WIDE_PRICES.items():
        assert ds.prices[name].price_in_per_mtok == pytest.approx(p_in)
        assert ds.prices[name].price_out_per_mtok == pytest.approx(p_out)


def test_refuses_pickles_unless_allowed(wide: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "rb.pkl"
    wide().to_pickle(path)
    with pytest.raises(DataError, match=r"rb\.pkl: refusing to read a pickle.*runs code"):
        load_routerbench(path)


def test_full_table_variants(wide: Callable[..., Any], tmp_path: Path) -> None:
    """What the full pickle has beyond the subset: list cells, plain prompts, other tasks."""
    frame = wide().astype({"prompt": object, "big|model_response": object})
    frame.at[0, "prompt"] = ["Turn one.", "Turn two."]
    frame.at[1, "prompt"] = "[Question] plain text that only looks like a list"
    frame.at[2, "prompt"] = "[__import__('os').system('echo pwned')]"
    frame.at[3, "big|model_response"] = None
    frame["eval_name"] = ["mt-bench", "mmlu-x", "gsm8k", "hellaswag", "mbpp", "consensus_summary"]
    path = tmp_path / "full.pkl"
    frame.to_pickle(path)
    ds = load_routerbench(path, allow_pickle=True)
    assert list(ds.prompts[:3]) == [
        "Turn one.\nTurn two.",
        "[Question] plain text that only looks like a list",
        "[__import__('os').system('echo pwned')]",
    ]
    assert ds.responses is not None
    assert ds.responses[3, 0] is None
    assert np.isnan(ds.output_tokens[3, 0])
    assert len(ds.task_names) == 6


def test_without_response_columns(wide: Callable[..., Any], tmp_path: Path) -> None:
    frame = wide().drop(columns=["big|model_response", "small|model_response"])
    frame.to_csv(tmp_path / "rb.csv", index=False)
    ds = load_routerbench(tmp_path / "rb.csv")
    assert ds.responses is None
    assert ds.prices == {}
    assert np.isnan(ds.output_tokens).all()


def test_header_detection() -> None:
    assert is_routerbench_columns(["sample_id", "prompt", "a", "a|total_cost"])
    assert not is_routerbench_columns(["query_id", "prompt", "llm", "cost_usd"])


def write_bad(frame: Any, tmp_path: Path, column: str, row: int, value: object) -> Path:
    frame[column] = frame[column].astype(object)
    frame.at[row, column] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def test_missing_column_is_named(wide: Callable[..., Any], tmp_path: Path) -> None:
    wide().drop(columns=["small"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv: missing required column\(s\) \['small'\]"):
        load_routerbench(tmp_path / "bad.csv")


def test_missing_sample_id_is_named(wide: Callable[..., Any], tmp_path: Path) -> None:
    wide().drop(columns=["sample_id"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad\.csv: missing required column\(s\) \['sample_id'\]"):
        load_routerbench(tmp_path / "bad.csv")


def test_no_llm_columns(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("sample_id,prompt,eval_name\na,b,c\n")
    with pytest.raises(DataError, match=r"bad\.csv: no LLM columns"):
        load_routerbench(tmp_path / "bad.csv")


def test_non_numeric_cost(wide: Callable[..., Any], tmp_path: Path) -> None:
    path = write_bad(wide(), tmp_path, "big|total_cost", 2, "cheap")
    with pytest.raises(
        DataError,
        match=r"bad\.csv: row 3 \(sample_id 'toy\.test\.2'\), column 'big\|total_cost': "
        r"cost 'cheap' is not a number",
    ):
        load_routerbench(path)


def test_negative_cost(wide: Callable[..., Any], tmp_path: Path) -> None:
    path = write_bad(wide(), tmp_path, "small|total_cost", 4, -0.5)
    with pytest.raises(
        DataError, match=r"bad\.csv: row 5 .*column 'small\|total_cost': cost -0\.5 is outside"
    ):
        load_routerbench(path)


def test_quality_outside_unit_interval(wide: Callable[..., Any], tmp_path: Path) -> None:
    path = write_bad(wide(), tmp_path, "big", 0, 1.7)
    with pytest.raises(
        DataError, match=r"bad\.csv: row 1 .*column 'big': quality 1\.7 is outside \[0, 1\]"
    ):
        load_routerbench(path)


def test_duplicate_sample_ids(wide: Callable[..., Any], tmp_path: Path) -> None:
    path = write_bad(wide(), tmp_path, "sample_id", 3, "toy.test.1")
    with pytest.raises(
        DataError, match=r"bad\.csv: duplicate sample_id 'toy\.test\.1' \(rows 2 and 4\)"
    ):
        load_routerbench(path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        load_routerbench(tmp_path / "empty.csv")


def test_header_only(wide: Callable[..., Any], tmp_path: Path) -> None:
    wide().iloc[:0].to_csv(tmp_path / "head.csv", index=False)
    with pytest.raises(DataError, match=r"head\.csv: no rows"):
        load_routerbench(tmp_path / "head.csv")


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "rb.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"rb\.xlsx: unknown RouterBench format '\.xlsx'"):
        load_routerbench(tmp_path / "rb.xlsx")
    with pytest.raises(DataError, match=r"absent\.csv: no such file"):
        load_routerbench(tmp_path / "absent.csv")


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "rb.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"rb\.parquet: cannot read the table"):
        load_routerbench(tmp_path / "rb.parquet")
