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
from mixllm.policy.newcomers import EXPLORE_NEW, MAX_DOMAINS, NEWCOMER_TRIES, newcomer_bonus
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
    # The prior's width: sqrt(|e|² / (ridge · COLD_START_PRIOR_WEIGHT)) = sqrt(2 / 0.25).
    assert bonus == pytest.approx(0.3 * np.sqrt(8.0), rel=1e-6)
    assert first.llm == "star"
    narrowed = router.route_many([prompt], candidates=["mid", "star"])[0]
    assert narrowed.scores == {m: first.scores[m] for m in ("mid", "star")}
    assert router.route(prompt, candidates=["mid", "cheap"]).llm == "mid"
    assert router.route(prompt, max_cost_usd=2e-4).llm == "cheap"  # star costs ~5e-4
    _route_then_learn(router, stream.subset(np.arange(100)))
    later = router.route(prompt)
    after = later.scores["star"] - (
        later.predicted_quality["star"] - LAM * later.predicted_cost_usd["star"]
    )
    assert 0 < after < bonus / 3, (after, bonus)
    # With α at least explore_new, the router's own α·width is the newcomer's whole bonus.
    router.alpha = 0.3
    predictor = router.predictor_
    assert isinstance(predictor, MixLLMPredictor)
    assert predictor.newcomer_bonus(router._queries([prompt], None), alpha=0.3) is None


def test_the_bonus_fades_where_the_newcomer_was_graded_and_only_there(
    data: tuple[Dataset, Dataset],
) -> None:
    train, stream = data
    router = _router(train.select_llms(["cheap", "mid", "dear"]))
    router.add_llm(LLM("star", 5.0, 5.0))
    predictor = router.predictor_
    assert isinstance(predictor, MixLLMPredictor)
    topic = np.asarray(stream.tasks)
    fruit = [str(p) for p in stream.prompts[topic == "topic0"]]
    physics = [str(p) for p in stream.prompts[topic == "topic1"]]
    star = predictor.llms_.index("star")
    for prompt in fruit[:40]:  # star is graded 40 times, on fruit only
        decision = router.route(prompt, candidates=["star"])
        router.learn_one(decision, Feedback(quality=1.0, cost_usd=1e-3))
    counts = predictor.newcomers_.counts_[star]
    assert counts.sum() == pytest.approx(40.0) and np.count_nonzero(counts) == 1
    for prompts, scale in ((fruit[40:60], NEWCOMER_TRIES / (NEWCOMER_TRIES + 40)), (physics, 1.0)):
        queries = router._queries(prompts, None)
        f = predictor._features(queries.embeddings)
        width = newcomer_bonus(
            predictor.online_.a_inv_, np.hstack([f, np.ones((len(f), 1))]),
            predictor.newcomers_.flags_, predictor.explore_new,
        )[:, star]  # fmt: skip
        bonus = predictor.newcomer_bonus(queries)
        assert bonus is not None and np.all(width > 0)
        np.testing.assert_allclose(bonus[:, star], scale * width, rtol=1e-9)


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
    old.add_llm(LLM("star", 5.0, 5.0))  # what a gateway does with an old router: explores
    assert old.route(str(stream.prompts[0])).llm == "star"


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.3", True])
def test_explore_new_must_be_a_weight(data: tuple[Dataset, Dataset], bad: object) -> None:
    with pytest.raises(ConfigError, match="explore_new"):
        Router(MixLLMPredictor(explore_new=bad), embedder="hashing").fit(data[0])  # type: ignore[arg-type]
