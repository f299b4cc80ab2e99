"""An LLM added without data to a router with the default settings (α = 0) is tried and learned:
the newcomer bonus of :class:`~mixllm.policy.MixLLMPredictor` (``explore_new``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from mixllm import Feedback, Router
from mixllm.data import Dataset
from mixllm.errors import ConfigError
from mixllm.persist import _sha256
from mixllm.policy import MixLLMPredictor
from mixllm.policy.newcomers import EXPLORE_NEW, LEVEL_DEFAULT, MAX_DOMAINS
from mixllm.types import LLM

#: name → (quality, price per million tokens in and out); 100 tokens in and out per query, so a
#: query costs 2e-4 × price USD. "star" is priced like "mid": its price tier predicts ~0.58,
#: far below mid, and it is the best of all.
LLMS = {"cheap": (0.3, 0.5), "mid": (0.9, 5.0), "dear": (0.6, 500.0), "star": (0.98, 5.0)}
LAM = 10.0  # utility: cheap 0.30, mid 0.89, dear -0.40, star 0.97


def _dataset(n: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    words = [["apple", "banana", "cherry", "grape"], ["quantum", "photon", "laser", "atom"]]
    topics = rng.integers(0, 2, size=n)
    prompts = [" ".join(rng.choice(words[t], size=6)) + f" #{i}" for i, t in enumerate(topics)]
    q = np.array([v[0] for v in LLMS.values()])
    price = np.array([v[1] for v in LLMS.values()])
    return Dataset(
        query_ids=np.array([f"s{seed}q{i}" for i in range(n)], dtype=object),
        prompts=np.array(prompts, dtype=object),
        llms=tuple(LLMS),
        quality=(rng.random((n, len(LLMS))) < q).astype(float),
        cost_usd=np.tile(2e-4 * price, (n, 1)),
        prompt_tokens=np.full(n, 100.0),
        output_tokens=np.full((n, len(LLMS)), 100.0),
        latency_s=np.full((n, len(LLMS)), np.nan),
        tasks=np.array([f"topic{t}" for t in topics], dtype=object),
        prices={m: LLM(m, p, p) for m, (_, p) in LLMS.items()},
        name="cold-start",
    )


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    return _dataset(400, seed=1), _dataset(500, seed=2)


def _router(train: Dataset, **kwargs: float) -> Router:
    return Router(MixLLMPredictor(**kwargs), embedder="hashing", lam=LAM).fit(train)


def _route_then_learn(router: Router, stream: Dataset) -> list[str]:
    """Route every query in one batch, then learn from their recorded outcomes."""
    chosen = []
    for i, decision in enumerate(router.route_many([str(p) for p in stream.prompts])):
        j = stream.llm_index(decision.llm)
        q, c = float(stream.quality[i, j]), float(stream.cost_usd[i, j])
        router.learn_one(decision, Feedback(quality=q, cost_usd=c))
        chosen.append(decision.llm)
    return chosen


def _stream_one_by_one(router: Router, stream: Dataset) -> list[str]:
    chosen = []
    for i, prompt in enumerate(stream.prompts):
        decision = router.route(str(prompt))
        j = stream.llm_index(decision.llm)
        q, c = float(stream.quality[i, j]), float(stream.cost_usd[i, j])
        router.learn_one(decision, Feedback(quality=q, cost_usd=c))
        chosen.append(decision.llm)
    return chosen


def _with_star(train: Dataset) -> tuple[Router, MixLLMPredictor]:
    """A router fitted without star (the defaults), star then added without data."""
    router = _router(train.select_llms(["cheap", "mid", "dear"]))
    router.add_llm(LLM("star", 5.0, 5.0))
    predictor = router.predictor_
    assert isinstance(predictor, MixLLMPredictor)
    return router, predictor


def _fruit(stream: Dataset) -> list[str]:
    return [str(p) for p, t in zip(stream.prompts, stream.tasks, strict=True) if t == "topic0"]


def test_a_newcomer_that_is_the_best_gets_its_fair_share_with_the_defaults(
    data: tuple[Dataset, Dataset],
) -> None:
    train, stream = data
    knows = Router("mixllm", embedder="hashing", lam=LAM).fit(train)  # the defaults
    fair = np.mean([m == "star" for m in _stream_one_by_one(knows, stream)[250:]])
    shares = {}
    for explore in (EXPLORE_NEW, 0.0):  # the default, and no newcomer bonus
        router = _router(train.select_llms(["cheap", "mid", "dear"]), explore_new=explore)
        router.add_llm(LLM("star", 5.0, 5.0))
        chosen = _stream_one_by_one(router, stream)
        shares[explore] = np.mean([m == "star" for m in chosen[250:]])
    assert fair > 0.9, fair
    assert shares[EXPLORE_NEW] >= fair - 0.05, (shares, fair)
    assert shares[0.0] < 0.05, shares  # without the bonus its price-tier prior keeps it out


def test_without_a_newcomer_the_bonus_changes_nothing(data: tuple[Dataset, Dataset]) -> None:
    train, stream = data
    prompts = [str(p) for p in stream.prompts[:200]]
    with_bonus, without = _router(train, explore_new=1.0), _router(train, explore_new=0.0)
    for a, b in zip(with_bonus.route_many(prompts), without.route_many(prompts), strict=True):
        assert a.llm == b.llm and a.scores == b.scores
    # An LLM added *with* data is not a newcomer either: no bonus.
    seeded = _router(train.select_llms(["cheap", "mid", "dear"]))
    seeded.add_llm(LLM("star", 5.0, 5.0), dataset=train.select_llms(["star"]))
    predictor = seeded.predictor_
    assert isinstance(predictor, MixLLMPredictor)
    assert predictor.newcomer_bonus(seeded._queries(prompts, None)) is None


def test_the_bonus_shrinks_with_feedback_and_respects_candidates_and_cost_limits(
    data: tuple[Dataset, Dataset],
) -> None:
    train, stream = data
    router = _router(train.select_llms(["cheap", "mid", "dear"]), explore_new=0.3)
    router.add_llm(LLM("star", 5.0, 5.0))
    prompt = str(stream.prompts[0])
    first = router.route(prompt)
    bonus = first.scores["star"] - (
        first.predicted_quality["star"] - LAM * first.predicted_cost_usd["star"]
    )
    # The prior's standard deviation (overall and domain) in units of the answers' noise.
    predictor = router.predictor_
    assert isinstance(predictor, MixLLMPredictor)
    noise, overall, domain = predictor.newcomers_.spread_
    assert bonus == pytest.approx(0.3 * np.sqrt((overall + domain) / noise), rel=1e-6)
    assert first.llm == "star"
    narrowed = router.route_many([prompt], candidates=["mid", "star"])[0]
    assert set(narrowed.scores) == {"mid", "star"}
    assert narrowed.scores["mid"] == first.scores["mid"]
    # star's first answer is in flight: its bonus narrows as one graded answer would narrow it
    in_flight = bonus * np.sqrt(noise / (overall + domain + noise))
    assert narrowed.scores["star"] == pytest.approx(first.scores["star"] - bonus + in_flight)
    assert router.route(prompt, candidates=["mid", "cheap"]).llm == "mid"
    assert router.route(prompt, max_cost_usd=2e-4).llm == "cheap"  # star costs ~5e-4
    for i in range(100):  # star answers 100 queries, all graded
        decision = router.route(str(stream.prompts[i]), candidates=["star"])
        quality = float(stream.quality[i, stream.llm_index("star")])
        router.learn_one(decision, Feedback(quality=quality, cost_usd=1e-3))
    later = router.route(prompt)
    after = later.scores["star"] - (
        later.predicted_quality["star"] - LAM * later.predicted_cost_usd["star"]
    )
    assert 0 < after < bonus / 3, (after, bonus)
    # With α at least explore_new, the router's own α·width is the newcomer's whole bonus.
    router.alpha = 0.3
    assert predictor.newcomer_bonus(router._queries([prompt], None), alpha=0.3) is None


def test_the_level_is_learned_where_the_newcomer_was_graded_as_a_bayesian_model(
    data: tuple[Dataset, Dataset],
) -> None:
    train, stream = data
    router, predictor = _with_star(train)
    news = predictor.newcomers_
    topic = np.asarray(stream.tasks)
    fruit = [str(p) for p in stream.prompts[topic == "topic0"]]
    physics = [str(p) for p in stream.prompts[topic == "topic1"]]
    star = predictor.llms_.index("star")
    noise, overall, domain = news.spread_
    assert 0.15 < noise < 0.3 and overall > 0 and domain > 0  # 0/1 grades of 0.3 to 0.9
    grades = np.tile([1.0, 1.0, 1.0, 0.0], 10)  # 40 grades, on fruit only
    residuals = []
    for prompt, grade in zip(fruit[:40], grades, strict=True):
        decision = router.route(prompt, candidates=["star"])
        queries = router._queries([prompt], None)
        f = predictor._features(queries.embeddings)
        offline, _, _ = predictor._offline(f, np.asarray(queries.prompt_tokens, np.float64))
        residuals.append(grade - float(news.baseline(offline)[0]))
        router.learn_one(decision, Feedback(quality=grade, cost_usd=1e-3))
    counts = news.counts_[star]
    assert counts.sum() == pytest.approx(40.0) and np.count_nonzero(counts) == 1
    # The level is the posterior mean of a Gaussian model: the same as least squares on the
    # prior's pseudo-rows and the grades, each scaled by its standard deviation.
    d = int(np.flatnonzero(counts)[0])
    k = len(counts)
    prior_rows = np.diag(1.0 / np.sqrt(np.r_[overall, np.full(k, domain)]))
    prior_targets = np.r_[news.prior_[star] / np.sqrt(overall), np.zeros(k)]
    grade_rows = np.zeros((40, k + 1))
    grade_rows[:, 0] = grade_rows[:, 1 + d] = 1.0 / np.sqrt(noise)
    theta = np.linalg.lstsq(
        np.vstack([prior_rows, grade_rows]),
        np.r_[prior_targets, np.asarray(residuals) / np.sqrt(noise)],
        rcond=None,
    )[0]
    f_fruit = predictor._features(router._queries(fruit[40:60], None).embeddings)
    f_physics = predictor._features(router._queries(physics, None).embeddings)
    mean, sd = news.levels(np.vstack([f_fruit, f_physics]))
    np.testing.assert_allclose(mean[: len(f_fruit), star], theta[0] + theta[1 + d], atol=1e-9)
    # Graded on fruit: narrower there than on physics, and more moved (3 of 4 answers right,
    # above the prior of a newcomer priced like mid)
    assert sd[0, star] < sd[-1, star] < np.sqrt(overall + domain)
    assert mean[0, star] > mean[-1, star] > news.prior_[star]
    bonus = predictor.newcomer_bonus(router._queries(fruit[40:41] + physics[:1], None))
    assert bonus is not None
    np.testing.assert_allclose(
        bonus[:, star], predictor.explore_new * sd[[0, -1], star] / np.sqrt(noise), rtol=1e-9
    )
    np.testing.assert_array_equal(bonus[:, :star], 0.0)


def test_one_answer_moves_the_level_by_what_it_weighs_against_the_prior(
    data: tuple[Dataset, Dataset],
) -> None:
    train, stream = data
    router, predictor = _with_star(train)
    fruit = _fruit(stream)
    queries = router._queries(fruit[:1], None)
    before = predictor.newcomer_bonus(queries)
    first = router.route(fruit[0])
    assert first.llm == "star"  # explored first
    router.learn_one(first, Feedback(quality=0.0, cost_usd=1e-3))
    narrowed = predictor.newcomer_bonus(queries)  # before star is sent the query again
    after = router.route(fruit[0])
    # A wrong first answer moves star's predicted quality towards 0 by the weight one answer
    # has against the prior (the prior's variance over the sum of it and the answers' noise
    # variance, both measured on the training LLMs), and its bonus narrows as its standard
    # deviation does, by sqrt(noise / (prior + noise)): not to nothing.
    noise, overall, domain = predictor.newcomers_.spread_
    prior = overall + domain
    drop = first.predicted_quality["star"] - after.predicted_quality["star"]
    assert drop == pytest.approx(prior / (prior + noise) * first.predicted_quality["star"])
    assert before is not None and narrowed is not None
    star = predictor.llms_.index("star")
    assert narrowed[0, star] == pytest.approx(before[0, star] * np.sqrt(noise / (prior + noise)))


def test_queries_in_flight_narrow_the_bonus_until_their_grades_move_the_level(
    data: tuple[Dataset, Dataset],
) -> None:
    train, stream = data
    router, predictor = _with_star(train)
    fruit = _fruit(stream)
    probe = router._queries(fruit[:1], None)
    f = predictor._features(probe.embeddings)
    star = predictor.llms_.index("star")
    mean0, sd0 = predictor.newcomers_.levels(f)
    decisions = [router.route(p, candidates=["star"]) for p in fruit[1:6]]  # 5 in flight
    mean1, sd1 = predictor.newcomers_.levels(f)
    assert mean1[0, star] == mean0[0, star] and sd1[0, star] < sd0[0, star]  # the mean waits
    for d in decisions:  # the grades come back: the same width, a moved mean
        router.learn_one(d, Feedback(quality=1.0, cost_usd=1e-3))
    mean2, sd2 = predictor.newcomers_.levels(f)
    assert sd2[0, star] == pytest.approx(sd1[0, star]) and mean2[0, star] > mean1[0, star]
    assert not predictor.newcomers_.pending_.any()
    # A router that is not exploring (no newcomer) keeps no pending answers.
    plain = _router(train)
    plain.route_many(fruit[:10])
    assert isinstance(plain.predictor_, MixLLMPredictor)
    assert not plain.predictor_.newcomers_.pending_.any()


def test_without_tasks_the_domains_are_clusters_of_the_training_queries(
    data: tuple[Dataset, Dataset],
) -> None:
    train, stream = data
    known = train.select_llms(["cheap", "mid", "dear"])
    untagged = dataclasses.replace(known, tasks=np.full(len(known), None, dtype=object))
    router = Router(MixLLMPredictor(tagged=False), embedder="hashing", lam=LAM).fit(untagged)
    predictor = router.predictor_
    assert isinstance(predictor, MixLLMPredictor)
    centres = predictor.newcomers_.centres_
    assert 2 <= len(centres) <= MAX_DOMAINS
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 1.0, rtol=1e-9)
    router.add_llm(LLM("star", 5.0, 5.0))
    predictor = router.predictor_
    assert isinstance(predictor, MixLLMPredictor)
    prompts = [str(p) for p in stream.prompts[:30]]
    for prompt in prompts:
        decision = router.route(prompt, candidates=["star"])
        router.learn_one(decision, Feedback(quality=1.0, cost_usd=1e-3))
    counts = predictor.newcomers_.counts_[predictor.llms_.index("star")]
    domains = predictor.newcomers_.domains(
        predictor._features(router._queries(prompts, None).embeddings)
    )
    np.testing.assert_allclose(counts, np.bincount(domains, minlength=len(centres)))


def test_the_knob_and_the_newcomers_save_and_load(
    data: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    train, stream = data
    router = _router(train.select_llms(["cheap", "mid", "dear"]), explore_new=0.2)
    router.add_llm(LLM("star", 5.0, 5.0))
    _route_then_learn(router, stream.subset(np.arange(20)))
    prompts = [str(p) for p in stream.prompts[20:60]]
    restored = Router.load(router.save(tmp_path / "r"))
    assert isinstance(restored.predictor_, MixLLMPredictor)
    assert restored.predictor_.explore_new == 0.2
    for a, b in zip(router.route_many(prompts), restored.route_many(prompts), strict=True):
        assert a.llm == b.llm and a.scores == b.scores


def test_a_router_saved_before_the_knob_loads_with_the_default(
    data: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    train, stream = data
    path = _router(train.select_llms(["cheap", "mid", "dear"])).save(tmp_path / "old")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["predictor"]["params"]["explore_new"]  # as written before it existed
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("newcomer")}
    np.savez(path / "arrays.npz", **arrays)
    manifest["arrays_sha256"] = _sha256(path / "arrays.npz")
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = Router.load(path)
    assert isinstance(old.predictor_, MixLLMPredictor)
    assert old.predictor_.explore_new == EXPLORE_NEW
    assert not old.predictor_.newcomers_.flags_.any()
    np.testing.assert_array_equal(old.predictor_.newcomers_.spread_, LEVEL_DEFAULT)
    old.add_llm(LLM("star", 5.0, 5.0))  # what a gateway does with an old router: explores
    bonus = old.predictor_.newcomer_bonus(old._queries([str(stream.prompts[0])], None))
    assert bonus is not None and bonus[0, -1] > 0 and not bonus[0, :-1].any()


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.3", True])
def test_explore_new_must_be_a_weight(data: tuple[Dataset, Dataset], bad: object) -> None:
    with pytest.raises(ConfigError, match="explore_new"):
        Router(MixLLMPredictor(explore_new=bad), embedder="hashing").fit(data[0])  # type: ignore[arg-type]
