"""MixLLM's task prior: each task's training means blended into its quality predictions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.errors import PersistError
from mixllm.policy import MixLLMPredictor, choose
from mixllm.policy.mixllm import TASK_PRIOR_SHRINK
from mixllm.policy.state import part_state
from mixllm.policy.task_prior import TaskPriorPredictor
from mixllm.predict.quality import QualityModel
from mixllm.predict.task_blend import TaskBlend, fit_blend
from mixllm.types import LLM
from tests.policy.conftest import make_set, split
from tests.policy.test_task_prior import _set, _tasks


def _best_per_task(
    test_tasks: list[str | None], train_quality: np.ndarray, train_tasks: list[str | None]
) -> np.ndarray:
    means = {
        t: np.nanmean(train_quality[np.array(train_tasks) == t], axis=0) for t in set(train_tasks)
    }
    return np.array([int(np.argmax(means[str(t)])) for t in test_tasks])


def test_without_per_query_signal_each_task_gets_its_best_llm() -> None:
    train, qtrain, test, qtest = _set(signal=False, n=1500)
    p = MixLLMPredictor(seed=0).fit(train, qtrain)
    assert p.blend_ is not None and p.blend_.tasks_ == ("a", "b")
    want = _best_per_task(_tasks(test), train.quality, _tasks(train))
    picked = choose(p.predict(qtest, uncertainty=False), 0.0)
    assert (picked == want).mean() > 0.95  # the task is read off the features


def test_a_prior_alone_shrinks_to_the_overall_means_a_blended_one_to_the_models() -> None:
    train, qtrain, _, _ = _set(signal=False, n=600)
    x, q = qtrain.embeddings.astype(np.float64), np.asarray(train.quality, np.float64)
    labels = [str(t) for t in train.tasks]
    rows = np.array(labels) == "a"
    own, overall, n = np.nanmean(q[rows], axis=0), np.nanmean(q, axis=0), rows.sum()
    k, oof = TASK_PRIOR_SHRINK, np.full_like(q, 0.3)
    alone = TaskBlend((0.0,), shrink=k).fit(x, labels, q, oof)
    np.testing.assert_allclose(alone.prior_[0], (own * n + k * overall) / (n + k), atol=1e-12)
    blended = TaskBlend((1.0,), shrink=k).fit(x, labels, q, oof)
    np.testing.assert_allclose(blended.prior_[0], (own * n + k * 0.3) / (n + k), atol=1e-12)
    # Ties (here every weight picks alike: the out-of-fold model is flat) keep the model.
    tied = TaskBlend(shrink=k).fit(x, labels, q, oof)
    np.testing.assert_allclose(tied.task_weight_, 1.0)


def test_per_query_signal_keeps_its_weight_and_beats_the_paper_predictor_or_ties() -> None:
    train, qtrain, test, qtest = _set(signal=True)
    p = MixLLMPredictor(seed=0).fit(train, qtrain)
    plain = MixLLMPredictor(task_prior=False, seed=0).fit(train, qtrain)
    assert p.blend_ is not None and (p.blend_.task_weight_ > 0).all()
    rows = np.arange(len(test))

    def got(m: MixLLMPredictor) -> float:
        return float(test.quality[rows, choose(m.predict(qtest, uncertainty=False), 0.0)].mean())

    assert got(p) > 0.8 and got(p) >= got(plain) - 0.02


def test_without_two_labelled_tasks_it_is_the_paper_predictor() -> None:
    ds, qb = make_set(240, n_llms=3, n_clusters=3, seed=4)
    train, qtrain, _, qtest = split(ds, qb, 180)
    p = MixLLMPredictor(seed=0).fit(train, qtrain)
    plain = MixLLMPredictor(task_prior=False, seed=0).fit(train, qtrain)
    assert p.blend_ is None
    np.testing.assert_allclose(p.predict(qtest).quality, plain.predict(qtest).quality, atol=1e-12)
    one = replace(train, tasks=np.full(len(train), "only", dtype=object))
    assert MixLLMPredictor(seed=0).fit(one, qtrain).blend_ is None


def test_state_round_trip_and_routers_saved_before_it() -> None:
    train, qtrain, _test, qtest = _set(signal=False, n=600)
    p = MixLLMPredictor(seed=0).fit(train, qtrain)
    q = MixLLMPredictor.from_state(*p.get_state())
    assert q.task_prior is True and q.blend_ is not None
    np.testing.assert_allclose(q.predict(qtest).quality, p.predict(qtest).quality, atol=1e-12)
    # A router saved before the option: no task_prior parameter, no blend; it loads unchanged.
    old = MixLLMPredictor(task_prior=False, seed=0).fit(train, qtrain)
    params, arrays = old.get_state()
    params = {k: v for k, v in params.items() if k != "task_prior"}
    loaded = MixLLMPredictor.from_state(params, arrays)
    assert loaded.task_prior is False and loaded.blend_ is None
    np.testing.assert_allclose(loaded.predict(qtest).quality, old.predict(qtest).quality)
    params, arrays = p.get_state()
    broken = {k: v for k, v in arrays.items() if not k.startswith("quality.")}
    with pytest.raises(PersistError):
        MixLLMPredictor.from_state(params, broken)
    assert part_state({"blend": {"x": 1}}, {"blend.prior": 1, "other": 2}, "blend") == (
        {"x": 1},
        {"prior": 1},
    )
    with pytest.raises(PersistError, match="no part 'online'"):
        part_state({"blend": {}}, {}, "online")


def test_an_llm_added_with_outcomes_gets_its_task_priors() -> None:
    train, qtrain, test, qtest = _set(signal=False, n=1500)
    p = MixLLMPredictor(seed=0).fit(train.select_llms(["llm-0"]), qtrain)
    assert p.blend_ is not None and p.blend_.prior_.shape == (2, 1)
    p.add_llm(LLM("llm-1", 2.0, 4.0), train.select_llms(["llm-1"]), qtrain)
    assert p.blend_.prior_.shape == (2, 2)
    rows = np.array(_tasks(train)) == "b"
    # Its prior on task b: its mean there (posterior-weighted), shrunk to its overall mean.
    assert abs(p.blend_.prior_[1, 1] - np.nanmean(train.quality[rows, 1])) < 0.06
    want = _best_per_task(_tasks(test), train.quality, _tasks(train))
    assert (choose(p.predict(qtest, uncertainty=False), 0.0) == want).mean() > 0.95


def test_an_llm_added_without_data_keeps_its_own_predictions_and_can_be_removed() -> None:
    train, qtrain, _test, qtest = _set(signal=False, n=600)
    p = MixLLMPredictor(seed=0).fit(train, qtrain)
    before = p.predict(qtest, uncertainty=False).quality
    p.add_llm(LLM("new", 1.0, 1.0))
    assert p.blend_ is not None
    np.testing.assert_allclose(p.blend_.prior_[:, -1], 0.0)
    np.testing.assert_allclose(p.blend_.weight_[:, -1], 1.0)
    after = p.predict(qtest, uncertainty=False).quality
    np.testing.assert_allclose(after[:, :2], before, atol=1e-12)  # the others are unchanged
    # The best LLM's prediction at each query plus its price tier's level, one for every query.
    level = after[:, -1] - before.max(axis=1)
    np.testing.assert_allclose(level, level[0], atol=1e-9)
    p.remove_llm("llm-0")
    assert p.blend_.prior_.shape == (2, 2)
    np.testing.assert_allclose(p.predict(qtest, uncertainty=False).quality[:, 0], before[:, 1])


def test_feedback_corrects_the_blended_prediction() -> None:
    train, qtrain, _test, qtest = _set(signal=False, n=600)
    p = MixLLMPredictor(seed=0).fit(train, qtrain)
    x, ptok = qtest.embeddings[0], float(qtest.prompt_tokens[0])
    start = float(p.predict(qtest, uncertainty=False).quality[0, 0])
    for _ in range(30):
        p.learn(x, "llm-0", prompt_tokens=ptok, quality=1.0)
    end = float(p.predict(qtest, uncertainty=False).quality[0, 0])
    assert start < 0.8 and end > start + 0.1


def test_task_prior_routers_saved_with_per_task_weights_still_load() -> None:
    train, qtrain, _test, qtest = _set(signal=True, seed=1)
    p = TaskPriorPredictor(weights=(0.0, 1.0), cv=3, seed=0).fit(train, qtrain)
    params, arrays = p.get_state()
    # The layout before the blend was a part: one weight per task, "oof_gain", no "blend".
    old = {k: v for k, v in arrays.items() if k not in ("task_weight", "gain", "weight")}
    old |= {"weight": p.weight_.copy(), "oof_gain": p.oof_gain_.copy()}
    params = {k: v for k, v in params.items() if k != "blend"}
    q = TaskPriorPredictor.from_state({**params, "weights": [0.0, 1.0]}, old)
    np.testing.assert_allclose(q.predict(qtest).quality, p.predict(qtest).quality)
    np.testing.assert_allclose(q.oof_gain_, p.oof_gain_)
    assert isinstance(q.blend_, TaskBlend)


def test_folds_reuse_a_fitted_models_choices_even_for_an_llm_with_few_outcomes() -> None:
    train, qtrain, _, _ = _set(signal=True, n=600)
    x, q = qtrain.embeddings.astype(np.float64), np.asarray(train.quality, np.float64)
    q = np.column_stack([q, np.full(len(q), np.nan)])
    q[:6, 2] = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]  # too few to cross-validate: a constant head
    labels = [str(t) for t in train.tasks]
    fitted = QualityModel("logistic", seed=0).fit(x, q)
    assert fitted.kinds_[:2] == ["logistic", "logistic"] and fitted.kinds_[2] == "constant"
    reused = fit_blend(fitted, x, q, labels, shrink=TASK_PRIOR_SHRINK)
    tuned = fit_blend("logistic", x, q, labels, shrink=TASK_PRIOR_SHRINK)
    assert np.isfinite(reused.prior_).all() and np.isfinite(reused.offset_).all()
    assert (reused.task_weight_ > 0).all() and (tuned.task_weight_ > 0).all()  # the signal
    np.testing.assert_allclose(reused.offset_[:, :2], tuned.offset_[:, :2], atol=0.05)
