"""Every predictor through the same checks: shapes, ranges, fitted state, saving, odd inputs."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest

from mixllm.errors import DataError, NotFittedError
from mixllm.policy import BasePredictor, choose, predictor_from_state
from mixllm.types import Prediction
from tests.policy.conftest import FACTORIES, Split, make_set, split, take

NAMES = sorted(FACTORIES)


def _fit(name: str, data: Split) -> tuple[BasePredictor, Prediction]:
    train, qtrain, test, qtest = data
    predictor = FACTORIES[name](train, test).fit(train, qtrain)
    return predictor, predictor.predict(qtest)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_ranges_and_columns(name: str, two_clusters: Split) -> None:
    predictor, pred = _fit(name, two_clusters)
    test = two_clusters[2]
    assert predictor.llms_ == test.llms == pred.llms
    assert pred.quality.shape == pred.cost_usd.shape == (len(test), 2)
    assert np.isfinite(pred.quality).all() and np.isfinite(pred.cost_usd).all()
    assert ((pred.quality >= 0) & (pred.quality <= 1)).all()
    assert (pred.cost_usd >= 0).all()
    assert predictor.name.startswith(predictor.kind)


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_raises(name: str, two_clusters: Split) -> None:
    train, _, test, qtest = two_clusters
    predictor = FACTORIES[name](train, test)
    with pytest.raises(NotFittedError, match="not fitted"):
        predictor.predict(qtest)
    with pytest.raises(NotFittedError):
        predictor.get_state()


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_through_json_and_npz(name: str, two_clusters: Split) -> None:
    predictor, pred = _fit(name, two_clusters)
    params, arrays = predictor.get_state()
    params = json.loads(json.dumps(params))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    restored = predictor_from_state(predictor.name, params, loaded)
    again = restored.predict(two_clusters[3])
    assert type(restored) is type(predictor)
    assert restored.name == predictor.name and restored.llms_ == predictor.llms_
    np.testing.assert_allclose(again.quality, pred.quality, rtol=0, atol=1e-9)
    np.testing.assert_allclose(again.cost_usd, pred.cost_usd, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_refit_is_deterministic(name: str, two_clusters: Split) -> None:
    first = _fit(name, two_clusters)[1]
    second = _fit(name, two_clusters)[1]
    np.testing.assert_array_equal(first.quality, second.quality)


@pytest.mark.parametrize("name", NAMES)
def test_missing_outcomes_are_ignored(name: str) -> None:
    data = split(*make_set(200, n_llms=3, n_clusters=3, nan_frac=0.3, seed=1), 150)
    pred = _fit(name, data)[1]
    assert pred.quality.shape == (50, 3)
    assert np.isfinite(pred.quality).all() and np.isfinite(pred.cost_usd).all()


@pytest.mark.parametrize("name", NAMES)
def test_an_llm_without_any_outcome(name: str) -> None:
    ds, qb = make_set(120, n_llms=3, seed=2)
    quality = np.array(ds.quality)
    quality[:, 1] = np.nan
    ds = replace(ds, quality=quality)
    pred = _fit(name, split(ds, qb, 80))[1]
    assert np.isfinite(pred.quality).all()


@pytest.mark.parametrize("name", NAMES)
def test_one_llm(name: str) -> None:
    pred = _fit(name, split(*make_set(80, n_llms=1, seed=3), 60))[1]
    assert pred.quality.shape == (20, 1)
    assert (choose(pred, 1.0) == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_unseen_llm_names_and_many_llms(name: str) -> None:
    names = ["zeta/ünïcode model", "a", "Z-70b:free", "x" * 40, "m5"]
    pred = _fit(name, split(*make_set(150, llms=names, n_clusters=5, seed=4), 100))[1]
    assert pred.llms == tuple(names)
    assert pred.quality.shape == (50, 5)


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_and_wrong_width(name: str, two_clusters: Split) -> None:
    predictor, _ = _fit(name, two_clusters)
    qtest = two_clusters[3]
    empty = predictor.predict(take(qtest, np.arange(0)))
    assert empty.quality.shape == (0, 2)
    if name in ("knn", "logistic", "mlp", "mf"):
        wide = type(qtest)(
            qtest.ids, qtest.prompts, np.ones((len(qtest), 3), np.float32), qtest.prompt_tokens
        )
        with pytest.raises(DataError, match="dimension 3"):
            predictor.predict(wide)


@pytest.mark.parametrize("name", NAMES)
def test_misaligned_training_queries(name: str, two_clusters: Split) -> None:
    train, qtrain, test, _ = two_clusters
    with pytest.raises(DataError, match="row-aligned"):
        FACTORIES[name](train, test).fit(train, take(qtrain, np.arange(10)))


@pytest.mark.parametrize("name", ["knn", "logistic", "mlp", "mf"])
def test_learned_predictors_beat_random(name: str, two_clusters: Split) -> None:
    test = two_clusters[2]
    rows = np.arange(len(test))
    routed = {}
    for key in (name, "random"):
        pred = _fit(key, two_clusters)[1]
        routed[key] = float(np.nan_to_num(test.quality[rows, choose(pred, 0.0)]).mean())
    assert routed[name] > routed["random"] + 0.2, routed
    assert routed[name] > 0.75, routed


def test_mixllm_with_a_single_task_label_clusters_instead(two_clusters: Split) -> None:
    from mixllm.policy import MixLLMPredictor

    train, qtrain, _, qtest = two_clusters
    one_task = replace(train, tasks=np.full(len(train), "gsm8k", dtype=object))
    predictor = MixLLMPredictor(seed=0).fit(one_task, qtrain)
    assert predictor.projection_ is not None
    assert len(predictor.projection_.domains_) >= 2  # KMeans clusters, not the one label
    assert predictor.predict(qtest).quality.shape == (len(qtest), len(train.llms))
