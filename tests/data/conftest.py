"""Fixtures of the data tests: the shared RouterBench subset (loaded once) and small generated
tables in the RouterBench wide layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.routerbench import load_routerbench
from mixllm.data.tokens import count_tokens

#: Prices (USD per Mtok, in/out) of the two LLMs of the generated wide tables.
WIDE_PRICES = {"big": (10.0, 30.0), "small": (0.5, 1.5)}


@pytest.fixture(scope="session")
def routerbench_csv(data_dir: Path) -> Path:
    return data_dir / "routerbench" / "routerbench_0shot_subset.csv"


@pytest.fixture(scope="session")
def routerbench(routerbench_csv: Path) -> Dataset:
    """The shared 2,541-row RouterBench subset, loaded once per test session."""
    return load_routerbench(routerbench_csv)


@pytest.fixture(scope="session")
def routellm_dir(data_dir: Path) -> Path:
    return data_dir / "routellm"


def _wide_rows(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(n):
        prompt = f"Question {i}: what is {i} + {i}?" + " Think." * i
        row: dict[str, Any] = {
            "sample_id": f"toy.test.{i}",
            "prompt": str([prompt]),
            "eval_name": "toy" if i % 2 else "other",
            "oracle_model_to_route_to": "small",
        }
        for j, (llm, (p_in, p_out)) in enumerate(WIDE_PRICES.items()):
            answer = f"The answer is {2 * i}." + " Indeed." * (i * (j + 1))
            tokens = count_tokens([prompt, answer])
            row[llm] = float((i + j) % 2)
            row[f"{llm}|total_cost"] = (tokens[0] * p_in + tokens[1] * p_out) / 1e6
            row[f"{llm}|model_response"] = str([answer])
        rows.append(row)
    return rows


@pytest.fixture
def wide() -> Callable[..., Any]:
    """Make a small RouterBench-layout pandas DataFrame (2 LLMs, costs = tokens × WIDE_PRICES)."""
    import pandas as pd

    def make(n: int = 6) -> pd.DataFrame:
        return pd.DataFrame(_wide_rows(n))

    return make
