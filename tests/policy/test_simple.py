"""Random, single, cheapest and oracle baselines."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.errors import DataError, UnknownLLMError
from mixllm.policy import (
    CheapestPredictor,
    OraclePredictor,
    RandomPredictor,
    SinglePredictor,
    choose,
)
from tests.policy.conftest import Split, make_set, split, take

LAMS = (0.0, 1.0, 1e3, 1e9)


def test_random_routes_a_query_the_same_way_in_any_batch(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    predictor = RandomPredictor(seed=7).fit(train, qtrain)
    full = predictor.predict(qtest).quality
    reversed_rows = np.arange(len(qtest))[::-1]
    np.testing.assert_array_equal(predictor.predict(take(qtest, reversed_rows)).quality, full[::-1])
    other = RandomPredictor(seed=8).fit(train, qtrain).predict(qtest).quality
    assert not np.array_equal(other, full)


def test_random_is_uniform_and_ignores_lambda() -> None:
    train, qtrain, _, qtest = split(*make_set(2100, n_llms=3, n_clusters=3), 100)
    pred = RandomPredictor(seed=0).fit(train, qtrain).predict(qtest)
    picks = [choose(pred, lam) for lam in LAMS]
    assert all((p == picks[0]).all() for p in picks)
    shares = np.bincount(picks[0], minlength=3) / len(qtest)
    np.testing.assert_allclose(shares, 1 / 3, atol=0.04)


def test_single_picks_its_llm_for_every_lambda(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    for j, llm in enumerate(train.llms):
        pred = SinglePredictor(llm).fit(train, qtrain).predict(qtest)
        assert all((choose(pred, lam) == j).all() for lam in LAMS)


def test_single_unknown_llm_lists_the_known_ones(two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    with pytest.raises(UnknownLLMError, match=r"'gpt5'; known: \['llm-0', 'llm-1'\]"):
        SinglePredictor("gpt5").fit(train, qtrain)


def test_cheapest_picks_the_lowest_mean_cost_for_every_lambda() -> None:
    names = ["pricey", "cheap", "mid"]
    train, qtrain, _, qtest = split(*make_set(100, llms=names), 80)
    cost = np.array(train.cost_usd)
    cost[:, 0] = 0.5
    cost[:, 1] = np.linspace(0.0, 0.01, len(train))
    cost[:, 2] = 0.02
    cost[0, 1] = np.nan  # a missing cost does not count
    train = replace(train, cost_usd=cost)
    predictor = CheapestPredictor().fit(train, qtrain)
    pred = predictor.predict(qtest)
    assert predictor.llm_ == "cheap"
    assert all((choose(pred, lam) == 1).all() for lam in LAMS)


def test_oracle_predicts_the_recorded_outcomes(two_clusters: Split) -> None:
    train, qtrain, test, qtest = two_clusters
    quality = np.array(test.quality)
    quality[0, 0] = np.nan
    cost = np.array(test.cost_usd)
    cost[1, 1] = np.nan
    test = replace(test, quality=quality, cost_usd=cost)
    pred = OraclePredictor(test).fit(train, qtrain).predict(qtest)
    assert pred.quality[0, 0] == 0.0
    np.testing.assert_array_equal(pred.quality[1:], test.quality[1:])
    assert pred.cost_usd[1, 1] == pytest.approx(np.nanmean(test.cost_usd[:, 1]))
    assert pred.cost_usd[0, 0] == test.cost_usd[0, 0]


def test_oracle_reorders_columns_and_rejects_unknown_queries(two_clusters: Split) -> None:
    train, qtrain, test, qtest = two_clusters
    swapped = test.select_llms(list(reversed(test.llms)))
    pred = OraclePredictor(swapped).fit(train, qtrain).predict(qtest)
    np.testing.assert_array_equal(pred.quality, test.quality)
    with pytest.raises(DataError, match="no outcomes for query ids"):
        OraclePredictor(test).fit(train, qtrain).predict(qtrain)
    with pytest.raises(UnknownLLMError, match="lack LLMs"):
        OraclePredictor(test.select_llms(["llm-0"])).fit(train, qtrain)


def test_oracle_without_outcomes_knows_the_training_set(two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    pred = OraclePredictor().fit(train, qtrain).predict(qtrain)
    np.testing.assert_array_equal(pred.quality, train.quality)
