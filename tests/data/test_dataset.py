from __future__ import annotations

import numpy as np
import pytest

from mixllm.data.combine import concat
from mixllm.data.dataset import Dataset, Outcome
from mixllm.errors import DataError, UnknownLLMError


def rows() -> list[Outcome]:
    return [
        Outcome("q1", "hi", "a", 1.0, 0.1, prompt_tokens=3, task="t"),
        Outcome("q1", "hi", "b", None, 0.2, task="t"),
        Outcome("q2", "yo", "a", 0.0, 0.1, task="u"),
    ]


def test_from_outcomes_marks_missing_as_nan_not_zero() -> None:
    ds = Dataset.from_outcomes(rows())
    assert ds.llms == ("a", "b")
    assert ds.quality[0, 0] == 1.0
    assert np.isnan(ds.quality[0, 1])  # recorded as missing
    assert np.isnan(ds.quality[1, 1])  # never recorded
    assert ds.prompt_tokens[0] == 3 and np.isnan(ds.prompt_tokens[1])


def test_long_table_round_trip() -> None:
    ds = Dataset.from_outcomes(rows())
    back = Dataset.from_outcomes(ds.outcomes())
    np.testing.assert_array_equal(back.quality, ds.quality)
    np.testing.assert_array_equal(back.cost_usd, ds.cost_usd)
    assert list(back.query_ids) == list(ds.query_ids)


def test_dataset_is_immutable() -> None:
    ds = Dataset.from_outcomes(rows())
    with pytest.raises(ValueError, match="read-only"):
        ds.quality[0, 0] = 0.5
    sub = ds.subset([1])
    assert len(sub) == 1 and len(ds) == 2 and sub.query_ids[0] == "q2"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Outcome("q3", "x", "a", 1.5, 0.1), r"quality 1\.5 .*'q3'.* outside \[0, 1\]"),
        (Outcome("q3", "x", "a", 1.0, -0.1), r"cost_usd -0\.1 .*'q3'.* negative"),
        (Outcome("q1", "hi", "a", 1.0, 0.1), r"duplicate outcome .*'q1'.*'a'"),
        (Outcome("q1", "other", "c", 1.0, 0.1), r"'q1' has two different prompts"),
    ],
)
def test_bad_rows_are_rejected_with_the_value(bad: Outcome, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Dataset.from_outcomes([*rows(), bad])


def test_empty_and_unknown_llm() -> None:
    with pytest.raises(DataError, match="empty"):
        Dataset.from_outcomes([])
    with pytest.raises(UnknownLLMError, match=r"'zz'; known: \['a', 'b'\]"):
        Dataset.from_outcomes(rows()).llm_index("zz")


def test_select_llms_and_concat_union() -> None:
    ds = Dataset.from_outcomes(rows())
    only_b = ds.select_llms(["b"])
    assert only_b.llms == ("b",) and only_b.quality.shape == (2, 1)
    other = Dataset.from_outcomes([Outcome("q9", "z", "c", 1.0, 0.3)])
    both = concat([ds, other])
    assert both.llms == ("a", "b", "c") and len(both) == 3
    assert np.isnan(both.quality[2, 0]) and both.quality[2, 2] == 1.0
    with pytest.raises(DataError, match="duplicate query ids"):
        concat([ds, ds])
