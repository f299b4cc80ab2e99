from __future__ import annotations

import numpy as np
import pytest

from mixllm.data import (
    ROUTERBENCH_LIST_PRICES,
    SyntheticRouting,
    make_routing_dataset,
    synthesize_routing,
)
from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError


@pytest.fixture(scope="module")
def truth() -> SyntheticRouting:
    return synthesize_routing(n_queries=2000, n_llms=15, seed=0, missing_share=0.1)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = make_routing_dataset(n_queries=200, n_llms=4, seed=7, missing_share=0.2)
    b = make_routing_dataset(n_queries=200, n_llms=4, seed=7, missing_share=0.2)
    c = make_routing_dataset(n_queries=200, n_llms=4, seed=8, missing_share=0.2)
    assert a.llms == b.llms and a.prompts.tolist() == b.prompts.tolist() and a.prices == b.prices
    for attr in ("quality", "cost_usd", "output_tokens", "latency_s", "prompt_tokens"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr))
    assert a.prompts.tolist() != c.prompts.tolist()


def test_shape_no_tasks_and_missing_share(truth: SyntheticRouting) -> None:
    ds = truth.dataset
    assert (len(ds), ds.n_llms) == (2000, 15)
    assert not ds.has_tasks and all(t is None for t in ds.tasks)
    missing = np.isnan(ds.quality)
    assert missing.mean() == pytest.approx(0.1, abs=0.01)
    for grid in (ds.cost_usd, ds.output_tokens, ds.latency_s):
        np.testing.assert_array_equal(np.isnan(grid), missing)
    assert set(np.unique(ds.quality[~missing])) == {0.0, 1.0}
    assert truth.p_success.shape == (2000, 15) and np.isfinite(truth.p_success).all()
    assert len(set(ds.prompts.tolist())) > 0.8 * len(ds)


def test_task_labels_only_when_asked() -> None:
    s = synthesize_routing(n_queries=300, n_llms=3, n_topics=4, seed=1, with_tasks=True)
    assert s.dataset.has_tasks
    assert s.dataset.tasks.tolist() == s.topics.tolist()
    assert set(s.dataset.task_names) == set(s.topic_names) and len(s.topic_names) == 4


def test_llm_names_are_unseen_and_unique() -> None:
    ds = make_routing_dataset(n_queries=50, n_llms=40, seed=2)
    assert len(set(ds.llms)) == 40
    assert not set(ds.llms) & set(ROUTERBENCH_LIST_PRICES)
    assert all("/" in m for m in ds.llms)


def test_costs_are_tokens_times_prices(truth: SyntheticRouting) -> None:
    ds = truth.dataset
    np.testing.assert_array_equal(ds.prompt_tokens, count_tokens([str(p) for p in ds.prompts]))
    pin = np.array([ds.prices[m].price_in_per_mtok for m in ds.llms])
    pout = np.array([ds.prices[m].price_out_per_mtok for m in ds.llms])
    assert pin.max() / pin.min() > 30  # the price tiers span about 100x
    expected = (ds.prompt_tokens[:, None] * pin + ds.output_tokens * pout) / 1e6
    np.testing.assert_allclose(ds.cost_usd, expected)


def test_quality_follows_the_true_probabilities(truth: SyntheticRouting) -> None:
    ds, p = truth.dataset, truth.p_success
    known = np.isfinite(ds.quality)
    assert np.nanmean(ds.quality) == pytest.approx(p[known].mean(), abs=0.01)
    by_llm = np.nanmean(ds.quality, axis=0)
    np.testing.assert_allclose(by_llm, [p[known[:, j], j].mean() for j in range(15)], atol=0.05)
    bayes = truth.bayes_outcomes()
    np.testing.assert_array_equal(bayes.quality, p)
    assert np.isfinite(bayes.cost_usd).all()


def test_a_cheap_specialist_beats_the_priciest_llm_on_some_topic(truth: SyntheticRouting) -> None:
    ds = truth.dataset
    price = np.array([ds.prices[m].price_in_per_mtok for m in ds.llms])
    top = int(np.argmax(price))
    cheap = np.flatnonzero(price < price[top] / 10)
    wins = [
        (t, j)
        for t in truth.topic_names
        for j in cheap
        if truth.p_success[truth.topics == t, j].mean()
        > truth.p_success[truth.topics == t, top].mean()
    ]
    assert wins


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_llms": 0}, "n_llms=0"),
        ({"n_queries": 0}, "n_queries=0"),
        ({"n_topics": 11}, "n_topics=11; expected 1 to 10"),
        ({"missing_share": 1.0}, "missing_share=1.0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_routing_dataset(**kwargs)  # type: ignore[arg-type]
