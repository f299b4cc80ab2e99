"""OnlineRidge: rank-one online updates give exactly the batch ridge regression."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import ConfigError, DataError, PersistError
from mixllm.predict.online import OnlineRidge


def _data(n: int = 120, d: int = 5, n_llms: int = 3, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    observed = rng.random((n, n_llms)) < 0.8
    y = rng.normal(size=(n, n_llms, 2))
    return x, observed, y


def _ridge(x: np.ndarray, y: np.ndarray, ridge: float, w: np.ndarray | None = None) -> np.ndarray:
    w = np.ones(len(x)) if w is None else w
    a = ridge * np.eye(x.shape[1]) + (x * w[:, None]).T @ x
    return np.linalg.solve(a, (x * w[:, None]).T @ y)  # (d, T)


def test_online_updates_equal_the_batch_fit() -> None:
    x, observed, y = _data()
    batch = OnlineRidge(ridge=2.0, n_targets=2).fit(x, observed, y)
    online = OnlineRidge(ridge=2.0, n_targets=2).fit(x[:40], observed[:40], y[:40])
    for i in range(40, len(x)):
        for j in np.flatnonzero(observed[i]):
            online.update(int(j), x[i], y[i, j])
    probe = np.random.default_rng(1).normal(size=(7, 5))
    np.testing.assert_allclose(online.mean(probe), batch.mean(probe), atol=1e-9)
    np.testing.assert_allclose(online.bonus(probe), batch.bonus(probe), atol=1e-9)
    assert online.counts_.tolist() == observed.sum(axis=0).tolist()
    for j in range(3):  # and both are the ridge regression of each LLM's own rows
        theta = _ridge(x[observed[:, j]], y[observed[:, j], j], 2.0)
        np.testing.assert_allclose(batch.mean(probe)[:, j, :], probe @ theta, atol=1e-9)


def test_bonus_is_the_linucb_width() -> None:
    x, observed, y = _data(n=50, d=4, n_llms=1)
    m = OnlineRidge(ridge=1.0, n_targets=2).fit(x, observed, y)
    a = np.eye(4) + x[observed[:, 0]].T @ x[observed[:, 0]]
    e = np.array([0.3, -1.0, 0.5, 2.0])
    assert m.bonus(e[None])[0, 0] == pytest.approx(np.sqrt(e @ np.linalg.solve(a, e)))


def test_weight_counts_as_repeated_observations() -> None:
    x, observed, y = _data(n=30, d=3, n_llms=1)
    twice = OnlineRidge(n_targets=2).fit(x, observed, y)
    weighted = OnlineRidge(n_targets=2).fit(x, observed, y)
    e, t = np.array([1.0, 2.0, -1.0]), np.array([0.5, -0.2])
    twice.update(0, e, t)
    twice.update(0, e, t)
    weighted.update(0, e, t, weight=2.0)
    np.testing.assert_allclose(weighted.mean(x), twice.mean(x), atol=1e-10)
    np.testing.assert_allclose(weighted.bonus(x), twice.bonus(x), atol=1e-10)


def test_discount_weighs_old_observations_less() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    y = rng.normal(size=(60, 1, 1))
    g = 0.95
    m = OnlineRidge(ridge=1.0, n_targets=1, discount=g).fit(
        np.zeros((0, 3)), np.zeros((0, 1), bool), np.zeros((0, 1, 1))
    )
    for i in range(60):
        m.update(0, x[i], y[i, 0])
    # A = γ^n·I + Σ γ^(n-1-i) x xᵀ, b = Σ γ^(n-1-i) x y
    w = g ** np.arange(59, -1, -1)
    a = g**60 * np.eye(3) + (x * w[:, None]).T @ x
    theta = np.linalg.solve(a, (x * w[:, None]).T @ y[:, 0, :])
    np.testing.assert_allclose(m.mean(x)[:, 0, :], x @ theta, atol=1e-8)


def test_drift_is_relearned_faster_with_a_discount() -> None:
    x = np.ones((400, 1))
    y = np.where(np.arange(400) < 200, 1.0, 0.0)[:, None, None]  # the LLM gets worse half-way
    models = {g: OnlineRidge(n_targets=1, discount=g) for g in (1.0, 0.98)}
    for m in models.values():
        m.fit(np.zeros((0, 1)), np.zeros((0, 1), bool), np.zeros((0, 1, 1)))
        for i in range(400):
            m.update(0, x[i], y[i, 0])
    assert models[1.0].mean(x[:1])[0, 0, 0] == pytest.approx(0.5, abs=0.01)
    assert models[0.98].mean(x[:1])[0, 0, 0] < 0.05


def test_add_and_remove_llms_leave_the_others_alone() -> None:
    x, observed, y = _data()
    m = OnlineRidge(n_targets=2).fit(x, observed, y)
    before = m.mean(x[:5])
    j = m.add_llm()
    assert j == 3 and m.n_llms_ == 4
    np.testing.assert_allclose(m.mean(x[:5])[:, :3], before)
    assert np.all(m.mean(x[:5])[:, 3] == 0)  # nothing observed yet: the prior mean
    np.testing.assert_allclose(m.bonus(x[:1])[0, 3], np.linalg.norm(x[0]))  # A = I
    m.remove_llm(0)
    np.testing.assert_allclose(m.mean(x[:5])[:, :2], before[:, 1:])
    with pytest.raises(DataError, match="LLM index 5"):
        m.update(5, x[0], y[0, 0])


def test_state_round_trip_and_malformed_state() -> None:
    x, observed, y = _data()
    m = OnlineRidge(ridge=0.5, n_targets=2, discount=0.999).fit(x, observed, y)
    m.update(1, x[0], np.array([1.0, 2.0]))
    params, arrays = m.get_state()
    same = OnlineRidge.from_state(params, arrays)
    np.testing.assert_array_equal(same.mean(x), m.mean(x))
    assert same.discount == 0.999
    with pytest.raises(PersistError, match="expected"):
        OnlineRidge.from_state(params, {**arrays, "b": arrays["b"][:, :1]})
    with pytest.raises(PersistError, match="malformed"):
        OnlineRidge.from_state({"ridge": 1.0}, arrays)


def test_bad_inputs_name_the_value() -> None:
    with pytest.raises(ConfigError, match=r"discount=1\.5"):
        OnlineRidge(discount=1.5)
    x, observed, y = _data()
    m = OnlineRidge(n_targets=2).fit(x, observed, y)
    with pytest.raises(DataError, match="dimension 3; fitted on 5"):
        m.mean(np.zeros((1, 3)))
    with pytest.raises(DataError, match="nan"):
        m.update(0, x[0], np.array([np.nan, 1.0]))


def test_bonus_follows_a_inv_as_updates_split_shared_matrices() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(40, 4))
    m = OnlineRidge(n_targets=1).fit(x, np.ones((40, 4), dtype=bool), np.zeros((40, 4, 1)))
    probe = rng.normal(size=(6, 4))

    def direct() -> np.ndarray:
        return np.sqrt(np.einsum("nd,lde,ne->nl", probe, m.a_inv_, probe))

    np.testing.assert_allclose(m.bonus(probe), direct(), rtol=1e-9)
    for j in (2, 0, 3, 1, 2, 2, 0):  # every LLM leaves the shared group, out of order
        m.update(j, rng.normal(size=4), np.zeros(1))
        np.testing.assert_allclose(m.bonus(probe), direct(), rtol=1e-9)
    m.add_llm()
    m.update(4, rng.normal(size=4), np.zeros(1))
    m.remove_llm(1)
    np.testing.assert_allclose(m.bonus(probe), direct(), rtol=1e-9)
