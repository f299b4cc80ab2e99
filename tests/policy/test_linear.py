"""Per-LLM logistic regression: soft labels, constant columns, C by cross-validation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.policy import LogisticPredictor, choose
from mixllm.policy.linear import fit_logistic_path, soft_rows
from tests.policy.conftest import Split, make_set, split


def test_soft_rows_weight_both_labels() -> None:
    rows, labels, weights = soft_rows(np.arange(3.0)[:, None], np.array([1.0, np.nan, 0.3]))
    assert rows[:, 0].tolist() == [0.0, 2.0, 2.0]
    assert labels.tolist() == [1.0, 1.0, 0.0]
    np.testing.assert_allclose(weights, [1.0, 0.3, 0.7])


def test_constant_columns_predict_the_constant() -> None:
    ds, qb = make_set(60, n_llms=3)
    quality = np.array(ds.quality)
    quality[:, 0], quality[:, 1] = 1.0, 0.0
    ds = replace(ds, quality=quality)
    pred = LogisticPredictor().fit(ds, qb).predict(qb)
    assert (pred.quality[:, 0] == 1.0).all() and (pred.quality[:, 1] == 0.0).all()
    assert 0 < pred.quality[:, 2].min() < pred.quality[:, 2].max() < 1


def test_graded_quality_is_learned_without_thresholding() -> None:
    ds, qb = make_set(200, seed=5)
    graded = np.where(ds.quality > 0.5, 0.8, 0.3)  # e.g. MT-Bench score / 10
    ds = replace(ds, quality=graded)
    train, qtrain, test, qtest = split(ds, qb, 150)
    pred = LogisticPredictor(C=1.0).fit(train, qtrain).predict(qtest)
    assert 0.2 < pred.quality.mean() < 0.7
    agree = (pred.quality.argmax(1) == test.quality.argmax(1)).mean()
    assert agree > 0.75


def test_c_is_chosen_from_the_grid_per_llm(two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    predictor = LogisticPredictor(C_grid=(1e-4, 1.0), cv=3).fit(train, qtrain)
    assert set(predictor.C_.tolist()) <= {1e-4, 1.0}
    assert (predictor.C_ == 1.0).all()  # the clusters separate cleanly: weak regularisation
    fixed = LogisticPredictor(C=0.5).fit(train, qtrain)
    assert (fixed.C_ == 0.5).all()


def test_warm_started_path_matches_single_fits(two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    x = qtrain.embeddings.astype(float)
    y = train.quality[:, 0]
    path = fit_logistic_path(x, y, [0.1, 1.0], 1000)
    single = fit_logistic_path(x, y, [1.0], 1000)
    np.testing.assert_allclose(path[1][0], single[0][0], atol=1e-2)


def test_learns_which_llm_is_good_where(two_clusters: Split) -> None:
    train, qtrain, test, qtest = two_clusters
    pred = LogisticPredictor().fit(train, qtrain).predict(qtest)
    routed = test.quality[np.arange(len(test)), choose(pred, 0.0)].mean()
    assert routed > 0.8


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"C": 0.0}, "C=0.0"), ({"C_grid": ()}, "C_grid"), ({"cv": 1}, "cv=1")]
)
def test_bad_parameters_are_reported_at_fit(kwargs: dict[str, object], message: str) -> None:
    ds, qb = make_set(20)
    with pytest.raises(ConfigError, match=message):
        LogisticPredictor(**kwargs).fit(ds, qb)  # type: ignore[arg-type]
