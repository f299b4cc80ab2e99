"""Output length regressors, the cost formula and the cost error table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError, DataError, NotFittedError
from mixllm.predict.cost import MeanLengthCostModel
from mixllm.predict.length import LengthModel, cost_errors, cost_from_tokens
from mixllm.types import LLM
from tests.predict.conftest import SMALL, embeddings

KINDS = ["mean", "ridge", "hgb", "knn"]


def make_lengths(n: int = 300, *, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Three LLMs: 0 answers at length exp(3 + 2 x0) × noise, growing with the prompt;
    1 always 7 tokens; 2 never observed. Prompt token counts, some unknown."""
    rng = np.random.default_rng(seed)
    x = embeddings(n, seed=seed)
    prompt = rng.integers(10, 1000, size=n).astype(float)
    out = np.full((n, 3), np.nan)
    out[:, 0] = np.round(np.exp(3 + 2 * x[:, 0] + 0.3 * np.log(prompt) + rng.normal(0, 0.1, n)))
    out[:, 1] = 7.0
    prompt[::25] = np.nan
    return x, prompt, out


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, ...]:
    return make_lengths(400)


@pytest.fixture(scope="module", params=KINDS)
def fitted(request: pytest.FixtureRequest, data: tuple[np.ndarray, ...]) -> LengthModel:
    x, p, out = data
    return LengthModel(request.param, **SMALL).fit(x[:300], p[:300], out[:300])  # type: ignore[arg-type]


def test_contract_shapes_degenerate_columns_and_state(
    fitted: LengthModel, data: tuple[np.ndarray, ...]
) -> None:
    x, p, out = data
    pred = fitted.predict(x[300:], p[300:])
    assert pred.shape == (100, 3) and (pred >= 0).all()
    np.testing.assert_allclose(pred[:, 1], 7.0)  # constant column
    np.testing.assert_allclose(pred[:, 2], np.nanmean(out[:300, :2]))  # never observed: prior
    assert fitted.kinds_[1:] == ["constant", "constant"]
    params, arrays = fitted.get_state()
    json.dumps(params, allow_nan=False)
    again = LengthModel.from_state(params, arrays)
    np.testing.assert_array_equal(again.predict(x[300:], p[300:]), pred)
    single = np.vstack([fitted.predict(x[i : i + 1], p[i : i + 1]) for i in range(300, 320)])
    np.testing.assert_allclose(single, pred[:20], rtol=1e-9, atol=1e-9)  # BLAS: other order


def test_regressors_beat_the_mean(data: tuple[np.ndarray, ...]) -> None:
    x, p, out = data
    errors = {}
    for kind in KINDS:
        model = LengthModel(kind, **SMALL).fit(x[:300], p[:300], out[:300])  # type: ignore[arg-type]
        errors[kind] = np.abs(model.predict(x[300:], p[300:])[:, 0] - out[300:, 0]).mean()
    assert errors["ridge"] < 0.5 * errors["mean"]
    assert errors["hgb"] < errors["mean"] and errors["knn"] < errors["mean"]


def test_auto_picks_by_cv_mae(data: tuple[np.ndarray, ...]) -> None:
    x, p, out = data
    model = LengthModel(**SMALL).fit(x[:300], p[:300], out[:300])  # type: ignore[arg-type]
    scores = {k: float(s[0]) for k, s in model.cv_scores_.items()}
    assert set(scores) == set(KINDS)
    assert model.kind_ == min(scores, key=scores.__getitem__) == "ridge"
    assert np.isnan(model.cv_scores_["ridge"][1])  # constant column: not cross-validated


def test_mean_kind_matches_the_mean_length_baseline(data: tuple[np.ndarray, ...]) -> None:
    x, p, out = data
    model = LengthModel("mean").fit(x, p, out[:, :1])
    n = len(x)
    ds = Dataset(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        prompts=np.array(["p"] * n, dtype=object),
        llms=("a",),
        quality=np.full((n, 1), 1.0),
        cost_usd=np.full((n, 1), np.nan),
        prompt_tokens=p,
        output_tokens=out[:, :1],
        latency_s=np.full((n, 1), np.nan),
        tasks=np.array([None] * n, dtype=object),
        prices={"a": LLM("a", 1.0, 2.0)},
    )
    base = MeanLengthCostModel().fit(ds)
    tokens = model.predict(x[:5], np.full(5, 100.0))
    np.testing.assert_allclose(tokens[:, 0], base.mean_output_tokens_[0])
    cost = cost_from_tokens(np.full(5, 100.0), tokens, np.array([1.0]), np.array([2.0]))
    np.testing.assert_allclose(cost, base.predict(np.full(5, 100.0)))


def test_add_and_remove_llm(data: tuple[np.ndarray, ...]) -> None:
    x, p, out = data
    model = LengthModel("ridge").fit(x, p, out[:, :2])
    before = model.predict(x[:10], p[:10])
    assert model.add_llm(x[:200], p[:200], out[:200, 0] * 2) == 2
    after = model.predict(x[:10], p[:10])
    np.testing.assert_allclose(after[:, :2], before, rtol=1e-9)  # BLAS may round differently
    assert (after[:, 2] > after[:, 0]).all()
    model.remove_llm(1)
    np.testing.assert_allclose(model.predict(x[:10], p[:10]), after[:, [0, 2]], rtol=1e-9)


def test_cost_formula_and_error_table() -> None:
    cost = cost_from_tokens(np.array([1e6, 0.0]), np.array([[0.0, 1e6], [2e6, 0.0]]),
                            np.array([1.0, 3.0]), np.array([2.0, 4.0]))  # fmt: skip
    np.testing.assert_allclose(cost, [[1.0, 7.0], [4.0, 0.0]])
    recorded = np.array([[2.0, np.nan], [4.0, 0.0], [1.0, 1.0]])
    predicted = np.array([[1.0, 5.0], [5.0, 0.5], [1.0, 1.5]])
    a, b = cost_errors(predicted, recorded, ["a", "b"])
    assert (a.llm, a.n, a.mae_usd) == ("a", 3, pytest.approx(2 / 3))
    assert a.median_rel_error == pytest.approx(0.25)  # of [0.5, 0.25, 0]
    assert a.mean_cost_usd == pytest.approx(7 / 3)
    assert (b.n, b.mae_usd, b.median_rel_error) == (2, pytest.approx(0.5), pytest.approx(0.5))
    with pytest.raises(DataError, match="shapes"):
        cost_errors(predicted, recorded[:, :1], ["a", "b"])


def test_checks(data: tuple[np.ndarray, ...]) -> None:
    x, p, out = data
    with pytest.raises(NotFittedError):
        LengthModel().predict(x, p)
    with pytest.raises(NotFittedError):
        LengthModel().add_llm(x, p, out[:, 0])
    with pytest.raises(ConfigError, match="kind='logistic'"):
        LengthModel("logistic").fit(x, p, out)
    with pytest.raises(DataError, match="negative"):
        LengthModel().fit(x, p, -out)
    with pytest.raises(DataError, match="prompt_tokens has shape"):
        LengthModel().fit(x, p[:5], out)


def test_ridge_survives_an_svd_that_does_not_converge(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's SVD (LAPACK gesdd) can fail on degenerate features (many identical rows); the
    ridge fit then uses the QR-based driver and gets the same coefficients."""
    from mixllm.predict import learners

    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(3, 8)), 50, axis=0)  # 150 rows, 3 distinct
    y = rng.normal(size=150)
    expected = learners._ridge(x, y, [0.1, 10.0])

    def broken(*args: object, **kwargs: object) -> None:
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", broken)
    got = learners._ridge(x, y, [0.1, 10.0])
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a.predict(x), b.predict(x), atol=1e-9)
