"""The cascades on a generated multiple-choice set with recorded answers: knob extremes give
exactly the cheap LLM alone or every call, cost counts every call, escalation targets the cheap
LLM's mistakes, bad knobs and missing answers are refused."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.policy.batch import BatchPolicy, LacksDataError
from mixllm.policy.cascade import CascadePolicy
from mixllm.policy.cascade_router import CascadeRouterPolicy
from mixllm.policy.cascade_vote import VoteCascadePolicy
from tests.policy.cascade_data import answer_set, halves

SPLIT = halves(400)


def cost(col: str) -> np.ndarray:
    te = SPLIT[2]
    return np.asarray(te.cost_usd[:, te.llm_index(col)])


def test_learned_cascade_extremes_and_escalation() -> None:
    tr, qtr, te, qte = SPLIT
    pol = CascadePolicy(chain=["c1", "strong"]).fit(tr, qtr)
    assert isinstance(pol, BatchPolicy)
    knobs = pol.knobs(te, qte, 5)
    assert knobs[0] == 0.0 and knobs[-1] == 1.0
    low, high = pol.run(te, qte, 0.0), pol.run(te, qte, 1.0)
    assert (low.choice == te.llm_index("c1")).all() and (low.calls == 1).all()
    np.testing.assert_allclose(low.cost_usd, cost("c1"))
    np.testing.assert_allclose(low.quality, te.quality[:, 0])
    assert (high.choice == te.llm_index("strong")).all() and (high.calls == 2).all()
    np.testing.assert_allclose(high.cost_usd, cost("c1") + cost("strong"))
    mid = pol.run(te, qte, 0.5)
    up = mid.calls == 2
    assert 0 < up.mean() < 1
    np.testing.assert_allclose(mid.cost_usd, cost("c1") + np.where(up, cost("strong"), 0.0))
    # the scorer reads the hedged wrong answers: escalated queries are the cheap LLM's mistakes
    assert te.quality[up, 0].mean() < 0.2 < 0.8 < te.quality[~up, 0].mean()
    assert np.mean(mid.quality) > np.mean(low.quality) + 0.2


def test_learned_cascade_searches_a_chain_ending_with_the_strongest() -> None:
    tr, qtr, te, qte = SPLIT
    pol = CascadePolicy(folds=2).fit(tr, qtr)
    assert pol.chain_[-1] == "strong" and 2 <= len(pol.chain_) <= 3
    assert len(pol.search_) == 6  # 3 single cheap LLMs, 3 ordered pairs
    run = pol.run(te, qte, 1.0)
    np.testing.assert_allclose(run.cost_usd, sum(cost(m) for m in pol.chain_))


@pytest.mark.parametrize("knob", [-0.1, 1.5, math.nan])
def test_threshold_outside_0_1_is_refused(knob: float) -> None:
    tr, qtr, te, qte = SPLIT
    pol = CascadePolicy(chain=["c1", "strong"]).fit(tr, qtr)
    with pytest.raises(ConfigError, match=f"threshold {knob!r}"):
        pol.run(te, qte, knob)


def test_vote_extremes_and_early_stopping() -> None:
    tr, qtr, te, qte = SPLIT
    pol = VoteCascadePolicy(voters=["c1", "c2", "c3"]).fit(tr, qtr)
    assert pol.knobs(te, qte, 30) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert pol.knobs(te, qte, 2) == [0.0, 4.0]
    first = pol.run(te, qte, 0)
    assert (first.choice == 0).all() and (first.calls == 1).all()
    np.testing.assert_allclose(first.cost_usd, cost("c1"))
    alone = pol.run(te, qte, 4)
    assert (alone.choice == 3).all() and (alone.calls == 1).all()
    np.testing.assert_allclose(alone.cost_usd, cost("strong"))
    # m = 2 by hand: c1 and c2 agree -> 2 calls; else c3 decides; else escalate
    ans = np.array([[r.split("(")[-1][0] if "(" in r else r for r in row]
                    for row in te.responses[:, :3]])  # fmt: skip
    two = pol.run(te, qte, 2)
    agree12 = ans[:, 0] == ans[:, 1]
    third = ~agree12 & ((ans[:, 2] == ans[:, 0]) | (ans[:, 2] == ans[:, 1]))
    escalate = ~agree12 & ~third
    expect = cost("c1") + cost("c2") + np.where(agree12, 0.0, cost("c3"))
    expect += np.where(escalate, cost("strong"), 0.0)
    np.testing.assert_allclose(two.cost_usd, expect)
    np.testing.assert_array_equal(two.calls, np.where(agree12, 2, np.where(third, 3, 4)))
    assert (two.choice[escalate] == 3).all() and (two.choice[agree12] == 0).all()


def test_vote_chooses_voters_on_training_data() -> None:
    tr, qtr, _, _ = SPLIT
    pol = VoteCascadePolicy(k=2, pool=3, max_cost_share=0.5).fit(tr, qtr)
    assert len(pol.search_) == 3 and pol.strong_ == "strong"
    assert len(pol.voters_) == 2 and "strong" not in pol.voters_


@pytest.mark.parametrize("knob", [-1.0, 1.5, 5.0])
def test_vote_agreement_must_be_a_whole_number_in_range(knob: float) -> None:
    tr, qtr, te, qte = SPLIT
    pol = VoteCascadePolicy(voters=["c1", "c2", "c3"]).fit(tr, qtr)
    with pytest.raises(ConfigError, match=f"agreement {knob!r}"):
        pol.run(te, qte, knob)


def test_cascade_router_extremes() -> None:
    tr, qtr, te, qte = SPLIT
    pol = CascadeRouterPolicy(first=["c1"]).fit(tr, qtr)
    knobs = pol.knobs(te, qte, 8)
    assert knobs[-1] == 0.0 and knobs == sorted(knobs, reverse=True)
    keep = pol.run(te, qte, math.inf)
    assert (keep.choice == 0).all() and (keep.calls == 1).all()
    np.testing.assert_allclose(keep.cost_usd, cost("c1"))
    assert pol.run(te, qte, knobs[0]).choice.tolist() == keep.choice.tolist()
    best = pol.run(te, qte, 0.0)
    up = best.calls == 2
    assert up.any() and (best.choice[up] != 0).all()
    np.testing.assert_allclose(
        best.cost_usd, cost("c1") + np.where(up, te.cost_usd[np.arange(len(te)), best.choice], 0)
    )
    assert np.mean(best.quality) > np.mean(keep.quality) + 0.2
    with pytest.raises(ConfigError, match=r"lam -1\.0"):
        pol.run(te, qte, -1.0)


@pytest.mark.parametrize(
    "policy",
    [CascadePolicy(), VoteCascadePolicy(k=2, pool=3, max_cost_share=0.5), CascadeRouterPolicy()],
)
def test_data_without_answers_is_refused_naming_it(policy: BatchPolicy) -> None:
    tr, qtr, _, _ = halves(200, responses=False)
    with pytest.raises(LacksDataError, match="answers: no recorded answers"):
        policy.fit(tr, qtr)


def test_the_vote_uses_every_cheap_llm_when_there_are_fewer_than_k() -> None:
    train, qtrain = answer_set(200, seed=0)
    two = train.select_llms(["c2", "strong"])
    policy = VoteCascadePolicy(k=3).fit(two, qtrain)
    assert policy.voters_ == ["c2"] and policy.strong_ == "strong"
    with pytest.raises(LacksDataError, match="at least one cheap voter"):
        VoteCascadePolicy(max_cost_share=0.01).fit(two, qtrain)
