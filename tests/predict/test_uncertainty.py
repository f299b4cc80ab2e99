"""The LinUCB uncertainty bonus: exact inverses, rank-one updates, pool changes, state."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError, DataError, NotFittedError, PersistError
from mixllm.predict.neighbours import unit_rows
from mixllm.predict.uncertainty import UncertaintyModel


def _rows(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).normal(size=(n, d)))


def _direct_bonus(rows: np.ndarray, x: np.ndarray, ridge: float) -> np.ndarray:
    a = ridge * np.eye(rows.shape[1]) + rows.T @ rows
    return np.sqrt(np.einsum("nd,de,ne->n", x, np.linalg.inv(a), x))


def test_fit_inverts_each_llms_matrix_from_its_observed_rows() -> None:
    x = _rows(60)
    observed = np.random.default_rng(1).random((60, 3)) < [1.0, 0.5, 0.0]
    model = UncertaintyModel(ridge=2.0).fit(x, observed)
    for j in range(3):
        rows = x[observed[:, j]]
        direct = np.linalg.inv(2.0 * np.eye(16) + rows.T @ rows)
        np.testing.assert_allclose(model.a_inv_[j], direct, atol=1e-10)
    assert model.counts_.tolist() == observed.sum(axis=0).tolist()
    # No observations: A = ridge · I, so the bonus of a unit vector is 1 / sqrt(ridge).
    np.testing.assert_allclose(model.bonus(x[:5])[:, 2], 1 / np.sqrt(2.0))


def test_sherman_morrison_updates_match_the_direct_inverse() -> None:
    x = _rows(300, seed=2)
    model = UncertaintyModel().fit(x[:100], np.ones((100, 2), dtype=bool))
    for row in x[100:]:
        model.update(1, row)
    model.update(0, x[100:])  # a block of rows at once
    direct = np.linalg.inv(np.eye(16) + x.T @ x)
    for j in range(2):
        np.testing.assert_allclose(model.a_inv_[j], direct, atol=1e-8, rtol=0)
    assert model.counts_.tolist() == [300, 300]


def test_bonus_shrinks_in_seen_directions_only() -> None:
    e = np.eye(4)
    model = UncertaintyModel().fit(e[[0]], np.ones((1, 1), dtype=bool))
    before = model.bonus(e)[:, 0]
    for _ in range(10):
        model.update(0, e[1])
    after = model.bonus(e)[:, 0]
    assert after[1] < before[1] / 3  # 1 / sqrt(11)
    np.testing.assert_allclose(after[[0, 2, 3]], before[[0, 2, 3]])  # orthogonal: unchanged
    np.testing.assert_allclose(after, [1 / np.sqrt(2), 1 / np.sqrt(11), 1.0, 1.0])


def test_batched_bonus_equals_one_by_one_and_the_direct_formula() -> None:
    x = _rows(80, seed=3)
    observed = np.random.default_rng(4).random((80, 3)) < 0.7
    model = UncertaintyModel(ridge=0.5).fit(x, observed)
    queries = _rows(25, seed=5)
    batch = model.bonus(queries)
    single = np.vstack([model.bonus(q) for q in queries])
    np.testing.assert_allclose(batch, single, rtol=1e-9, atol=0)
    np.testing.assert_allclose(batch[:, 1], _direct_bonus(x[observed[:, 1]], queries, 0.5))
    assert batch.shape == (25, 3)


def test_add_and_remove_llms() -> None:
    x = _rows(40)
    model = UncertaintyModel(ridge=4.0).fit(x, np.ones((40, 2), dtype=bool))
    kept = model.bonus(x[:3])
    assert model.add_llm() == 2
    np.testing.assert_allclose(model.bonus(x[:3])[:, 2], 0.5)  # 1 / sqrt(4)
    model.update(2, x[0])
    model.remove_llm(0)
    assert model.n_llms_ == 2
    np.testing.assert_allclose(model.bonus(x[:3])[:, 0], kept[:, 1])
    assert model.counts_.tolist() == [40, 1]
    with pytest.raises(DataError, match="LLM index 5"):
        model.update(5, x[0])


def test_state_round_trip_and_malformed_state() -> None:
    x = _rows(30)
    model = UncertaintyModel(ridge=3.0).fit(x, np.ones((30, 2), dtype=bool))
    model.update(0, x[:4])
    params, arrays = model.get_state()
    again = UncertaintyModel.from_state(params, arrays)
    np.testing.assert_array_equal(again.bonus(x), model.bonus(x))
    assert again.ridge == 3.0 and again.counts_.tolist() == model.counts_.tolist()
    with pytest.raises(PersistError, match="a_inv"):
        UncertaintyModel.from_state(params, {**arrays, "a_inv": arrays["a_inv"][:, :3]})
    with pytest.raises(PersistError, match="malformed"):
        UncertaintyModel.from_state({}, arrays)


def test_checks() -> None:
    with pytest.raises(NotFittedError):
        UncertaintyModel().bonus(np.ones((1, 3)))
    with pytest.raises(ConfigError, match="ridge"):
        UncertaintyModel(ridge=0.0).fit(np.ones((2, 3)), np.ones((2, 1), dtype=bool))
    with pytest.raises(DataError, match="booleans"):
        UncertaintyModel().fit(np.ones((2, 3)), np.ones((2, 1)))
    model = UncertaintyModel().fit(np.ones((2, 3)), np.ones((2, 1), dtype=bool))
    with pytest.raises(DataError, match="dimension 4"):
        model.bonus(np.ones((1, 4)))


def _bonus_per_llm(model: UncertaintyModel, x: np.ndarray) -> np.ndarray:
    """sqrt(eᵀ A_l⁻¹ e) one LLM at a time, from ``a_inv_`` as it is now."""
    return np.sqrt(np.einsum("nd,lde,ne->nl", x, model.a_inv_, x))


def test_llms_with_the_same_rows_share_one_matrix_and_changes_are_seen() -> None:
    x = _rows(80, seed=5)
    observed = np.ones((80, 4), dtype=bool)
    observed[::3, 2] = False  # LLM 2 saw fewer rows; 0, 1 and 3 share one matrix
    model = UncertaintyModel().fit(x, observed)
    q = _rows(7, seed=6)
    np.testing.assert_allclose(model.bonus(q), _bonus_per_llm(model, q), rtol=1e-9)
    stacked, column = model._distinct  # type: ignore[misc]
    assert column.tolist() == [0, 0, 1, 0] and len(stacked) == 2 * 16
    # Every change is seen by the next bonus: update, add_llm, remove_llm.
    model.update(1, x[:5] * -1.0)
    np.testing.assert_allclose(model.bonus(q), _bonus_per_llm(model, q), rtol=1e-9)
    assert not np.allclose(model.bonus(q)[:, 0], model.bonus(q)[:, 1])
    model.add_llm()
    np.testing.assert_allclose(model.bonus(q), _bonus_per_llm(model, q), rtol=1e-9)
    model.remove_llm(0)
    np.testing.assert_allclose(model.bonus(q), _bonus_per_llm(model, q), rtol=1e-9)
    assert model.bonus(q).shape == (7, 4)
    model.fit(x[:10], observed[:10, :2])
    np.testing.assert_allclose(model.bonus(q), _bonus_per_llm(model, q), rtol=1e-9)
