"""The mean-output-length cost baseline."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.data.dataset import Dataset, Outcome
from mixllm.errors import DataError, NotFittedError
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.types import LLM


def _dataset() -> Dataset:
    rows = [
        Outcome("q1", "a", "priced", 1.0, 0.9, prompt_tokens=100, output_tokens=10),
        Outcome("q2", "b", "priced", 1.0, 0.9, prompt_tokens=300, output_tokens=30),
        Outcome("q1", "a", "unpriced", 1.0, 0.02, prompt_tokens=100),
        Outcome("q2", "b", "unpriced", 1.0, None, prompt_tokens=300),
        Outcome("q1", "a", "unknown", 1.0, None, prompt_tokens=100),
    ]
    return Dataset.from_outcomes(rows, prices={"priced": LLM("priced", 2.0, 10.0)})


def test_prices_times_prompt_and_mean_output_tokens() -> None:
    model = MeanLengthCostModel().fit(_dataset())
    cost = model.predict(np.array([1000.0, np.nan]))
    # priced: 1000 × 2 + 20 × 10 per million; NaN prompt tokens use the training mean (200).
    np.testing.assert_allclose(cost[:, 0], [2200e-6, 600e-6])
    np.testing.assert_allclose(cost[:, 1], [0.02, 0.02])  # no prices: mean recorded cost
    np.testing.assert_allclose(cost[:, 2], [0.0, 0.0])  # nothing known


def test_prices_without_output_tokens_fall_back_to_mean_cost() -> None:
    ds = _dataset().with_prices({"unpriced": LLM("unpriced", 1.0, 1.0)})
    cost = MeanLengthCostModel().fit(ds).predict(np.array([1e6]))
    assert cost[0, 1] == pytest.approx(0.02)


def test_row_aligned_prompt_tokens_override_the_dataset() -> None:
    model = MeanLengthCostModel().fit(_dataset(), np.array([1000.0, 1000.0]))
    assert model.mean_prompt_tokens_ == 1000.0
    with pytest.raises(DataError, match="prompt_tokens has shape"):
        MeanLengthCostModel().fit(_dataset(), np.array([1.0]))


def test_arrays_round_trip_and_not_fitted() -> None:
    model = MeanLengthCostModel().fit(_dataset())
    again = MeanLengthCostModel.from_arrays(model.get_arrays())
    tokens = np.array([5.0, 50.0, np.nan])
    np.testing.assert_array_equal(again.predict(tokens), model.predict(tokens))
    with pytest.raises(NotFittedError):
        MeanLengthCostModel().predict(tokens)
