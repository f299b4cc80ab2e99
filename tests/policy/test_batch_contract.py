"""Every registered batch policy through the same checks, on generated multiple-choice data with
recorded answers: fitted state, knobs, runs that answer every query from the data's outcomes."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.errors import NotFittedError
from mixllm.policy.batch import BatchPolicy
from mixllm.policy.batch_registry import BATCH_POLICIES, make_batch_policy
from mixllm.types import QueryBatch
from tests.policy.cascade_data import answer_set

Data = tuple[Dataset, QueryBatch, Dataset, QueryBatch]


@pytest.fixture(scope="module")
def data() -> Data:
    train, qtrain = answer_set(240, seed=0)
    test, qtest = answer_set(120, seed=1)
    return train, qtrain, test, qtest


@pytest.mark.parametrize("name", BATCH_POLICIES)
def test_runs_answer_every_query_from_the_recorded_outcomes(name: str, data: Data) -> None:
    train, qtrain, test, qtest = data
    policy = make_batch_policy(name, seed=0)
    assert isinstance(policy, BatchPolicy) and policy.name == name
    with pytest.raises(NotFittedError):
        policy.run(test, qtest, 0.0)
    assert policy.fit(train, qtrain) is policy
    knobs = policy.knobs(test, qtest, 6)
    assert 2 <= len(knobs) <= 6 and all(np.isfinite(knobs) | np.isposinf(knobs))
    rows = np.arange(len(qtest))
    cheapest = np.nanmin(test.cost_usd, axis=1)
    spends = []
    for k in knobs:
        run = policy.run(test, qtest, k)
        assert run.choice.shape == (len(qtest),)
        quality = test.quality[rows, run.choice]
        np.testing.assert_allclose(run.quality, quality, equal_nan=True)
        # the answer returned was paid for, and no query costs less than its cheapest LLM
        paid = test.cost_usd[rows, run.choice]
        assert (run.cost_usd >= paid - 1e-12).all() and (run.cost_usd >= cheapest - 1e-12).all()
        assert (run.calls >= 1).all()
        spends.append(float(run.cost_usd.sum()))
    again = make_batch_policy(name, seed=0).fit(train, qtrain)
    rerun = again.run(test, qtest, knobs[-1])
    np.testing.assert_array_equal(rerun.choice, policy.run(test, qtest, knobs[-1]).choice)
    assert max(spends) > min(spends)  # the knob changes what is spent
