"""Tree ensembles as arrays: same predictions as scikit-learn, merged, saved, checked."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)

from mixllm.errors import DataError, PersistError
from mixllm.predict.forest import TreeEnsemble
from tests.predict.conftest import embeddings


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = embeddings(300, d=5)
    y = (x[:, 0] + 0.3 * np.sin(5 * x[:, 1]) > 0).astype(float)
    return x[:200], y[:200], x[200:]


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def test_random_forest_matches_scikit_learn(xy: tuple[np.ndarray, ...]) -> None:
    x, y, test = xy
    model = RandomForestRegressor(15, min_samples_leaf=2, random_state=0).fit(x, y)
    trees = TreeEnsemble.from_random_forest(model)
    np.testing.assert_allclose(trees.predict(test)[:, 0], model.predict(test), atol=1e-12)
    assert trees.n_trees == 15 and trees.depth >= 3


def test_boosting_matches_scikit_learn_and_keeps_the_first_trees(
    xy: tuple[np.ndarray, ...],
) -> None:
    x, y, test = xy
    clf = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    logits = _logit(clf.predict_proba(test)[:, 1])
    np.testing.assert_allclose(TreeEnsemble.from_hist_gradient_boosting(clf).predict(test)[:, 0],
                               logits, atol=1e-9)  # fmt: skip
    staged = list(clf.staged_predict_proba(test))[9][:, 1]
    first10 = TreeEnsemble.from_hist_gradient_boosting(clf, 10)
    np.testing.assert_allclose(first10.predict(test)[:, 0], _logit(staged), atol=1e-9)
    reg = HistGradientBoostingRegressor(max_iter=20).fit(x, 3 * y + 1)
    np.testing.assert_allclose(TreeEnsemble.from_hist_gradient_boosting(reg).predict(test)[:, 0],
                               reg.predict(test), atol=1e-9)  # fmt: skip


def test_concat_predicts_each_part_in_its_column(xy: tuple[np.ndarray, ...]) -> None:
    x, y, test = xy
    a = TreeEnsemble.from_random_forest(RandomForestRegressor(5, random_state=0).fit(x, y))
    b = TreeEnsemble.from_random_forest(RandomForestRegressor(7, random_state=1).fit(x, 1 - y))
    both = TreeEnsemble.concat([a, b, a])
    out = both.predict(test)
    assert out.shape == (100, 3) and both.n_trees == 17
    np.testing.assert_allclose(out, np.hstack([a.predict(test), b.predict(test), a.predict(test)]))
    np.testing.assert_allclose(both.predict(test[:1]), out[:1])


def test_state_round_trip_and_refusals(xy: tuple[np.ndarray, ...]) -> None:
    x, y, test = xy
    trees = TreeEnsemble.from_random_forest(RandomForestRegressor(4, random_state=0).fit(x, y))
    params, arrays = trees.get_state()
    again = TreeEnsemble.from_state(params, arrays)
    np.testing.assert_array_equal(again.predict(test), trees.predict(test))
    bad = dict(arrays)
    bad["children"] = arrays["children"].copy()
    bad["children"][1, 0] = len(arrays["feature"]) + 5
    with pytest.raises(PersistError, match="out of range"):
        TreeEnsemble.from_state(params, bad)
    with pytest.raises(PersistError, match="dtype"):
        TreeEnsemble.from_state(params, {**arrays, "feature": arrays["feature"].astype(object)})
    with pytest.raises(PersistError, match="shapes"):
        TreeEnsemble.from_state(params, {**arrays, "value": arrays["value"][:-1]})
    with pytest.raises(PersistError, match="float32_inputs"):
        TreeEnsemble.from_state({"float32_inputs": "yes"}, arrays)
    with pytest.raises(DataError, match="features"):
        trees.predict(test[:, :2])
