"""Targets and their calibration: parsing, the quality bound's coverage on data with a known
truth, each target met on held-out queries, infeasible targets, the JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.policy import KNNPredictor, choose
from mixllm.policy.calibration import (
    Calibration,
    _summarise,
    bernstein_lower_bound,
    calibrate,
    horizon_lower_bound,
    pick_reference,
)
from mixllm.policy.targets import DEFAULT_HORIZON, TARGET_KINDS, Target, parse_target
from mixllm.types import LLM, Prediction, QueryBatch
from tests.policy.conftest import queries_of, split

Calibrated = tuple[Calibration, Dataset, Dataset, Prediction]


@pytest.mark.parametrize(
    ("kind", "value", "confidence", "expect"),
    [
        ("cost_share", 0.0, None, "cost_share=0.0; expected a share of the reference's mean cost"),
        ("cost_share", 1.01, None, "in (0, 1]"),
        ("strong_share", -0.2, None, "strong_share=-0.2"),
        ("budget_per_query", 0, None, "budget_per_query=0; expected a mean cost per query in USD"),
        ("min_quality_share", 1.5, None, "min_quality_share=1.5"),
        ("min_quality_share", 0.9, 1.0, "confidence=1.0; expected a probability in (0, 1)"),
        ("min_quality_share", 0.9, "high", "confidence='high'"),
        ("cost_share", "half", None, "cost_share='half'"),
        ("cost_share", float("nan"), None, "cost_share=nan"),
        ("cost_share", 0.5, 0.9, "a confidence goes with min_quality_share only"),
        ("cheap", 0.5, None, "target kind 'cheap'; expected one of ['cost_share'"),
    ],
)
def test_parse_target_rejects_bad_values(
    kind: str, value: object, confidence: object, expect: str
) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_target(kind, value, confidence)
    assert expect in str(info.value)


def test_parse_target_accepts_text_and_defaults_the_confidence() -> None:
    assert parse_target("cost_share", "0.25") == Target("cost_share", 0.25)
    assert parse_target("min_quality_share", 1).confidence == 0.9
    assert parse_target("budget_per_query", 3).value == 3.0
    with pytest.raises(ConfigError, match="strong_share=2"):
        Target("strong_share", 2.0)  # the dataclass checks too
    for kind in TARGET_KINDS:
        target = parse_target(kind, 0.5)
        assert Target.from_dict(json.loads(json.dumps(target.to_dict()))) == target
    assert parse_target("strong_share", 0.2).describe("gpt-4") == "at most 20% of calls to gpt-4"
    assert "$0.002 per query" in parse_target("budget_per_query", 0.002).describe()


def test_bernstein_bound_covers_the_true_mean() -> None:
    """Over many samples from a known distribution the bound exceeds the mean in at most δ."""
    rng = np.random.default_rng(0)
    draws, n, delta = 4000, 150, 0.1
    # d = q_routed - Q q_ref with q ~ Bernoulli: values in [-0.9, 1], true mean known
    q_ref = rng.random((draws, n)) < 0.8
    same = rng.random((draws, n)) < 0.6
    q = np.where(same, q_ref, rng.random((draws, n)) < 0.7)
    d = q - 0.9 * q_ref
    truth = 0.6 * 0.8 + 0.4 * 0.7 - 0.9 * 0.8
    lower = bernstein_lower_bound(
        d.mean(axis=1), d.var(axis=1, ddof=1), np.full(draws, float(n)), 1.9, delta
    )
    assert (lower > truth).mean() <= delta
    assert lower.mean() > truth - 0.3  # a bound, but not a vacuous one
    assert np.isneginf(bernstein_lower_bound(np.ones(1), np.zeros(1), np.ones(1), 1.0, 0.1)).all()


@pytest.mark.parametrize(
    ("horizon", "expect"),
    [
        (0, "horizon=0; expected a whole number of queries >= 1, or 'inf' for the long run"),
        (-5, "horizon=-5"),
        (2.5, "horizon=2.5"),
        ("many", "horizon='many'"),
        (True, "horizon=True"),
        (float("nan"), "horizon=nan"),
        (float("-inf"), "horizon=-inf"),
    ],
)
def test_parse_target_rejects_bad_horizons(horizon: object, expect: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_target("min_quality_share", 0.9, horizon=horizon)
    assert expect in str(info.value)


def test_horizons_parse_describe_and_round_trip() -> None:
    target = parse_target("min_quality_share", "0.95", "0.8")
    assert target.horizon == DEFAULT_HORIZON == 500
    assert target.describe("gpt-4") == (
        "mean quality over 500 queries at least 95% of gpt-4's, with 80% confidence"
    )
    assert Target("min_quality_share", 0.95, 0.8) == target
    for text, horizon in (("2000", 2000), (250.0, 250), ("inf", None), (float("inf"), None)):
        assert parse_target("min_quality_share", 0.9, horizon=text).horizon == horizon
    long_run = parse_target("min_quality_share", 0.9, horizon=None)
    assert long_run.describe().startswith("mean quality in the long run at least 90%")
    for t in (target, long_run, parse_target("min_quality_share", 0.9, horizon=77)):
        assert Target.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    # saved before horizons existed: the long run it was calibrated for
    assert Target.from_dict({"kind": "min_quality_share", "value": 0.9}).horizon is None
    assert parse_target("cost_share", 0.5).horizon is None
    with pytest.raises(ConfigError, match="horizon=100 given with cost_share; a horizon goes"):
        parse_target("cost_share", 0.5, horizon=100)


def quality_pairs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """d = q_routed − 0.9 q_ref: the reference right with p = 0.8, the routed LLM the same on 60%
    of queries and else right with p = 0.7; E[d] = 0.04, in [-0.9, 1]."""
    q_ref = rng.random(shape) < 0.8
    q = np.where(rng.random(shape) < 0.6, q_ref, rng.random(shape) < 0.7)
    return q - 0.9 * q_ref


@pytest.mark.parametrize(("n", "m"), [(2000, 500), (300, 50), (5000, 5000)])
def test_horizon_bound_covers_the_mean_of_the_next_m_queries(n: int, m: int) -> None:
    """n past and m future draws from a known distribution, many times: the future mean is
    below the bound in at most δ of the draws (plus Monte-Carlo error: 3 standard errors)."""
    rng = np.random.default_rng(n + m)
    draws, delta = 2000, 0.1
    past, future = quality_pairs(rng, (draws, n)), quality_pairs(rng, (draws, m))
    stats = past.mean(axis=1), past.var(axis=1, ddof=1), np.full(draws, float(n))
    lower = horizon_lower_bound(*stats, (-0.9, 1.0), delta, m)
    missed = (future.mean(axis=1) < lower).mean()
    assert missed <= delta + 3 * np.sqrt(delta * (1 - delta) / draws)
    long_run = bernstein_lower_bound(*stats, 1.9, delta)
    assert np.all(lower <= long_run)  # the horizon makes the bound stricter
    assert lower.mean() > 0.04 - 0.5  # a bound, not a vacuous one


def test_the_long_run_bound_does_not_cover_a_short_horizon() -> None:
    """What the horizon is for: with plenty of past queries the long-run bound is close to
    E[d], and the mean of 50 new queries falls below it far more often than δ."""
    rng = np.random.default_rng(3)
    draws, n, m, delta = 1000, 10000, 50, 0.1
    past, future = quality_pairs(rng, (draws, n)), quality_pairs(rng, (draws, m))
    stats = past.mean(axis=1), past.var(axis=1, ddof=1), np.full(draws, float(n))
    below = future.mean(axis=1)[:, None] < np.stack(
        [
            bernstein_lower_bound(*stats, 1.9, delta),
            horizon_lower_bound(*stats, (-0.9, 1), delta, m),
        ],
        axis=1,
    )
    assert below[:, 0].mean() > 2 * delta
    assert below[:, 1].mean() <= delta


def test_horizon_bound_is_monotone_in_the_horizon() -> None:
    mean, var, n = np.array([0.05, 0.02]), np.array([0.1, 0.3]), np.array([800.0, 3000.0])
    bounds = [
        horizon_lower_bound(mean, var, n, (-0.95, 1.0), 0.1, m) for m in (10, 100, 1000, 10**6)
    ]
    assert np.all(np.diff(np.stack(bounds), axis=0) > 0)
    assert np.all(bounds[-1] <= bernstein_lower_bound(mean, var, n, 1.95, 0.1))
    assert np.isneginf(horizon_lower_bound(mean, var, np.ones(2), (-1.0, 1.0), 0.1, 5)).all()


def two_llm_set(q_ref: np.ndarray, q_cheap: np.ndarray) -> Dataset:
    n = len(q_ref)
    return Dataset(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        prompts=np.array([f"p{i}" for i in range(n)], dtype=object),
        llms=("ref", "cheap"),
        quality=np.stack([q_ref, q_cheap], axis=1).astype(float),
        cost_usd=np.tile([0.01, 0.001], (n, 1)),
        prompt_tokens=np.full(n, 10.0),
        output_tokens=np.full((n, 2), 10.0),
        latency_s=np.full((n, 2), np.nan),
        tasks=np.full(n, None, dtype=object),
        name="two",
        prices={"ref": LLM("ref", 1.0, 1.0), "cheap": LLM("cheap", 0.1, 0.1)},
    )


def test_quality_target_holds_with_the_asked_confidence() -> None:
    """Known truth: at grid step g a share p_g of queries goes to the reference, the rest to an
    LLM right with probability 0.6 (the reference: 0.9). The λ chosen for 'at least 90% of the
    reference's quality' must truly meet it in at least 90% of many draws, and not be trivial."""
    rng = np.random.default_rng(1)
    n, share, confidence = 400, 0.9, 0.9
    p = np.linspace(1.0, 0.0, 21)  # share to the reference, falling as λ grows
    lams = np.linspace(0.0, 100.0, 21)
    true_gap = p * 0.9 + (1 - p) * 0.6 - share * 0.9
    wrong, chosen_p = 0, []
    for _ in range(300):
        ds = two_llm_set(rng.random(n) < 0.9, rng.random(n) < 0.6)
        chosen = (rng.random(n)[None, :] >= p[:, None]).astype(np.int64)  # nested in λ
        cal = _summarise(ds, "ref", chosen, lams, folds=5)
        long_run = parse_target("min_quality_share", share, horizon=None)  # truth: E[quality]
        i = int(np.searchsorted(lams, cal.lam_for(long_run)))
        wrong += true_gap[i] < 0
        chosen_p.append(p[i])
    assert wrong / 300 <= 1 - confidence
    assert np.mean(chosen_p) < 0.95  # it does route some queries away from the reference


def test_quality_target_over_a_horizon_holds_on_the_next_queries() -> None:
    """As above, but the truth is the next m = 150 queries' own mean quality at the λ chosen:
    at least 90% of the reference's on those queries in at least 90% of draws. The long-run
    target on the same draws misses more often, so the test can tell them apart."""
    rng = np.random.default_rng(2)
    draws, n, m, share = 300, 2000, 150, 0.9
    p = np.linspace(1.0, 0.0, 21)
    lams = np.linspace(0.0, 100.0, 21)
    wrong = {m: 0, None: 0}
    for _ in range(draws):
        ds = two_llm_set(rng.random(n) < 0.9, rng.random(n) < 0.6)
        chosen = (rng.random(n)[None, :] >= p[:, None]).astype(np.int64)
        cal = _summarise(ds, "ref", chosen, lams, folds=5)
        ref_next, cheap_next = rng.random(m) < 0.9, rng.random(m) < 0.6
        to_ref = rng.random(m)
        for horizon in wrong:
            lam = cal.lam_for(parse_target("min_quality_share", share, horizon=horizon))
            i = int(np.searchsorted(lams, lam))
            routed = np.where(to_ref < p[i], ref_next, cheap_next)
            wrong[horizon] += routed.mean() < share * ref_next.mean()
    assert wrong[m] / draws <= 0.1
    assert wrong[None] / draws > wrong[m] / draws + 0.05


def make_tiers(n: int, seed: int) -> tuple[Dataset, QueryBatch]:
    """Three clusters of queries; 'small' is right on cluster 0 (p = 0.9, else 0.2), 'mid' on
    clusters 0 and 1, 'big' on all; prices 1 : 3 : 10 (a few per cent of noise per query)."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 3, n)
    x = np.eye(3)[cluster] * 3 + rng.normal(size=(n, 3))
    good = cluster[:, None] <= np.array([0, 1, 2])[None, :]  # small, mid, big
    quality = (rng.random((n, 3)) < np.where(good, 0.9, 0.2)).astype(float)
    cost = np.array([1.0, 3.0, 10.0]) * 1e-4 * rng.uniform(0.9, 1.1, (n, 3))
    names = ("small", "mid", "big")
    ds = Dataset(
        query_ids=np.array([f"t{seed}-{i}" for i in range(n)], dtype=object),
        prompts=np.array([f"prompt {i}" for i in range(n)], dtype=object),
        llms=names,
        quality=quality,
        cost_usd=cost,
        prompt_tokens=np.full(n, 10.0),
        output_tokens=np.full((n, 3), 10.0),
        latency_s=np.full((n, 3), np.nan),
        tasks=np.full(n, None, dtype=object),
        name="tiers",
        prices={m: LLM(m, c, c) for m, c in zip(names, (1.0, 3.0, 10.0))},
    )
    return ds, queries_of(ds, x)


@pytest.fixture(scope="module")
def calibrated() -> Calibrated:
    """KNN calibrated on 600 queries of :func:`make_tiers`, its predictions for 600 more."""
    train, train_q, test, test_q = split(*make_tiers(1200, seed=4), 600)
    cal = calibrate(lambda: KNNPredictor(k_grid=(10, 30), cv=3), train, train_q, seed=0)
    fitted = KNNPredictor(k_grid=(10, 30), cv=3).fit(train, train_q)
    return cal, train, test, fitted.predict(test_q)


@pytest.mark.parametrize(
    "target",
    [
        parse_target("cost_share", 0.4),
        parse_target("budget_per_query", 0.0004),
        parse_target("strong_share", 0.3),
        parse_target("min_quality_share", 0.8, 0.9),
    ],
    ids=lambda t: t.kind,
)
def test_each_target_is_met_on_held_out_queries(calibrated: Calibrated, target: Target) -> None:
    cal, _, test, pred = calibrated
    point = cal.point_for(target)
    assert cal.lam_for(target) == point.lam
    chosen = choose(pred.select(test.llms), point.lam)
    rows, ref = np.arange(len(test)), test.llm_index(cal.reference)
    cost = test.cost_usd[rows, chosen].mean()
    quality = np.nanmean(test.quality[rows, chosen])
    got = {
        "cost_share": cost / test.cost_usd[:, ref].mean(),
        "budget_per_query": cost,
        "strong_share": (chosen == ref).mean(),
        "min_quality_share": quality / np.nanmean(test.quality[:, ref]),
    }[target.kind]
    if target.kind == "min_quality_share":
        assert got >= target.value
    else:
        assert got <= target.value * 1.1  # held-out noise on 600 queries
        assert got >= target.value * 0.8  # and not far cheaper than asked


def test_the_best_quality_within_a_cost_is_chosen(calibrated: Calibrated) -> None:
    cal = calibrated[0]
    target = parse_target("cost_share", 0.4)
    point, a = cal.point_for(target), cal.arrays
    within = a["cost_usd"] <= 0.4 * cal.reference_cost_usd
    assert point.quality == pytest.approx(a["quality"][within].max())
    assert point.quality > a["quality"][-1]  # better than the cheapest routing
    assert point.cost_usd <= 0.4 * cal.reference_cost_usd
    assert cal.lams[0] == 0.0 and np.all(np.diff(cal.lams) >= 0)
    assert a["reference_share"][-1] < a["reference_share"][0]


def test_infeasible_targets_name_the_best_achievable(calibrated: Calibrated) -> None:
    cal = calibrated[0]
    cheapest = cal.arrays["cost_usd"].min() / cal.reference_cost_usd
    with pytest.raises(ConfigError, match=r"cannot be met: the cheapest routing costs") as info:
        cal.lam_for(parse_target("cost_share", cheapest / 2))
    assert f"{cheapest:.1%} of {cal.reference}'s" in str(info.value)
    with pytest.raises(ConfigError, match="target='cost_share'; expected a Target"):
        cal.lam_for("cost_share")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"per query \(mean cost out of fold\)"):
        cal.lam_for(parse_target("budget_per_query", 1e-9))
    best = cal.best_quality_share(0.9, DEFAULT_HORIZON)
    assert 0.5 < best < cal.best_quality_share(0.9) < 1.0  # the long run certifies more
    with pytest.raises(ConfigError, match=f"the best certified is min_quality_share={best:g}"):
        cal.lam_for(parse_target("min_quality_share", min(1.0, best + 0.01), 0.9))
    cal.lam_for(parse_target("min_quality_share", best, 0.9))  # the best named is achievable


def test_calibration_round_trips_through_json(calibrated: Calibrated) -> None:
    cal = calibrated[0]
    again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert again.reference == cal.reference and again.folds == 5
    for target in (parse_target("cost_share", 0.5), parse_target("min_quality_share", 0.7)):
        assert again.lam_for(target) == cal.lam_for(target)
    assert cal.spend is not None and again.spend == cal.spend  # the budgets' cost errors
    assert len(cal.spend.selection) == len(cal.lams)
    older = {k: v for k, v in cal.to_dict().items() if k != "spend"}  # saved before them
    assert Calibration.from_dict(older).spend is None
    broken = {**cal.to_dict(), "cost_usd": [1.0]}
    with pytest.raises(ValueError, match="differ in length"):
        Calibration.from_dict(broken)


def test_reference_is_the_best_llm_or_the_one_named() -> None:
    ds = two_llm_set(np.array([1, 1, 0, 1]), np.array([1, 0, 0, 1]))
    assert pick_reference(ds) == "ref"
    assert pick_reference(ds, "cheap") == "cheap"
    with pytest.raises(UnknownLLMError, match=r"reference='gpt-9'.*known: \['ref', 'cheap'\]"):
        pick_reference(ds, "gpt-9")
    tie = two_llm_set(np.array([1, 0]), np.array([0, 1]))
    assert pick_reference(tie) == "cheap"  # equal quality: the cheaper


def test_a_shorter_horizon_is_a_dearer_lam(calibrated: Calibrated) -> None:
    cal = calibrated[0]
    lams = [
        cal.lam_for(parse_target("min_quality_share", 0.8, 0.9, horizon=h))
        for h in (100, 500, 5000, None)
    ]
    assert lams == sorted(lams) and lams[0] < lams[-1]  # smaller λ: more of the dearer LLMs
    bounds = [cal.quality_lower_bounds(0.8, 0.9, h) for h in (100, 500, 5000, None)]
    assert np.all(np.diff(np.stack(bounds), axis=0) >= 0)
