"""Router.learn_one, add_llm and remove_llm: feedback applied once, learning that moves
decisions, pool changes without retraining, and a ledger that survives save/load."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mixllm import Feedback, Router
from mixllm.data import Dataset, make_routing_dataset, split_random
from mixllm.errors import ConfigError, UnknownLLMError
from mixllm.types import LLM


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    ds = make_routing_dataset(n_queries=600, n_llms=4, seed=11)
    return split_random(ds, seed=0)


def _router(train: Dataset, predictor: str = "mixllm", **kwargs: float) -> Router:
    return Router(predictor, embedder="hashing", **kwargs).fit(train)  # type: ignore[arg-type]


def test_learn_one_is_a_pure_update_of_the_decisions_query(
    data: tuple[Dataset, Dataset],
) -> None:
    """Every call learns (keeping each feedback once is the store's job): the same feedback
    twice moves the predictions as two observations of it do, on any router that has the
    decision's query, whichever router made the decision."""
    train, test = data
    router, twin = _router(train), _router(train)
    prompts = [str(p) for p in test.prompts[:40]]
    decisions = router.route_many(prompts, lam=0.0)
    before = router.predict(prompts).quality
    for d in decisions[:20]:
        assert router.learn_one(d, Feedback(quality=0.0, cost_usd=0.01))
    once = router.predict(prompts).quality
    assert not np.allclose(once, before)
    for d in decisions[:20]:  # again: learned again
        assert router.learn_one(d, Feedback(quality=0.0, cost_usd=0.01))
        assert twin.learn_one(d, Feedback(quality=0.0, cost_usd=0.01))  # made by the other
        assert twin.learn_one(d, Feedback(quality=0.0, cost_usd=0.01))
    twice = router.predict(prompts).quality
    assert np.abs(twice - once).max() > 1e-6
    np.testing.assert_allclose(twin.predict(prompts).quality, twice, rtol=0, atol=1e-12)


def test_feedback_order_does_not_matter(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    prompts = [str(p) for p in test.prompts[:30]]
    results = []
    for order in (1, -1):
        router = _router(train)
        decisions = router.route_many(prompts, lam=0.0)
        for i, d in list(enumerate(decisions))[::order]:
            router.learn_one(d, Feedback(quality=float(i % 2), cost_usd=0.001 * i))
        results.append(router.predict(prompts))
    np.testing.assert_allclose(results[0].quality, results[1].quality, atol=1e-9)
    np.testing.assert_allclose(results[0].cost_usd, results[1].cost_usd, atol=1e-12)


def test_decisions_without_a_query_and_routers_that_do_not_learn(
    data: tuple[Dataset, Dataset],
) -> None:
    train, test = data
    router = _router(train)
    prompts = [str(test.prompts[0])]
    before = router.predict(prompts).quality
    bare = replace(router.route(prompts[0]), embedding=None)
    assert not router.learn_one(bare, Feedback(reward=True))  # nothing to learn from
    np.testing.assert_array_equal(router.predict(prompts).quality, before)
    with pytest.raises(ConfigError, match="expected a Decision"):
        router.learn_one("q1", Feedback(quality=1.0))  # type: ignore[arg-type]
    knn = _router(train, "knn")
    with pytest.raises(ConfigError, match="does not learn online"):
        knn.learn_one(knn.route(str(test.prompts[0])), Feedback(quality=1.0))
    with pytest.raises(ConfigError, match="quality=2"):
        Feedback(quality=2.0)
    with pytest.raises(ConfigError, match="carries nothing"):
        Feedback()


@pytest.mark.parametrize("kind", ["refined", "binary"])
def test_feedback_moves_decisions_where_an_llm_keeps_failing(
    data: tuple[Dataset, Dataset], kind: str
) -> None:
    train, test = data
    router = _router(train)
    prompts = [str(p) for p in test.prompts]
    first = router.route_many(prompts, lam=0.0)
    favourite = max(set(d.llm for d in first), key=[d.llm for d in first].count)
    share = np.mean([d.llm == favourite for d in first])
    feedback = Feedback(reward=False) if kind == "binary" else Feedback(quality=0.0, cost_usd=0.0)
    for _ in range(3):  # the favourite fails on every query, three times over
        for d in router.route_many(prompts, lam=0.0):
            if d.llm == favourite:
                router.learn_one(d, feedback)
    later = np.mean([d.llm == favourite for d in router.route_many(prompts, lam=0.0)])
    assert share > 0.3 and later < share / 3, (share, later)


def test_add_llm_without_data_starts_from_its_price_tier(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    llms = train.llms
    router = _router(train.select_llms(llms[:-1]), alpha=0.5)
    newcomer = train.llm(llms[-1])
    router.add_llm(LLM(newcomer.name, newcomer.price_in_per_mtok, newcomer.price_out_per_mtok))
    assert router.llms == llms
    pred = router.predict([str(p) for p in test.prompts[:50]])
    q = pred.quality[:, -1]
    # No data yet: the best fitted LLM's prediction at each query plus one prior level.
    level = q - pred.quality[:, :-1].max(axis=1)
    assert np.isfinite(q).all() and np.ptp(pred.quality[:, :-1].max(axis=1)) > 0
    np.testing.assert_allclose(level, level[0], atol=1e-9)
    assert pred.uncertainty is not None
    assert (pred.uncertainty[:, -1] > pred.uncertainty[:, :-1].max(axis=1)).all()
    cheap = LLM("cheap/new", 0.0001, 0.0001)
    dear = LLM("dear/new", 1000.0, 1000.0)
    router.add_llm(cheap)
    router.add_llm(dear)
    prior = router.predict([str(test.prompts[0])]).quality[0]
    assert prior[-1] >= prior[-2]  # a pricier LLM is expected to be at least as good
    with pytest.raises(ConfigError, match="already"):
        router.add_llm(cheap)


def test_add_llm_with_seed_outcomes_equals_fitting_it(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    llms = train.llms
    router = _router(train.select_llms(llms[:-1]))
    router.add_llm(train.llm(llms[-1]), dataset=train)
    full = _router(train)
    prompts = [str(p) for p in test.prompts[:60]]
    np.testing.assert_allclose(
        router.predict(prompts).quality[:, -1], full.predict(prompts).quality[:, -1], atol=0.05
    )
    with pytest.raises(UnknownLLMError, match="no outcomes for 'ghost'"):
        router.add_llm(LLM("ghost"), dataset=train)


def test_remove_llm_keeps_decisions_in_flight_valid(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    router = _router(train)
    prompts = [str(p) for p in test.prompts[:60]]
    decisions = router.route_many(prompts, lam=0.0)
    gone = decisions[0].llm
    before = router.predict(prompts)
    router.remove_llm(gone)
    assert gone not in router.llms
    assert all(d.llm != gone for d in router.route_many(prompts, lam=0.0))
    after = router.predict(prompts)
    keep = [before.llms.index(m) for m in after.llms]
    np.testing.assert_allclose(after.quality, before.quality[:, keep])  # others untouched
    in_flight = next(d for d in decisions if d.llm == gone)
    assert not router.learn_one(in_flight, Feedback(quality=1.0))  # accepted, ignored
    for m in router.llms[:-1]:
        router.remove_llm(m)
    with pytest.raises(ConfigError, match="only LLM left"):
        router.remove_llm(router.llms[0])


def test_saved_router_keeps_what_it_learned(data: tuple[Dataset, Dataset], tmp_path: Path) -> None:
    train, test = data
    router = _router(train, alpha=0.1)
    prompts = [str(p) for p in test.prompts[:30]]
    decisions = router.route_many(prompts, lam=0.0)
    for d in decisions[:10]:
        router.learn_one(d, Feedback(quality=0.0, cost_usd=0.002))
    router.add_llm(LLM("late/joiner", 0.5, 1.5))
    loaded = Router.load(router.save(tmp_path / "r"))
    a, b = router.predict(prompts), loaded.predict(prompts)
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(a.cost_usd, b.cost_usd)
    assert [d.llm for d in loaded.route_many(prompts)] == [
        d.llm for d in router.route_many(prompts)
    ]
    for r in (router, loaded):  # both go on learning alike
        assert r.learn_one(decisions[10], Feedback(quality=1.0))
    np.testing.assert_array_equal(router.predict(prompts).quality, loaded.predict(prompts).quality)


def test_concurrent_routing_and_learning(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    router = _router(train, alpha=0.1)
    prompts = [str(p) for p in test.prompts[:40]]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for k in range(10):
                for d in router.route_many(prompts[offset::4], lam=float(k)):
                    router.learn_one(d, Feedback(quality=float(k % 2), cost_usd=0.001))
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert np.isfinite(router.predict(prompts).quality).all()


def test_statistics_from_feedback_only(data: tuple[Dataset, Dataset]) -> None:
    from mixllm.policy import MixLLMPredictor

    train, test = data
    prompts = [str(p) for p in test.prompts[:50]]
    paper = Router(MixLLMPredictor(), embedder="hashing", alpha=0.5).fit(train)
    assert paper.predictor_.statistics == "training"  # the default
    fresh = Router(MixLLMPredictor(statistics="feedback"), embedder="hashing", alpha=0.5).fit(train)
    # Before any feedback every LLM has A = I: equal bonuses, so the same decisions as α = 0.
    assert [d.llm for d in fresh.route_many(prompts)] == [
        d.llm for d in _router(train).route_many(prompts)
    ]
    width = fresh.predict(prompts).uncertainty
    assert width is not None and np.allclose(width, width[:, :1])
    d = fresh.route(prompts[0])
    fresh.learn_one(d, Feedback(quality=0.0, cost_usd=0.001))
    width = fresh.predict(prompts).uncertainty
    j = fresh.llms.index(d.llm)
    assert width is not None and width[0, j] < width[0, (j + 1) % len(fresh.llms)]
    assert paper.predict(prompts).uncertainty is not None
    with pytest.raises(ConfigError, match=r"statistics='both'; expected one of \('training'"):
        Router(MixLLMPredictor(statistics="both"), embedder="hashing").fit(train)


def test_split_statistics_bonus_from_training_corrections_from_feedback(
    data: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    from mixllm.policy import MixLLMPredictor

    train, test = data
    prompts = [str(p) for p in test.prompts[:30]]
    routers = {
        s: Router(MixLLMPredictor(statistics=s), embedder="hashing", alpha=0.5).fit(train)
        for s in ("training", "feedback", "split")
    }
    before = {s: r.predict(prompts) for s, r in routers.items()}
    assert np.allclose(before["split"].uncertainty, before["training"].uncertainty)
    assert not np.allclose(before["split"].uncertainty, before["feedback"].uncertainty)
    first, second = train.llms[:2]  # the same feedback for every router
    for r in routers.values():
        d = r.route(prompts[0], lam=0.0, candidates=[first])
        assert r.learn_one(d, Feedback(quality=0.0, cost_usd=0.01))
        d2 = r.route(prompts[1], lam=0.0, candidates=[second])
        assert r.learn_one(d2, Feedback(reward=True))
    after = {s: r.predict(prompts) for s, r in routers.items()}
    np.testing.assert_allclose(after["split"].quality, after["feedback"].quality)
    assert not np.allclose(after["split"].quality, after["training"].quality)
    assert not np.allclose(after["split"].uncertainty, before["split"].uncertainty)
    routers["split"].save(tmp_path / "split")
    again = Router.load(tmp_path / "split").predict(prompts)
    np.testing.assert_array_equal(again.quality, after["split"].quality)
    # The bonus is not the same product: in memory, each update appended the LLM's new A⁻¹ to
    # the stacked matrices; loaded, the distinct ones are stacked afresh (another BLAS shape).
    np.testing.assert_allclose(again.uncertainty, after["split"].uncertainty, rtol=1e-9)
    routers["split"].add_llm(LLM("newcomer", 1.0, 2.0))
    routers["split"].remove_llm(routers["split"].llms[0])
    assert np.isfinite(routers["split"].predict(prompts).uncertainty).all()


def test_feedback_that_fails_changes_nothing(data: tuple[Dataset, Dataset]) -> None:
    from mixllm.errors import DataError

    train, test = data
    router = _router(train)
    prompts = [str(test.prompts[0])]
    d = router.route(prompts[0])
    before = router.predict(prompts).quality
    broken = replace(d, embedding=np.ones(3, dtype=np.float32))  # same id, wrong width
    with pytest.raises(DataError, match="dimension 3"):
        router.learn_one(broken, Feedback(quality=1.0))
    np.testing.assert_array_equal(router.predict(prompts).quality, before)
    assert router.learn_one(d, Feedback(quality=1.0))  # the retry is applied


def test_default_query_ids_are_the_same_alone_and_in_a_batch(
    data: tuple[Dataset, Dataset],
) -> None:
    train, test = data
    router = Router("random", embedder="hashing").fit(train)
    prompts = [str(p) for p in test.prompts[:30]]
    batch = router.route_many(prompts)
    alone = [router.route(p) for p in prompts]
    assert [d.query_id for d in batch] == [d.query_id for d in alone]
    assert [d.llm for d in batch] == [d.llm for d in alone]
    assert len({d.llm for d in alone}) > 1  # a random router, not one fixed draw
    assert len({d.decision_id for d in batch + alone}) == 60


def test_an_llm_added_without_prices_is_free(data: tuple[Dataset, Dataset]) -> None:
    train, test = data
    router = _router(train)
    router.add_llm(LLM("local/vllm-model"))
    cost = router.predict([str(p) for p in test.prompts[:10]]).cost_usd
    assert (cost[:, -1] == 0).all() and (cost[:, :-1] > 0).all()


def test_a_discount_relearns_an_llm_whose_quality_drifts(data: tuple[Dataset, Dataset]) -> None:
    from mixllm.policy import MixLLMPredictor

    train, test = data
    prompt = str(test.prompts[0])
    after = {}
    for discount in (1.0, 0.95):
        router = Router(MixLLMPredictor(discount=discount), embedder="hashing").fit(train)
        llm = router.llms[0]
        for k in range(120):  # the LLM answers well 60 times, then badly 60 times
            d = router.route(prompt, candidates=[llm])
            router.learn_one(d, Feedback(quality=1.0 if k < 60 else 0.0))
        after[discount] = router.predict([prompt]).quality[0, 0]
    assert after[1.0] > 0.3  # without forgetting, the old successes still weigh half
    assert after[0.95] < 0.1  # with it, the recent failures dominate


def test_a_restored_router_learns_decisions_made_before_the_restart(
    data: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    train, test = data
    router = _router(train)
    done = router.route(str(test.prompts[0]))
    assert router.learn_one(done, Feedback(quality=1.0))
    router.save(tmp_path / "ckpt")
    later = router.route(str(test.prompts[1]))  # made after the checkpoint
    restored = Router.load(tmp_path / "ckpt")
    assert restored.learn_one(later, Feedback(quality=0.0))
    assert router.learn_one(later, Feedback(quality=0.0))
    prompts = [str(p) for p in test.prompts[:5]]
    np.testing.assert_allclose(
        restored.predict(prompts).quality, router.predict(prompts).quality, rtol=0, atol=1e-12
    )


def test_a_failed_add_llm_leaves_the_pool_as_it_was(
    data: tuple[Dataset, Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:

    train, test = data
    router = _router(train, alpha=0.1)
    prompts = [str(p) for p in test.prompts[:10]]
    before = router.predict(prompts)

    def broken(*args: object) -> float:
        raise RuntimeError("prior failed")  # after the quality and length heads were added

    monkeypatch.setattr("mixllm.policy.mixllm.tier_prior", broken)
    with pytest.raises(RuntimeError, match="prior failed"):
        router.add_llm(LLM("newcomer", 1.0, 2.0))
    after = router.predict(prompts)
    assert after.llms == before.llms and "newcomer" not in router.prices_
    np.testing.assert_array_equal(after.quality, before.quality)
    np.testing.assert_array_equal(after.uncertainty, before.uncertainty)
    router.route(prompts[0])  # still routes
