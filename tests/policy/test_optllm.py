"""OptLLM (mixllm.policy.optllm) on small generated data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixllm.errors import ConfigError, DataError, NotFittedError
from mixllm.policy.batch import BatchPolicy
from mixllm.policy.optllm import OptLLMPolicy
from tests.policy.conftest import Split, make_set, split


@pytest.fixture(scope="module")
def three() -> Split:
    """3 clusters, 3 LLMs, LLM j good (p = 0.9) on cluster j only; 240 train, 120 test."""
    return split(*make_set(360, n_llms=3, n_clusters=3, seed=4), 240)


@pytest.fixture(scope="module")
def fitted(three: Split) -> OptLLMPolicy:
    train, train_q, _, _ = three
    return OptLLMPolicy(n_bootstrap=4, n_trees=10, seed=1).fit(train, train_q)


def test_is_a_batch_policy(fitted: OptLLMPolicy) -> None:
    assert isinstance(fitted, BatchPolicy)
    assert (fitted.name, fitted.knob) == ("optllm", "budget_usd")


def test_predicts_each_llm_s_strength(three: Split, fitted: OptLLMPolicy) -> None:
    _, _, test, test_q = three
    pred = fitted.predict(test_q)
    assert pred.llms == test.llms
    # The LLM whose recorded answers are best on a query is predicted best most of the time.
    seen = np.nan_to_num(test.quality, nan=-1.0)
    clear = (seen.max(axis=1) == 1) & ((seen == 1).sum(axis=1) == 1)
    agree = pred.quality[clear].argmax(axis=1) == seen[clear].argmax(axis=1)
    assert agree.mean() > 0.7
    assert pred.uncertainty is not None and (pred.uncertainty >= 0).all()
    assert (pred.cost_usd > 0).all()
    assert fitted.weights_.sum() == pytest.approx(1.0)


def test_alpha_moves_the_prediction_by_the_spread(three: Split) -> None:
    train, train_q, _, test_q = three
    plain = OptLLMPolicy(n_bootstrap=3, n_trees=5, seed=2).fit(train, train_q).predict(test_q)
    wary = OptLLMPolicy(n_bootstrap=3, n_trees=5, seed=2, alpha=-1.0).fit(train, train_q)
    shifted = wary.predict(test_q)
    assert plain.uncertainty is not None
    assert plain.uncertainty.max() > 0
    np.testing.assert_allclose(shifted.quality, plain.quality - plain.uncertainty)


def test_knobs_and_runs_trace_the_front(three: Split, fitted: OptLLMPolicy) -> None:
    _, _, test, test_q = three
    knobs = fitted.knobs(test, test_q, 6)
    assert len(knobs) == 6 and knobs == sorted(knobs)
    pred = fitted.predict(test_q)
    assert knobs[0] == pytest.approx(pred.cost_usd.min(axis=1).sum())
    rows = np.arange(len(test))
    runs = [fitted.run(test, test_q, k) for k in knobs]
    for knob, run in zip(knobs, runs, strict=True):
        assert (run.calls == 1).all()
        np.testing.assert_array_equal(run.cost_usd, test.cost_usd[rows, run.choice])
        np.testing.assert_array_equal(run.quality, test.quality[rows, run.choice])
        assert math.fsum(pred.cost_usd[rows, run.choice]) <= knob  # predicted spend
    low, high = (float(np.nanmean(r.quality)) for r in (runs[0], runs[-1]))
    assert high > low + 0.2  # the specialists found at the top budget
    assert math.fsum(runs[0].cost_usd) < math.fsum(runs[-1].cost_usd)


def test_errors(three: Split, fitted: OptLLMPolicy) -> None:
    _, _, test, test_q = three
    with pytest.raises(ConfigError, match="n_bootstrap=0"):
        OptLLMPolicy(n_bootstrap=0)
    with pytest.raises(NotFittedError):
        OptLLMPolicy().run(test, test_q, 1.0)
    with pytest.raises(ConfigError, match="is below"):
        fitted.run(test, test_q, 0.0)
    with pytest.raises(DataError, match="fitted on"):
        fitted.run(test.select_llms(list(test.llms[:2])), test_q, 1.0)
