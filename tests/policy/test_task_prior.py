"""The task-prior blend: per task, the task's best LLM unless per-query predictions beat it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError
from mixllm.policy import choose
from mixllm.policy.task_best import TaskBestPredictor
from mixllm.policy.task_prior import TaskPriorPredictor
from mixllm.types import QueryBatch
from tests.policy.conftest import Split, make_set, queries_of, split


def _set(*, signal: bool, n: int = 900, seed: int = 0) -> Split:
    """Four clusters in two tasks (clusters 0, 1 → task a; 2, 3 → task b), two LLMs.

    ``signal``: LLM j is good on clusters c with c % 2 == j (so within a task the cluster says
    which LLM to call); else each task has one better LLM (0.6 against 0.4) and nothing in a
    query says more.
    """
    ds, qb = make_set(n, n_llms=2, n_clusters=4, noise=0.2, seed=seed)
    x = qb.embeddings.astype(np.float64)
    from sklearn.cluster import KMeans

    cluster = KMeans(4, n_init=5, random_state=0).fit_predict(x)
    task = np.array(["a", "a", "b", "b"])[cluster] if signal else None
    if not signal:  # tasks: pairs of clusters; quality from the task only
        order = np.argsort(KMeans(4, n_init=5, random_state=0).fit(x).cluster_centers_[:, 0])
        rank = np.empty(4, dtype=int)
        rank[order] = np.arange(4)
        task = np.where(rank[cluster] < 2, "a", "b")
        rng = np.random.default_rng(seed)
        p_good = np.where(task == "a", 0.6, 0.4)[:, None] * np.array([1.0, 0.0])
        p_good += np.where(task == "a", 0.4, 0.6)[:, None] * np.array([0.0, 1.0])
        quality = (rng.random((n, 2)) < p_good).astype(float)
        ds = replace(ds, quality=quality)
    ds = replace(ds, tasks=np.array(task, dtype=object))
    return split(ds, queries_of(ds, x), n * 2 // 3)


def _picked(test: Dataset, quality: np.ndarray) -> float:
    return float(test.quality[np.arange(len(test)), quality.argmax(axis=1)].mean())


def _tasks(test: Dataset) -> list[str | None]:
    return [str(t) for t in test.tasks]


def test_predictions_that_beat_the_prior_get_weight() -> None:
    train, qtrain, test, qtest = _set(signal=True)
    p = TaskPriorPredictor(seed=0).fit(train, qtrain)
    assert (p.weight_ > 0).all() and (p.oof_gain_ > 0.2).all()
    prior = TaskBestPredictor().fit(train, qtrain).predict_tasks(qtest, _tasks(test))
    got = _picked(test, p.predict(qtest).quality)
    assert got > _picked(test, prior.quality) + 0.25  # the cluster picks the LLM: ~0.9 vs ~0.5


def test_predictions_without_signal_fall_back_to_the_task_best() -> None:
    train, qtrain, test, qtest = _set(signal=False, n=1500)
    p = TaskPriorPredictor(seed=0).fit(train, qtrain)
    assert p.tasks_ == ("a", "b")
    np.testing.assert_allclose(p.weight_, 0.0)  # out of fold, noise never beats the prior
    told = p.predict_tasks(qtest, _tasks(test))
    best = TaskBestPredictor().fit(train, qtrain).predict_tasks(qtest, _tasks(test))
    np.testing.assert_allclose(told.quality, best.quality)
    # The task is found from the embedding: the same picks as being told it.
    np.testing.assert_array_equal(choose(p.predict(qtest), 0.0), choose(told, 0.0))
    assert p.task_posterior(qtest).max(axis=1).min() > 0.5


def test_without_task_labels_clusters_are_the_tasks() -> None:
    train, qtrain, test, qtest = _set(signal=True)
    train = replace(train, tasks=np.full(len(train), None, dtype=object))
    p = TaskPriorPredictor(n_clusters=4, seed=0).fit(train, qtrain)
    assert p.tasks_ == ("cluster0", "cluster1", "cluster2", "cluster3")
    assert _picked(test, p.predict(qtest).quality) > 0.8


def test_state_round_trip_and_errors() -> None:
    train, qtrain, test, qtest = _set(signal=True, seed=1)
    p = TaskPriorPredictor(weights=(0.0, 1.0), cv=3, soft=False, seed=0).fit(train, qtrain)
    q = TaskPriorPredictor.from_state(*p.get_state())
    assert q.weights == (0.0, 1.0) and q.soft is False
    tasks: list[str | None] = [None, "a", "zzz"] * (len(test) // 3)
    tasks += [None] * (len(test) - len(tasks))
    for a, b in ((p.predict(qtest), q.predict(qtest)),
                 (p.predict_tasks(qtest, tasks), q.predict_tasks(qtest, tasks))):  # fmt: skip
        np.testing.assert_allclose(a.quality, b.quality)
    with pytest.raises(DataError, match="1 tasks for"):
        p.predict_tasks(qtest, ["a"])
    for bad in ({"weights": ()}, {"weights": (-1.0,)}, {"cv": 1}, {"n_clusters": 1}):
        with pytest.raises(ConfigError):
            TaskPriorPredictor(**bad).fit(train, qtrain)  # type: ignore[arg-type]
    wide = QueryBatch(qtest.ids, qtest.prompts, np.zeros((len(test), 3), np.float32),
                      qtest.prompt_tokens)  # fmt: skip
    with pytest.raises(DataError, match="dimension 3"):
        p.predict(wide)


def test_shrink_pulls_each_task_towards_the_overall_means() -> None:
    train, qtrain, test, qtest = _set(signal=False, n=600)
    tasks = _tasks(test)
    overall = np.nanmean(train.quality, axis=0)
    for shrink, want_spread in ((0.0, True), (1e6, False)):
        p = TaskPriorPredictor(weights=(0.0,), shrink=shrink, cv=2, seed=0).fit(train, qtrain)
        quality = p.predict_tasks(qtest, tasks).quality
        if want_spread:  # each task its own best LLM
            assert set(quality.argmax(axis=1).tolist()) == {0, 1}
        else:
            np.testing.assert_allclose(quality, np.broadcast_to(overall, quality.shape), atol=1e-3)
    with pytest.raises(ConfigError, match="shrink"):
        TaskPriorPredictor(shrink=-1.0).fit(train, qtrain)
