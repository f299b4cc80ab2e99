"""MetaLLM: the reward it learns, its two offline trainings, online feedback and pool changes."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy import (
    LinUCBPredictor,
    MetaLLMPredictor,
    OnlinePredictor,
    choose,
    predictor_from_state,
)
from mixllm.types import LLM
from tests.policy.conftest import Split, make_set, split, take


def _routed_quality(pred_choice: np.ndarray, data: Split) -> float:
    test = data[2]
    return float(np.nan_to_num(test.quality[np.arange(len(test)), pred_choice]).mean())


@pytest.mark.parametrize("offline", ["full", "bandit"])
def test_it_learns_the_right_llm_per_cluster(offline: str) -> None:
    data = split(*make_set(600, n_llms=3, n_clusters=3, seed=11), 450)
    train, qtrain, _, qtest = data
    model = MetaLLMPredictor(offline=offline, seed=2).fit(train, qtrain)
    routed = _routed_quality(choose(model.predict(qtest), 0.0), data)
    assert routed > 0.75, routed  # random picks the good LLM 1 time in 3: about 0.37


def test_score_at_lambda_p_is_the_reward_regression(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    p = 200.0
    model = MetaLLMPredictor(cost_scaling=p).fit(train, qtrain)
    pred = model.predict(qtest)
    reward = train.quality - p * train.cost_usd  # what the paper regresses
    x = np.hstack([qtrain.embeddings.astype(float), np.ones((len(train), 1))])
    xt = np.hstack([qtest.embeddings.astype(float), np.ones((len(qtest), 1))])
    for j in range(2):
        theta = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ reward[:, j])
        inside = (pred.quality[:, j] > 0) & (pred.quality[:, j] < 1)
        expected = xt @ theta
        got = pred.quality[:, j] - p * pred.cost_usd[:, j]
        np.testing.assert_allclose(got[inside], expected[inside], atol=1e-8)
    # at p = 0 the reward is the quality: linucb's quality model
    plain = MetaLLMPredictor().fit(train, qtrain).predict(qtest)
    lin = LinUCBPredictor().fit(train, qtrain).predict(qtest)
    np.testing.assert_allclose(plain.quality, lin.quality, atol=1e-9)


def test_a_higher_cost_scaling_routes_to_the_cheaper_llm(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters  # llm-1 costs about twice llm-0
    share = []
    for p in (0.0, 5_000.0):
        model = MetaLLMPredictor(cost_scaling=p).fit(train, qtrain)
        share.append(float((choose(model.predict(qtest), p) == 0).mean()))
    assert share[0] < 0.7 and share[1] == 1.0, share


def test_feedback_moves_the_arm_and_state_keeps_it(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    model = MetaLLMPredictor(cost_scaling=10.0).fit(train, qtrain)
    best = int(np.argmax(model.predict(qtest).quality[:, 0]))
    one = take(qtest, np.array([best]))
    before = model.predict(one)
    for _ in range(30):
        model.learn(one.embeddings[0], "llm-0", quality=0.0, cost_usd=0.001)
    model.learn(one.embeddings[0], "llm-0", reward=False)  # thumbs down counts as quality 0
    model.learn(one.embeddings[0], "llm-0")  # nothing to learn from
    after = model.predict(one)
    assert after.quality[0, 0] < before.quality[0, 0] - 0.2
    assert after.uncertainty is not None and before.uncertainty is not None
    assert after.uncertainty[0, 0] < before.uncertainty[0, 0]
    np.testing.assert_allclose(after.quality[0, 1], before.quality[0, 1])
    params, arrays = model.get_state()
    again = predictor_from_state("metallm", params, arrays).predict(one)
    np.testing.assert_allclose(again.quality, after.quality, atol=1e-12)
    np.testing.assert_allclose(again.cost_usd, after.cost_usd, atol=1e-12)


def test_add_seeded_llm_and_remove(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    model = MetaLLMPredictor().fit(train, qtrain)
    assert isinstance(model, OnlinePredictor)  # the router can feed it and change its pool
    col = train.select_llms(["llm-1"])
    seed = type(col)(**{**col.__dict__, "llms": ("copy",), "prices": {}})
    model.add_llm(LLM("copy", 2.0, 4.0), seed=seed, queries=qtrain)
    pred = model.predict(qtest)
    assert pred.llms == ("llm-0", "llm-1", "copy")
    np.testing.assert_allclose(pred.quality[:, 2], pred.quality[:, 1], atol=1e-9)
    np.testing.assert_allclose(pred.cost_usd[:, 2], pred.cost_usd[:, 1], rtol=0.2)
    model.remove_llm("llm-1")
    assert model.predict(qtest).llms == ("llm-0", "copy")
    with pytest.raises(UnknownLLMError, match="llm-1"):
        model.learn(qtest.embeddings[0], "llm-1", quality=1.0)
    with pytest.raises(ConfigError, match="already"):
        model.add_llm(LLM("copy"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cost_scaling": -1.0}, "cost_scaling=-1.0"),
        ({"explore": -0.5}, "explore=-0.5"),
        ({"offline": "replay"}, "offline='replay'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str, two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    with pytest.raises(ConfigError, match=match):
        MetaLLMPredictor(**kwargs).fit(train, qtrain)  # type: ignore[arg-type]
