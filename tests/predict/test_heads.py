"""Heads, the per-LLM head set, the learners behind them and the neighbour search."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError, PersistError
from mixllm.predict.heads import ConstantHead, KNNHead, LinearHead
from mixllm.predict.headset import HeadSet
from mixllm.predict.learners import fit_path, soft_rows
from mixllm.predict.neighbours import nearest, top_k
from tests.predict.conftest import embeddings


def test_head_set_batches_forms_and_matches_each_head() -> None:
    x = embeddings(50)
    y = (x[:, 0] > 0).astype(float)
    heads = [
        *fit_path("knn", x, y, target="prob", grid=[3, 7]),
        ConstantHead(0.25),
        *fit_path("logistic", x, y, target="prob", grid=[1.0]),
        *fit_path("rf", x, y, target="prob", grid=[2]),
        *fit_path("hgb", x, y, target="prob", grid=[5]),
    ]
    out = HeadSet(heads).predict(x[:9])
    expected = np.stack([h.predict(x[:9]) for h in heads], axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)


def test_state_stores_shared_arrays_once() -> None:
    x = embeddings(40)
    heads = fit_path("knn", x, x[:, 0] > 0, target="prob", grid=[3, 5])  # same embeddings
    params, arrays = HeadSet(heads).get_state()
    assert sorted(arrays) == ["h0.embeddings", "h0.targets"]
    shared = {"embeddings": "h0.embeddings", "targets": "h0.targets"}
    assert params[1] == {"form": "knn", "k": 5, "shared": shared}
    again = HeadSet.from_state(params, arrays)
    np.testing.assert_array_equal(again.predict(x), HeadSet(heads).predict(x))


def test_unknown_or_broken_heads_are_refused() -> None:
    params, arrays = HeadSet([LinearHead(np.ones(3), 0.5, logistic=True)]).get_state()
    with pytest.raises(PersistError, match="unknown form 'eval'"):
        HeadSet.from_state([{"form": "eval"}], arrays)
    with pytest.raises(PersistError, match="bad state"):
        HeadSet.from_state(params, {})
    with pytest.raises(PersistError, match="knn head"):
        KNNHead.from_state({"form": "knn", "k": 9}, {"embeddings": np.ones((2, 3)),
                                                     "targets": np.ones(2)})  # fmt: skip
    with pytest.raises(PersistError, match="intercept"):
        LinearHead.from_state({"intercept": "0", "logistic": True}, {"coef": np.ones(3)})


def test_soft_labels_and_targets() -> None:
    rows, labels, weights = soft_rows(np.eye(2), np.array([0.25, 1.0]))
    assert labels.tolist() == [1.0, 1.0, 0.0] and weights.tolist() == [0.25, 1.0, 0.75]
    assert rows.tolist() == [[1, 0], [0, 1], [1, 0]]
    # Graded quality 0.3 everywhere (a constant): the constant itself.
    (head,) = fit_path("logistic", np.eye(3), np.full(3, 0.3), target="prob", grid=[1.0])
    assert isinstance(head, ConstantHead) and head.value == pytest.approx(0.3)
    # Soft labels with no signal: the logistic model predicts their mean.
    x = embeddings(200)
    y = np.where(np.arange(200) % 2 == 0, 0.2, 0.6)
    (head,) = fit_path("logistic", x, y, target="prob", grid=[1e-3])
    np.testing.assert_allclose(head.predict(x), 0.4, atol=0.02)
    with pytest.raises(ConfigError, match="'logistic' for real"):
        fit_path("logistic", x, y, target="real", grid=[1.0])


def test_ridge_path_matches_the_normal_equations() -> None:
    x = embeddings(60)
    y = x @ np.arange(6.0) + 2.0
    heads = fit_path("ridge", x, y, target="real", grid=[1e-9, 10.0])
    np.testing.assert_allclose(heads[0].predict(x), y, atol=1e-6)
    xc, yc = x - x.mean(axis=0), y - y.mean()
    coef = np.linalg.solve(xc.T @ xc + 10.0 * np.eye(6), xc.T @ yc)
    assert isinstance(heads[1], LinearHead)
    np.testing.assert_allclose(heads[1].coef, coef, atol=1e-10)


def test_neighbours_are_deterministic_with_ties() -> None:
    assert top_k(np.array([[0.5, 0.9, 0.5, 0.9]]), 3).tolist() == [[1, 3, 0]]
    train = np.vstack([np.eye(3), np.eye(3)])  # every row has an exact twin
    q = np.eye(3)
    np.testing.assert_array_equal(nearest(q, train, 2), [[0, 3], [1, 4], [2, 5]])
    np.testing.assert_array_equal(nearest(q[1:2], train, 2), [[1, 4]])


def test_knn_skips_rows_without_a_target_and_shares_its_rows() -> None:
    x = embeddings(80)
    y = np.where(np.arange(80) % 3 == 0, np.nan, x[:, 0])
    (masked,) = fit_path("knn", x, y, target="real", grid=[5])
    seen = np.isfinite(y)
    (plain,) = fit_path("knn", x[seen], y[seen], target="real", grid=[5])
    queries = embeddings(30, seed=9)
    np.testing.assert_allclose(masked.predict(queries), plain.predict(queries), rtol=1e-9)
    (other,) = fit_path("knn", x, np.where(seen, 1.0 - y, np.nan), target="real", grid=[3])
    heads = HeadSet([masked, other])
    assert isinstance(heads.heads[1], KNNHead) and isinstance(heads.heads[0], KNNHead)
    assert heads.heads[1].embeddings is heads.heads[0].embeddings
    _, arrays = heads.get_state()
    assert sorted(arrays) == ["h0.embeddings", "h0.targets", "h1.targets"]


@pytest.mark.parametrize("logistic", [(True, True), (False, False), (True, False)])
def test_linear_heads_of_one_form_predict_in_one_product(logistic: tuple[bool, bool]) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 5))
    heads = [LinearHead(rng.normal(size=4), float(rng.normal()), f) for f in logistic]
    for z in (x, x[:, :4]):  # features beyond the coefficients are ignored
        out = HeadSet(heads).predict(z)
        expected = np.stack([h.predict(x) for h in heads], axis=1)
        np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)
    hs = HeadSet(heads[:2])
    before = hs.predict(x)
    hs.append(ConstantHead(0.3))  # a second form: the compiled functions are rebuilt
    np.testing.assert_array_equal(hs.predict(x)[:, :2], before)
    np.testing.assert_array_equal(hs.predict(x)[:, 2], 0.3)
    hs.pop(2)
    np.testing.assert_array_equal(hs.predict(x), before)
