"""kNN: neighbour means, missing outcomes, and k chosen by cross-validation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.policy import KNNPredictor
from tests.policy.conftest import make_set, queries_of, split, take


def _line() -> tuple[Dataset, np.ndarray]:
    """Five queries on a circle arc; neighbours of angle 0 are 0, 1, 2, ... in order."""
    angles = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    ds, _ = make_set(5, dim=2)
    quality = np.array([[1, 0], [0, np.nan], [1, 1], [0, 1], [0, 0]], dtype=float)
    cost = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]], dtype=float)
    return replace(ds, quality=quality, cost_usd=cost), x


def test_prediction_is_the_mean_of_the_k_nearest_ignoring_nan() -> None:
    ds, x = _line()
    qb = queries_of(ds, x)
    pred = KNNPredictor(k=3).fit(ds, qb).predict(queries_of(ds.subset([0]), x[:1]))
    np.testing.assert_allclose(pred.quality, [[2 / 3, 0.5]])
    np.testing.assert_allclose(pred.cost_usd, [[3.0, 4.0]])


def test_k_larger_than_the_training_set_is_clipped() -> None:
    ds, x = _line()
    predictor = KNNPredictor(k=50).fit(ds, queries_of(ds, x))
    assert predictor.k_ == 5


def test_cv_picks_a_small_k_on_sharply_clustered_data() -> None:
    # 30 tight clusters of ~10 queries: neighbours beyond ~8 come from other clusters.
    train, qtrain, _, _ = split(*make_set(300, n_llms=3, n_clusters=30, noise=0.05), 300)
    predictor = KNNPredictor(seed=1).fit(train, qtrain)
    assert predictor.k_ in (5, 10), predictor.cv_mse_
    assert predictor.cv_mse_[predictor.k_] < predictor.cv_mse_[100]


def test_cv_picks_a_large_k_when_clusters_are_big() -> None:
    train, qtrain, _, _ = split(*make_set(600, n_clusters=2, noise=0.05), 600)
    predictor = KNNPredictor(seed=1).fit(train, qtrain)
    assert predictor.k_ >= 50, predictor.cv_mse_


def test_cv_on_tiny_sets() -> None:
    for n in (1, 2, 3):
        ds, qb = make_set(n)
        assert 1 <= KNNPredictor().fit(ds, qb).k_ <= max(n - 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"k": 0}, "k=0"), ({"k_grid": ()}, "k_grid"), ({"cv": 1}, "cv=1")],
)
def test_bad_parameters_are_reported_at_fit(kwargs: dict[str, object], message: str) -> None:
    ds, qb = make_set(20)
    with pytest.raises(ConfigError, match=message):
        KNNPredictor(**kwargs).fit(ds, qb)  # type: ignore[arg-type]


def test_ties_break_by_training_index_whatever_the_batch() -> None:
    from mixllm.predict.neighbours import top_k

    sims = np.array([[0.5, 0.9, 0.5, 0.9, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    assert top_k(sims, 3).tolist() == [[1, 3, 0], [0, 1, 2]]
    assert top_k(sims + 1e-13 * np.arange(5), 3).tolist() == [[1, 3, 0], [0, 1, 2]]


def test_a_query_alone_gets_the_same_prediction_as_in_a_batch() -> None:
    rng = np.random.default_rng(0)
    ds, _ = make_set(120)
    x = rng.integers(0, 2, size=(120, 8)).astype(float)  # many exact duplicates: ties
    qb = queries_of(ds, x + 1e-3 * (np.arange(120) % 7 == 0)[:, None])
    predictor = KNNPredictor(k=10).fit(ds, qb)
    batch = predictor.predict(qb).quality
    for i in range(0, 120, 7):
        alone = predictor.predict(take(qb, np.array([i]))).quality
        # The same neighbours: the same means, up to float64 rounding.
        np.testing.assert_allclose(alone[0], batch[i], rtol=1e-9, atol=1e-12)
