"""LLM Bandit: IRT identities route right, a new LLM joins from its probe outcomes, feedback
moves an identity, and ω maps to λ."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy import (
    LLMBanditPredictor,
    OnlinePredictor,
    RandomPredictor,
    choose,
    predictor_from_state,
)
from mixllm.types import LLM, QueryBatch
from tests.policy.conftest import Split, make_set, split, take


def _routed(pred_choice: np.ndarray, test_quality: np.ndarray) -> float:
    return float(np.nan_to_num(test_quality[np.arange(len(test_quality)), pred_choice]).mean())


@pytest.fixture(scope="module")
def four() -> Split:
    """Four LLMs on four clusters, each good on one."""
    return split(*make_set(800, n_llms=4, n_clusters=4, seed=21), 600)


def test_it_learns_the_right_llm_per_cluster(four: Split) -> None:
    train, qtrain, test, qtest = four
    model = LLMBanditPredictor(seed=0).fit(train, qtrain)
    routed = _routed(choose(model.predict(qtest), 0.0), test.quality)
    rand = _routed(
        choose(RandomPredictor(seed=3).fit(train, qtrain).predict(qtest), 0.0), test.quality
    )
    assert routed > 0.8 and routed > rand + 0.4, (routed, rand)


def _newcomer_set(seed: int) -> tuple[Split, Split]:
    """Four LLMs on four clusters where the newcomer llm-3 has llm-1's skills (its outcomes are
    llm-1's with 5% flipped), and the same split without llm-3."""
    ds, qb = make_set(800, n_llms=4, n_clusters=4, seed=seed)
    quality = np.array(ds.quality)
    flip = np.random.default_rng(seed).random(len(ds)) < 0.05
    quality[:, 3] = np.where(flip, 1.0 - quality[:, 1], quality[:, 1])
    ds = replace(ds, quality=quality)
    return split(ds, qb, 600), split(ds.select_llms(ds.llms[:3]), qb, 600)


def _newcomer_accuracy(
    model: LLMBanditPredictor, test_quality: np.ndarray, qtest: QueryBatch
) -> float:
    p = model.predict(qtest).quality[:, -1]
    return float(np.mean((p > 0.5) == (test_quality[:, 3] > 0.5)))


@pytest.mark.parametrize("seed", [5, 6])
def test_a_new_llm_joins_from_its_probe_outcomes_without_refitting(seed: int) -> None:
    (train, qtrain, test, qtest), (base, _, _, _) = _newcomer_set(seed)
    scores = {}
    for how in ("probe", "random", "none"):
        model = LLMBanditPredictor(n_probe=20, seed=0).fit(base, qtrain)
        w_before = model.w_.copy()
        probes = model.probe_queries()
        assert len(probes) == 20 and len(set(probes.ids)) == 20
        rows = np.array([list(qtrain.ids).index(q) for q in probes.ids])
        np.testing.assert_allclose(probes.embeddings, qtrain.embeddings[rows], atol=1e-6)
        if how == "random":
            rows = np.random.default_rng(seed).choice(len(train), 20, replace=False)
        newcomer = LLM("llm-3", 4.0, 8.0)
        if how == "none":  # no outcomes: the known LLMs' mean identity
            model.add_llm(newcomer)
        else:
            outcomes = train.subset(rows).select_llms(["llm-3"])
            model.add_llm(newcomer, seed=outcomes, queries=take(qtrain, rows))
        np.testing.assert_array_equal(model.w_, w_before)  # the prompt side is frozen
        assert model.predict(qtest).llms == train.llms
        scores[how] = _newcomer_accuracy(model, test.quality, qtest)
    assert scores["probe"] > 0.78 and scores["probe"] > scores["none"] + 0.1, scores
    assert scores["probe"] >= scores["random"] - 0.03, scores


def test_feedback_moves_only_that_identity_and_state_keeps_it(four: Split) -> None:
    train, qtrain, _, qtest = four
    model = LLMBanditPredictor(seed=0).fit(train, qtrain)
    assert isinstance(model, OnlinePredictor)  # the router can feed it and change its pool
    best = int(np.argmax(model.predict(qtest).quality[:, 0]))
    one = take(qtest, np.array([best]))
    before = model.predict(one)
    for _ in range(40):
        model.learn(one.embeddings[0], "llm-0", quality=0.0)
    model.learn(one.embeddings[0], "llm-0")  # nothing to learn from
    after = model.predict(one)
    assert after.quality[0, 0] < before.quality[0, 0] - 0.2
    np.testing.assert_allclose(after.quality[0, 1:], before.quality[0, 1:])
    params, arrays = model.get_state()
    restored = predictor_from_state("llm-bandit", params, arrays)
    np.testing.assert_allclose(restored.predict(one).quality, after.quality, atol=1e-12)
    assert restored.probe_queries().ids == model.probe_queries().ids
    model.remove_llm("llm-0")
    assert model.predict(one).llms == ("llm-1", "llm-2", "llm-3")
    with pytest.raises(UnknownLLMError, match="llm-0"):
        model.learn(one.embeddings[0], "llm-0", reward=True)
    with pytest.raises(ConfigError, match="already"):
        model.add_llm(LLM("llm-1"))


def test_preference_maps_to_lambda(two_clusters: Split) -> None:
    train, qtrain, _, qtest = two_clusters
    model = LLMBanditPredictor(seed=0).fit(train, qtrain)
    assert model.preference_lam(1.0) == 0.0
    lam = model.preference_lam(0.25)
    assert lam == pytest.approx(3.0 / model.cost_scale_)
    pred = model.predict(qtest)
    omega = 0.25
    reward = omega * pred.quality - (1 - omega) * pred.cost_usd / model.cost_scale_
    np.testing.assert_array_equal(choose(pred, lam), reward.argmax(axis=1))
    with pytest.raises(ConfigError, match="omega=0"):
        model.preference_lam(0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"dim": 0}, "dim=0"), ({"lr": -1.0}, "lr=-1.0"), ({"n_probe": 2.5}, "n_probe=2.5")],
)
def test_bad_arguments(kwargs: dict[str, object], match: str, two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    with pytest.raises(ConfigError, match=match):
        LLMBanditPredictor(**kwargs).fit(train, qtrain)  # type: ignore[arg-type]
