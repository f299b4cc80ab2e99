"""PickLLM: its three learners find the right LLM per context, the cost weight moves them to the
cheap LLM, learning on the test stream changes the route, and bad arguments are refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.errors import ConfigError, DataError, NotFittedError
from mixllm.policy.batch import BatchPolicy
from mixllm.policy.pickllm import PickLLMAutomatonPolicy, PickLLMPolicy, PickLLMQPolicy
from tests.policy.conftest import Split, make_set, split

CLASSES = [PickLLMPolicy, PickLLMAutomatonPolicy, PickLLMQPolicy]


@pytest.fixture(scope="module")
def clusters() -> Split:
    """Two LLMs each good on one of two clusters; 1200 training queries, 300 test."""
    return split(*make_set(1500, n_llms=2, n_clusters=2, seed=31), 1200)


@pytest.mark.parametrize("cls", CLASSES)
def test_it_learns_the_right_llm_per_context(cls: type[PickLLMPolicy], clusters: Split) -> None:
    train, qtrain, test, qtest = clusters
    policy = cls(n_contexts=2, seed=1).fit(train, qtrain)
    assert isinstance(policy, BatchPolicy)
    run = policy.run(test, qtest, 0.0)
    assert run.choice.shape == run.quality.shape == run.cost_usd.shape == (len(test),)
    assert (run.calls == 1).all()
    rows = np.arange(len(test))
    np.testing.assert_array_equal(run.quality, test.quality[rows, run.choice])
    np.testing.assert_array_equal(run.cost_usd, test.cost_usd[rows, run.choice])
    assert float(run.quality.mean()) > 0.75, float(run.quality.mean())  # random: about 0.5
    table = policy.trained_policy(0.0)
    assert table.shape == (2, 2)
    # each context's favourite is a different LLM
    assert len(set(np.argmax(table, axis=1).tolist())) == 2
    again = cls(n_contexts=2, seed=1).fit(train, qtrain).run(test, qtest, 0.0)
    np.testing.assert_array_equal(again.choice, run.choice)  # seeded


@pytest.mark.parametrize("cls", CLASSES)
def test_knobs_go_from_cheapest_to_best(cls: type[PickLLMPolicy], clusters: Split) -> None:
    train, qtrain, test, qtest = clusters
    policy = cls(n_contexts=2, seed=1).fit(train, qtrain)
    knobs = policy.knobs(test, qtest, 6)
    assert len(knobs) == 6 and knobs[-1] == 0.0 and knobs == sorted(knobs, reverse=True)
    cheap, best = policy.run(test, qtest, knobs[0]), policy.run(test, qtest, knobs[-1])
    assert float((cheap.choice == 0).mean()) > 0.85  # llm-0 is the cheaper one
    assert cheap.cost_usd.mean() < best.cost_usd.mean()
    assert best.quality.mean() > cheap.quality.mean() + 0.15


def test_learning_on_the_test_stream_follows_a_change(clusters: Split) -> None:
    train, qtrain, test, qtest = clusters
    flipped = replace(test, quality=1.0 - test.quality)  # every LLM's skills swap after training
    runs = {}
    for learn in (False, True):
        policy = PickLLMQPolicy(n_contexts=2, learn_test=learn, seed=1)
        runs[learn] = policy.fit(train, qtrain).run(flipped, qtest, 0.0)
    late = slice(len(test) // 2, None)
    assert runs[True].quality[late].mean() > runs[False].quality[late].mean() + 0.2


def test_latency_enters_the_reward_where_the_data_has_it(clusters: Split) -> None:
    train, qtrain, _, _ = clusters
    latency = np.where(np.arange(2)[None, :] == 1, 30.0, 0.3) * np.ones((len(train), 2))
    slow = replace(train, latency_s=latency)  # llm-1 is 100 times slower
    plain = PickLLMAutomatonPolicy(n_contexts=2, seed=1).fit(slow, qtrain)
    weighted = PickLLMAutomatonPolicy(n_contexts=2, w_latency=1.0, seed=1).fit(slow, qtrain)
    share_slow = [float(p.trained_policy(0.0)[:, 1].mean()) for p in (plain, weighted)]
    assert share_slow[1] < share_slow[0] - 0.2, share_slow


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": 0.0}, "rate=0.0"),
        ({"explore": 1.5}, "explore=1.5"),
        ({"w_latency": -1.0}, "w_latency=-1.0"),
        ({"n_contexts": 0}, "n_contexts=0"),
        ({"epochs": 1.5}, "epochs=1.5"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str, clusters: Split) -> None:
    train, qtrain, _, _ = clusters
    with pytest.raises(ConfigError, match=match):
        PickLLMPolicy(**kwargs).fit(train, qtrain)  # type: ignore[arg-type]


def test_bad_knob_unfitted_and_misaligned(clusters: Split) -> None:
    train, qtrain, test, qtest = clusters
    with pytest.raises(NotFittedError, match="not fitted"):
        PickLLMPolicy().run(test, qtest, 0.0)
    policy = PickLLMPolicy(n_contexts=2).fit(train, qtrain)
    with pytest.raises(ConfigError, match=r"cost weight -1\.0"):
        policy.run(test, qtest, -1.0)
    with pytest.raises(DataError, match="test LLMs"):
        policy.run(test.select_llms(["llm-1"]), qtest, 0.0)
    with pytest.raises(DataError, match="row-aligned"):
        PickLLMPolicy().fit(train, qtest)
