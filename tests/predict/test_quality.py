"""Quality prediction: every kind through one contract, CV choice, calibration, pool changes."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError, DataError, NotFittedError, PersistError
from mixllm.predict.quality import QualityModel, brier_score, expected_calibration_error
from tests.predict.conftest import SMALL, embeddings, linear_truth, make_quality

KINDS = ["rf", "logistic", "hgb", "knn"]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, q = make_quality(400)
    return x[:300], q[:300], x[300:], q[300:]


@pytest.fixture(scope="module", params=KINDS)
def fitted(request: pytest.FixtureRequest, data: tuple[np.ndarray, ...]) -> QualityModel:
    x, q = data[0], data[1]
    return QualityModel(request.param, **SMALL).fit(x, q)  # type: ignore[arg-type]


def test_contract_shapes_ranges_and_degenerate_columns(
    fitted: QualityModel, data: tuple[np.ndarray, ...]
) -> None:
    _, q_tr, x_te, _ = data
    pred = fitted.predict(x_te)
    assert pred.shape == (100, 6) and pred.dtype == np.float64
    assert ((pred >= 0) & (pred <= 1)).all()
    assert fitted.kinds_ == [
        fitted.kind,
        fitted.kind,
        fitted.kind,
        "constant",
        "constant",
        fitted.kind,
    ]
    # One class: its mean, shrunk towards the prior by one pseudo-observation; never observed:
    # the prior (the mean of all observed quality).
    prior = np.nanmean(q_tr)
    np.testing.assert_allclose(pred[:, 3], (300 + prior) / 301)
    np.testing.assert_allclose(pred[:, 4], prior)
    assert fitted.prior_ == pytest.approx(prior)


def test_contract_learns_the_signal(fitted: QualityModel, data: tuple[np.ndarray, ...]) -> None:
    _, q_tr, x_te, q_te = data
    cols = [0, 2, 5]
    brier = brier_score(fitted.predict(x_te)[:, cols], q_te[:, cols])
    means = np.nanmean(q_tr[:, cols], axis=0)
    prior = brier_score(np.broadcast_to(means, (len(q_te), 3)), q_te[:, cols])
    assert brier[0] < 0.8 * prior[0]  # 0/1 labels
    assert brier[1] < 0.9 * prior[1]  # with missing labels
    assert brier[2] < 0.5 * prior[2]  # soft labels


def test_contract_state_round_trip(fitted: QualityModel, data: tuple[np.ndarray, ...]) -> None:
    x_te = data[2]
    params, arrays = fitted.get_state()
    again = QualityModel.from_state(params, arrays)
    np.testing.assert_array_equal(again.predict(x_te), fitted.predict(x_te))
    assert again.kinds_ == fitted.kinds_ and again.kind_ == fitted.kind_
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    import json

    json.dumps(params, allow_nan=False)  # plain JSON: no NaN, no objects


def test_contract_batch_equals_one_by_one(
    fitted: QualityModel, data: tuple[np.ndarray, ...]
) -> None:
    x_te = data[2][:20]
    single = np.vstack([fitted.predict(row[None]) for row in x_te])
    np.testing.assert_allclose(fitted.predict(x_te), single, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic_by_seed(kind: str, data: tuple[np.ndarray, ...]) -> None:
    x, q, x_te, _ = data
    a = QualityModel(kind, seed=3, **SMALL).fit(x, q[:, :2]).predict(x_te)  # type: ignore[arg-type]
    b = QualityModel(kind, seed=3, **SMALL).fit(x, q[:, :2]).predict(x_te)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a, b)


def test_auto_prefers_logistic_on_a_linear_truth_and_trees_on_xor() -> None:
    x, q = make_quality(300, seed=1)
    linear = QualityModel(**SMALL).fit(x, q[:, [5]])  # type: ignore[arg-type]
    assert linear.kind_ == "logistic"
    assert set(linear.cv_scores_) == set(KINDS)
    xor = QualityModel(**SMALL).fit(x, q[:, [1]])  # type: ignore[arg-type]
    assert xor.kind_ != "logistic"
    scores = {k: float(s[0]) for k, s in xor.cv_scores_.items()}
    assert scores["logistic"] > min(scores.values()) + 0.02


def test_select_per_llm_uses_each_columns_best_kind() -> None:
    x, q = make_quality(300, seed=1)
    model = QualityModel(select="llm", **SMALL).fit(x, q[:, [5, 1, 4]])  # type: ignore[arg-type]
    assert model.kinds_[0] == "logistic" and model.kinds_[1] != "logistic"
    assert model.kinds_[2] == "constant"
    assert np.isnan(model.cv_scores_["rf"][2])


def test_logistic_is_calibrated_on_held_out_data() -> None:
    x = embeddings(3000, seed=7)
    q = (np.random.default_rng(8).random(3000) < linear_truth(x)).astype(float)[:, None]
    model = QualityModel("logistic").fit(x[:2000], q[:2000])
    assert expected_calibration_error(model.predict(x[2000:]), q[2000:]) < 0.04


def test_add_llm_fits_only_the_new_column_and_remove_llm(data: tuple[np.ndarray, ...]) -> None:
    x, q, x_te, _ = data
    model = QualityModel("logistic", **SMALL).fit(x, q[:, :2])  # type: ignore[arg-type]
    before = model.predict(x_te)
    heads = list(model.heads_.heads)
    assert model.add_llm(x[:150], q[:150, 5]) == 2
    assert model.heads_.heads[:2] == heads  # the same objects: not refitted
    after = model.predict(x_te)
    np.testing.assert_allclose(after[:, :2], before, rtol=1e-9)  # BLAS may round differently
    assert model.cv_scores_["logistic"].shape == (3,) and model.kinds_[2] == "logistic"
    model.remove_llm(0)
    np.testing.assert_allclose(model.predict(x_te), after[:, 1:], rtol=1e-9)
    assert model.n_llms_ == 2
    with pytest.raises(DataError, match="column 7"):
        model.remove_llm(7)


def test_checks(data: tuple[np.ndarray, ...]) -> None:
    x, q = data[0], data[1]
    with pytest.raises(NotFittedError):
        QualityModel().predict(x)
    with pytest.raises(ConfigError, match="kind='forest'"):
        QualityModel("forest").fit(x, q)
    with pytest.raises(ConfigError, match="select"):
        QualityModel(select="query").fit(x, q)
    with pytest.raises(DataError, match="outside"):
        QualityModel().fit(x, q * 2)
    with pytest.raises(DataError, match="NaN or infinite"):
        QualityModel().fit(np.full_like(x, np.nan), q)
    model = QualityModel("knn").fit(x, q)
    with pytest.raises(DataError, match="dimension 3"):
        model.predict(x[:, :3])


def test_tampered_state_is_refused(data: tuple[np.ndarray, ...]) -> None:
    x, q = data[0], data[1][:, :2]
    params, arrays = QualityModel("rf", **SMALL).fit(x, q).get_state()  # type: ignore[arg-type]
    bad_form = {**params, "heads": [{**params["heads"][0], "form": "pickle"}]}  # type: ignore[dict-item]
    with pytest.raises(PersistError, match="unknown form 'pickle'"):
        QualityModel.from_state(bad_form, arrays)
    children = arrays["h0.children"].copy()
    children[1] = [0, 1]  # a child pointing back to its root: a cycle
    with pytest.raises(PersistError, match="before its parent"):
        QualityModel.from_state(params, {**arrays, "h0.children": children})
    with pytest.raises(PersistError, match="lacks 'value'"):
        QualityModel.from_state(params, {k: v for k, v in arrays.items() if k != "h1.value"})
    with pytest.raises(PersistError):
        QualityModel.from_state({k: v for k, v in params.items() if k != "kind_"}, arrays)


def test_knn_llms_share_one_copy_of_the_training_rows(data: tuple[np.ndarray, ...]) -> None:
    x, q = data[0], data[1]
    model = QualityModel("knn", **SMALL).fit(x, q)  # type: ignore[arg-type]
    _, arrays = model.get_state()
    assert [k for k in arrays if k.endswith("embeddings")] == ["h0.embeddings"]
