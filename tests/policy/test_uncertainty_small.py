"""small-uncertainty: one call per query, knob extremes are the small or the strong LLM alone,
low confidence where the small LLM is bad, no recorded answers needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.policy.batch import BatchPolicy
from mixllm.policy.uncertainty_small import SmallUncertaintyPolicy
from tests.conftest import make_clustered
from tests.policy.conftest import queries_of, split


@pytest.fixture(scope="module")
def fitted():  # type: ignore[no-untyped-def]
    ds = make_clustered(400, seed=1)  # 'small' good on topic0 only; no recorded answers
    x = np.stack([np.where(ds.tasks == "topic0", 1.0, -1.0), np.ones(len(ds))], axis=1)
    x = x + 0.3 * np.random.default_rng(0).normal(size=x.shape)
    tr, qtr, te, qte = split(ds, queries_of(ds, x), 300)
    pol = SmallUncertaintyPolicy(n_boot=4, max_cost_share=0.2).fit(tr, qtr)
    return pol, te, qte


def test_extremes_and_one_call_per_query(fitted) -> None:  # type: ignore[no-untyped-def]
    pol, te, qte = fitted
    assert isinstance(pol, BatchPolicy) and pol.tiers == ("small", "big")
    small = pol.run(te, qte, 0.0)
    big = pol.run(te, qte, 1.0)
    assert (small.choice == 0).all() and (big.choice == 1).all()
    np.testing.assert_allclose(small.cost_usd, te.cost_usd[:, 0])
    np.testing.assert_allclose(big.cost_usd, te.cost_usd[:, 1])
    np.testing.assert_allclose(big.quality, te.quality[:, 1])
    mid = pol.run(te, qte, 0.5)
    assert (mid.calls == 1).all() and (small.calls == 1).all()
    topic0 = te.tasks == "topic0"
    assert (mid.choice[topic0] == 0).mean() > 0.9 and (mid.choice[~topic0] == 1).mean() > 0.9
    assert np.mean(mid.quality) > np.mean(small.quality) + 0.2
    assert np.mean(mid.cost_usd) < 0.8 * np.mean(big.cost_usd)


def test_confidence_is_below_one_and_spread_lowers_it(fitted) -> None:  # type: ignore[no-untyped-def]
    pol, _, qte = fitted
    conf = pol.confidence(qte)
    assert conf.min() >= 0.0 and conf.max() < 1.0
    pol.kappa = 0.0
    try:
        assert (pol.confidence(qte) >= conf).all()
    finally:
        pol.kappa = 1.0


@pytest.mark.parametrize("knob", [-0.5, 2.0, math.nan])
def test_bad_threshold_is_refused(fitted, knob: float) -> None:  # type: ignore[no-untyped-def]
    pol, te, qte = fitted
    with pytest.raises(ConfigError, match=f"threshold {knob!r}"):
        pol.run(te, qte, knob)


def test_same_small_and_strong_is_refused() -> None:
    ds = make_clustered(60)
    x = np.ones((60, 2))
    with pytest.raises(ConfigError, match="both 'big'"):
        SmallUncertaintyPolicy(small="big").fit(ds, queries_of(ds, x))
