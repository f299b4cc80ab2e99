"""The online bandit baselines: they learn from answers, explore as documented, change pools."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy import EpsilonGreedyPredictor, LinUCBPredictor, ThompsonPredictor, choose
from mixllm.types import LLM
from tests.policy.conftest import Split, make_set, split, take


def test_learning_moves_the_prediction_towards_what_was_observed(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    bandit = LinUCBPredictor().fit(train, qtrain)
    best = int(np.argmax(bandit.predict(qtest).quality[:, 0]))  # a query llm-0 is good at
    one = take(qtest, np.array([best]))
    before = bandit.predict(one)
    for _ in range(30):  # llm-0 keeps failing on it
        bandit.learn(one.embeddings[0], "llm-0", quality=0.0, cost_usd=0.01)
    after = bandit.predict(one)
    assert after.quality[0, 0] < before.quality[0, 0] - 0.2
    assert after.cost_usd[0, 0] > before.cost_usd[0, 0]
    assert after.uncertainty is not None and before.uncertainty is not None
    assert after.uncertainty[0, 0] < before.uncertainty[0, 0]
    np.testing.assert_allclose(after.quality[0, 1], before.quality[0, 1])  # other arm untouched


def test_thompson_draws_are_seeded_and_centred_on_the_mean(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    a = ThompsonPredictor(explore=1.0, seed=5).fit(train, qtrain)
    b = ThompsonPredictor(explore=1.0, seed=5).fit(train, qtrain)
    greedy = ThompsonPredictor(explore=0.0, seed=5).fit(train, qtrain)
    np.testing.assert_array_equal(a.predict(qtest).quality, b.predict(qtest).quality)
    draws = a.predict(qtest).quality
    mean = greedy.predict(qtest).quality
    assert not np.allclose(draws, mean)
    inside = (mean > 0.05) & (mean < 0.95)  # away from the [0, 1] clip
    assert abs(float((draws - mean)[inside].mean())) < 0.05
    a.learn(qtest.embeddings[0], "llm-1", quality=1.0, cost_usd=0.0)
    assert not np.array_equal(a.predict(qtest).quality, b.predict(qtest).quality)


def test_epsilon_greedy_forces_a_random_llm_at_rate_epsilon() -> None:
    ds, qb = make_set(1200, n_llms=4, n_clusters=4, seed=7)
    train, qtrain, _, qtest = split(ds, qb, 200)
    eps = EpsilonGreedyPredictor(explore=0.2, seed=2).fit(train, qtrain)
    greedy = EpsilonGreedyPredictor(explore=0.0, seed=2).fit(train, qtrain)
    picked = choose(eps.predict(qtest), 1.0)
    best = choose(greedy.predict(qtest), 1.0)
    differs = float((picked != best).mean())
    assert differs == pytest.approx(0.2 * 3 / 4, abs=0.04)  # a forced draw hits the best 1 in 4


def test_add_llm_cold_or_seeded_and_remove_llm(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    bandit = LinUCBPredictor().fit(train, qtrain)
    bandit.add_llm(LLM("new", 1.0, 1.0))
    pred = bandit.predict(qtest)
    assert pred.llms == ("llm-0", "llm-1", "new")
    assert pred.uncertainty is not None
    assert (pred.uncertainty[:, 2] > pred.uncertainty[:, 0]).all()  # nothing seen: widest
    seeded = LinUCBPredictor().fit(train, qtrain)
    renamed = train.select_llms(["llm-0"])
    seed = type(renamed)(**{**renamed.__dict__, "llms": ("warm",), "prices": {}})
    seeded.add_llm(LLM("warm"), seed=seed, queries=qtrain)
    np.testing.assert_allclose(
        seeded.predict(qtest).quality[:, 2], seeded.predict(qtest).quality[:, 0], atol=1e-9
    )
    bandit.remove_llm("llm-0")
    assert bandit.predict(qtest).llms == ("llm-1", "new")
    with pytest.raises(UnknownLLMError, match="llm-0"):
        bandit.learn(qtest.embeddings[0], "llm-0", quality=1.0, cost_usd=0.0)
    with pytest.raises(ConfigError, match="already"):
        bandit.add_llm(LLM("new"))


def test_bad_explore_values(two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    with pytest.raises(ConfigError, match=r"explore=1\.5"):
        EpsilonGreedyPredictor(explore=1.5).fit(train, qtrain)
    with pytest.raises(ConfigError, match="explore=-1"):
        ThompsonPredictor(explore=-1).fit(train, qtrain)
