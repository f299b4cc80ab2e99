"""Replaying a test split through a router and looking up what its choices scored."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.errors import DataError, UnknownLLMError
from mixllm.evaluate.replay import filled_costs, replay, sweep_lams
from mixllm.router import Router
from tests.evaluate.fakes import FakeEmbedder, TablePredictor, TruthPredictor, fitted, make_three


def test_chosen_outcomes_are_looked_up_per_query(three: Dataset) -> None:
    # query i goes to LLM i % 3 at lam 0 (quality 1 there, 0 elsewhere)
    table = {str(q): np.eye(3)[i % 3].tolist() for i, q in enumerate(three.query_ids)}
    router = fitted(TablePredictor("table", table, [1e-4, 3e-4, 1e-3]), three)
    sweep = replay(router, three, lams=[0.0, 1e9])
    rows = np.arange(len(three))
    assert sweep.choice[0].tolist() == (rows % 3).tolist()
    assert sweep.choice[1].tolist() == [0] * len(three)  # lam huge: the cheapest
    expected = three.quality[rows, rows % 3]
    np.testing.assert_array_equal(sweep.quality[0], expected)
    np.testing.assert_array_equal(sweep.cost_usd[0], three.cost_usd[rows, rows % 3])
    assert sweep.router == "table"
    assert sweep.llms == three.llms
    assert sweep.shares()[0] == pytest.approx([14 / 40, 13 / 40, 13 / 40])


def test_missing_quality_counts_as_zero_and_is_reported(three: Dataset) -> None:
    # everyone to 'mid', which has no recorded outcome on q1
    table = {str(q): [0.0, 1.0, 0.0] for q in three.query_ids}
    sweep = replay(fitted(TablePredictor("mid", table, [0, 0, 0]), three), three, lams=[0.0])
    run = sweep.runs()[0]
    assert run.n_missing == 1
    assert np.isnan(sweep.quality[0, 1])
    assert run.quality == pytest.approx(np.nansum(three.quality[:, 1]) / len(three))


def test_a_single_llm_replays_as_one_point(three: Dataset) -> None:
    router = fitted(TruthPredictor(three), three)
    sweep = replay(router, three, lams=[0.0], candidates=["ref"])
    assert sweep.choice.shape == (1, len(three))
    assert set(sweep.choice.ravel().tolist()) == {2}
    assert sweep.runs()[0].cost_usd == pytest.approx(1e-3)


def test_sweep_lams_span_best_to_cheapest_with_query_ids(three: Dataset) -> None:
    router = fitted(TruthPredictor(three), three)  # keyed by query id, like the oracle
    lams = sweep_lams(router, three, 8)
    assert len(lams) == 8 and lams[0] == 0.0 and lams == sorted(lams)
    sweep = replay(router, three, lams=lams)
    runs = sweep.runs()
    assert runs[0].quality >= runs[-1].quality
    assert runs[-1].cost_usd == pytest.approx(1e-4)  # the last lam routes all to 'cheap'
    assert sweep.route_s_per_query >= 0.0


def test_missing_costs_are_imputed_with_the_llm_mean() -> None:
    ds = make_three(6)
    cost = np.array(ds.cost_usd)
    cost[0, 2] = np.nan
    cost[1, 2] = 2e-3
    filled = filled_costs(replace(ds, cost_usd=cost))
    assert filled[0, 2] == pytest.approx((2e-3 + 4 * 1e-3) / 5)
    cost[:, 1] = np.nan
    with pytest.raises(DataError, match="no recorded cost at all for LLMs \\['mid'\\]"):
        filled_costs(replace(ds, cost_usd=cost))


def test_choices_outside_the_test_split_and_empty_sweeps_are_errors(three: Dataset) -> None:
    router = Router(TruthPredictor(three), embedder=FakeEmbedder()).fit(three)
    two = three.select_llms(["cheap", "mid"])
    with pytest.raises(UnknownLLMError, match="'ref'"):
        replay(router, two, lams=[0.0])
    with pytest.raises(ValueError, match="at least one"):
        replay(router, three, lams=[])
