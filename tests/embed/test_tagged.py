"""DomainProjection: the tag-enhanced embedding head (MixLLM §3.1)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from numpy.typing import NDArray

from mixllm.embed import DomainProjection
from mixllm.embed._domains import AUTO_CLUSTERS, domain_loss
from mixllm.errors import ConfigError, DataError, NotFittedError, PersistError

F32 = NDArray[np.float32]


def synthetic(n: int = 300, d: int = 32, k: int = 3, *, seed: int = 0) -> tuple[F32, list[str]]:
    """``k`` overlapping domains: unit rows around random centres, heavy noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d))
    ids = rng.integers(0, k, n)
    x = (centres[ids] + 1.5 * rng.standard_normal((n, d))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [f"task{i}" for i in ids]


def separation(z: F32, labels: list[str]) -> tuple[float, float]:
    """Mean cosine of rows to their own domain centre; mean cosine between domain centres."""
    names = sorted(set(labels))
    lab = np.array(labels)
    centres = np.stack([z[lab == name].mean(axis=0) for name in names])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    own = (z * centres[[names.index(v) for v in labels]]).sum(axis=1).mean()
    between = centres @ centres.T
    return float(own), float(between[~np.eye(len(names), dtype=bool)].mean())


@pytest.fixture(scope="module")
def data() -> tuple[F32, list[str]]:
    return synthetic()


@pytest.mark.parametrize("input_weight", [0.0, 1.0])
def test_transform_shape_dtype_unit_rows(data: tuple[F32, list[str]], input_weight: float) -> None:
    x, labels = data
    head = DomainProjection(dim_out=8, input_weight=input_weight, epochs=3).fit(x, labels)
    z = head.transform(x[:7])
    width = 8 if input_weight == 0 else 8 + x.shape[1]
    assert z.shape == (7, width) == (7, head.dim_)
    assert z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    # The same fit, then a product over 300 rows instead of 7: float32 rounding may differ.
    np.testing.assert_allclose(head.fit_transform(x, labels)[:7], z, rtol=1e-5, atol=1e-6)


def test_deterministic_per_seed(data: tuple[F32, list[str]]) -> None:
    x, _ = data
    a = DomainProjection(dim_out=8, n_clusters=4, epochs=3, batch_size=64, seed=3).fit(x)
    b = DomainProjection(dim_out=8, n_clusters=4, epochs=3, batch_size=64, seed=3).fit(x)
    np.testing.assert_array_equal(a.W_, b.W_)
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    assert a.loss_history_ == b.loss_history_


def test_state_round_trip_is_exact_and_plain(data: tuple[F32, list[str]]) -> None:
    x, labels = data
    head = DomainProjection(dim_out=8, epochs=2, margin=0.1).fit(x, labels)
    params, arrays = head.get_state()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as saved:
        restored = DomainProjection.from_state(json.loads(json.dumps(params)), dict(saved))
    np.testing.assert_array_equal(restored.transform(x), head.transform(x))
    assert restored.domains_ == head.domains_ == ("task0", "task1", "task2")
    assert restored.loss_history_ == head.loss_history_
    assert repr(restored) == repr(head)


def test_state_missing_keys() -> None:
    with pytest.raises(PersistError, match="lacks"):
        DomainProjection.from_state({"dim_out": 4}, {})


@pytest.mark.parametrize("input_weight", [0.0, 1.0])
def test_labels_pull_domains_together_and_apart(
    data: tuple[F32, list[str]], input_weight: float
) -> None:
    x, labels = data
    head = DomainProjection(dim_out=16, input_weight=input_weight, epochs=30, lr=0.02)
    z = head.fit(x, labels).transform(x)
    own_before, between_before = separation(x, labels)
    own_after, between_after = separation(z, labels)
    assert own_after > own_before + 0.1
    assert between_after < between_before - 0.1
    assert head.loss_history_[-1] < 0.5 * head.loss_history_[0]
    assert len(head.loss_history_) == 31


def test_kmeans_domains_when_labels_missing(data: tuple[F32, list[str]]) -> None:
    x, labels = data
    head = DomainProjection(dim_out=8, n_clusters=5, epochs=2).fit(x, None)
    assert head.domains_ == tuple(f"cluster{i}" for i in range(5))
    partly = [*labels[:-1], None]
    assert DomainProjection(dim_out=8, n_clusters=5, epochs=2).fit(x, partly).domains_ == (
        head.domains_
    )


def test_auto_number_of_clusters(data: tuple[F32, list[str]]) -> None:
    x, _ = data
    head = DomainProjection(dim_out=8, epochs=1).fit(x)
    assert len(head.domains_) in AUTO_CLUSTERS


def test_dim_out_above_input_width(data: tuple[F32, list[str]]) -> None:
    x, labels = data
    head = DomainProjection(dim_out=40, input_weight=0.0, epochs=2).fit(x, labels)
    assert head.transform(x).shape == (len(x), 40)
    assert np.isfinite(head.W_).all()


def test_domain_loss_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    u = rng.standard_normal((12, 4))
    ids = rng.integers(0, 3, 12)

    def loss(v: NDArray[np.float64]) -> float:
        pull, push, _ = domain_loss(v.astype(np.float32), ids, margin=-0.5, push_weight=1.0)
        return pull + push

    _, _, grad = domain_loss(u.astype(np.float32), ids, margin=-0.5, push_weight=1.0)
    numeric = np.zeros_like(u)
    for i, j in np.ndindex(*u.shape):
        step = np.zeros_like(u)
        step[i, j] = 1e-3
        numeric[i, j] = (loss(u + step) - loss(u - step)) / 2e-3
    np.testing.assert_allclose(grad, numeric, atol=5e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim_out": 0}, "dim_out=0"),
        ({"epochs": -1}, "epochs=-1"),
        ({"n_clusters": 1}, "n_clusters=1"),
        ({"lr": -0.1}, "lr=-0.1"),
        ({"margin": 1.0}, "margin=1.0"),
        ({"input_weight": float("nan")}, "input_weight=nan"),
    ],
)
def test_bad_parameters(data: tuple[F32, list[str]], kwargs: dict[str, float], match: str) -> None:
    x, labels = data
    with pytest.raises(ConfigError, match=match):
        DomainProjection(**kwargs).fit(x, labels)  # type: ignore[arg-type]


def test_bad_inputs(data: tuple[F32, list[str]]) -> None:
    x, labels = data
    with pytest.raises(DataError, match=r"shape \(32,\)"):
        DomainProjection().fit(x[0], labels)
    with pytest.raises(DataError, match="1 domain"):
        DomainProjection().fit(x, ["same"] * len(x))
    with pytest.raises(DataError, match="299 domain labels for 300"):
        DomainProjection().fit(x, labels[1:])
    with pytest.raises(DataError, match="NaN"):
        DomainProjection().fit(np.full((4, 3), np.nan, dtype=np.float32), ["a", "b"] * 2)
    with pytest.raises(ConfigError, match="n_clusters=500"):
        DomainProjection(n_clusters=500).fit(x)
    head = DomainProjection(dim_out=4, epochs=1).fit(x, labels)
    with pytest.raises(DataError, match="16 columns; this projection was fitted on 32"):
        head.transform(x[:, :16])


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        DomainProjection().transform(np.ones((1, 3), dtype=np.float32))
    with pytest.raises(NotFittedError):
        DomainProjection().get_state()
