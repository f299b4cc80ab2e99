"""The task-label router: per task, the best LLM on the training split."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mixllm.data import load_routerdc
from mixllm.errors import DataError
from mixllm.policy import choose
from mixllm.policy.task_best import TaskBestPredictor
from tests.policy.conftest import Split, make_set, queries_of, split


def _tasked(n: int = 600, n_clusters: int = 3, seed: int = 0) -> Split:
    """``make_set`` with each query's cluster (found again by KMeans) as its task."""
    ds, qb = make_set(n, n_llms=3, n_clusters=n_clusters, noise=0.2, seed=seed)
    x = qb.embeddings.astype(np.float64)
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters, n_init=5, random_state=0).fit_predict(x)
    ds = replace(ds, tasks=np.array([f"t{v}" for v in labels], dtype=object))
    return split(ds, queries_of(ds, x), n * 2 // 3)


def test_known_tasks_get_their_training_means_and_best_llm() -> None:
    train, qtrain, test, qtest = _tasked()
    p = TaskBestPredictor().fit(train, qtrain)
    assert p.tasks_ == ("t0", "t1", "t2")
    tasks = [str(t) for t in test.tasks]
    quality = p.predict_tasks(qtest, tasks).quality
    for task in p.tasks_:
        rows = train.tasks == task
        want = np.nanmean(train.quality[rows], axis=0)
        got = quality[np.array(tasks) == task]
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape))
    picks = choose(p.predict_tasks(qtest, tasks), 0.0)
    got = test.quality[np.arange(len(test)), picks].mean()
    single = test.quality[:, np.nanmean(train.quality, axis=0).argmax()].mean()
    assert got > single + 0.3  # each cluster has its own good LLM (p 0.9 against 0.1)


def test_unknown_and_missing_tasks() -> None:
    train, qtrain, test, qtest = _tasked()
    p = TaskBestPredictor().fit(train, qtrain)
    unknown = p.predict_tasks(qtest, ["poetry"] * len(test)).quality
    np.testing.assert_allclose(unknown, np.tile(np.nanmean(train.quality, axis=0), (len(test), 1)))
    tasks = [str(t) for t in test.tasks]
    # Well separated clusters: the nearest centroid is the true task.
    assert p.nearest_tasks(qtest) == tasks
    np.testing.assert_array_equal(p.predict(qtest).quality, p.predict_tasks(qtest, tasks).quality)
    mixed = [None if i % 2 else "" for i in range(len(test))]
    np.testing.assert_array_equal(p.predict_tasks(qtest, mixed).quality, p.predict(qtest).quality)
    with pytest.raises(DataError, match="2 tasks for"):
        p.predict_tasks(qtest, ["t0", "t1"])


def test_missing_outcomes_and_no_tasks() -> None:
    ds, qb = make_set(300, n_llms=2, nan_frac=0.2, seed=1)
    train, qtrain, test, qtest = split(ds, qb, 200)
    p = TaskBestPredictor().fit(train, qtrain)  # make_set has no task labels
    assert p.tasks_ == () and p.nearest_tasks(qtest) == [None] * len(test)
    np.testing.assert_allclose(p.predict(qtest).quality[0], np.nanmean(train.quality, axis=0))
    assert np.isfinite(p.predict(qtest).cost_usd).all()


def test_state_round_trip() -> None:
    train, qtrain, test, qtest = _tasked(seed=2)
    p = TaskBestPredictor().fit(train, qtrain)
    params, arrays = p.get_state()
    q = TaskBestPredictor.from_state(params, arrays)
    tasks = [None, "t1", "nope"] * (len(test) // 3) + [None] * (len(test) % 3)
    for a, b in ((p.predict(qtest), q.predict(qtest)),
                 (p.predict_tasks(qtest, tasks), q.predict_tasks(qtest, tasks))):  # fmt: skip
        np.testing.assert_array_equal(a.quality, b.quality)
        np.testing.assert_array_equal(a.cost_usd, b.cost_usd)


def test_beats_the_best_single_llm_on_routerdc(data_dir: Path) -> None:
    """RouterDC's six tasks × seven LLMs: the best LLM differs per task (MetaMath on GSM8K,
    zephyr on MMLU, CMMLU and ARC), so knowing the task beats any single LLM."""
    ds = load_routerdc(data_dir / "routerdc_split2")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(ds), 8)).astype(np.float32)  # known tasks: embeddings unused
    order = rng.permutation(len(ds))
    tr, te = np.sort(order[1520:]), np.sort(order[:1520])
    train, test = ds.subset(tr), ds.subset(te)
    p = TaskBestPredictor().fit(train, queries_of(train, x[tr]))
    picks = choose(p.predict_tasks(queries_of(test, x[te]), list(test.tasks)), 0.0)
    got = test.quality[np.arange(len(test)), picks]
    single = test.quality[:, np.nanmean(train.quality, axis=0).argmax()]
    assert got.mean() > single.mean() + 0.02
    gsm8k = test.tasks == "gsm8k-train"
    assert {test.llms[j] for j in picks[gsm8k]} == {"meta-math/MetaMath-Mistral-7B"}
