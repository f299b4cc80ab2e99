"""The MixLLM predictor's fast path: the same numbers as its parts, computed with fewer calls."""

from __future__ import annotations

import numpy as np
import pytest

from mixllm.errors import DataError
from mixllm.policy import MixLLMPredictor
from mixllm.policy.mixllm import _project
from mixllm.predict.length import cost_from_tokens
from mixllm.types import QueryBatch
from tests.policy.conftest import make_set, split, take


def _fitted(
    quality: str, length: str, *, tagged: bool = True
) -> tuple[MixLLMPredictor, QueryBatch]:
    ds, qb = make_set(240, n_llms=3, n_clusters=3, nan_frac=0.1, seed=4)
    train, train_q, _, test_q = split(ds, qb, 180)
    model = MixLLMPredictor(quality, length, tagged=tagged).fit(train, train_q)
    return model, test_q


def _by_parts(model: MixLLMPredictor, queries: QueryBatch) -> tuple[np.ndarray, ...]:
    """Quality, cost and bonus through each part's public predict (the reference path)."""
    x = np.asarray(queries.embeddings, dtype=np.float32)
    f = x.astype(np.float64)
    if model.projection_ is not None:
        f = model.projection_.transform(x).astype(np.float64)
    ptok = queries.prompt_tokens
    tokens = model.length_.predict(f, ptok)
    priced = cost_from_tokens(ptok, tokens, model.price_in_, model.price_out_)
    fallback = model.cost_fallback_.predict(ptok)
    cost = np.where(model.from_tokens_[None, :] & np.isfinite(priced), priced, fallback)
    bonus = model.online_.bonus(np.hstack([f, np.ones((len(f), 1))]))  # with the intercept
    return np.clip(model.quality_.predict(f), 0.0, 1.0), np.maximum(cost, 0.0), bonus


def _assert_close(actual: np.ndarray, desired: np.ndarray, *, tagged: bool) -> None:
    """Equal up to rounding. Tagged features come from a float32 product whose last bits
    depend on the BLAS kernel and the batch size (~1e-7 relative); untagged ones are float64."""
    np.testing.assert_allclose(actual, desired, rtol=1e-5 if tagged else 1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("quality", "length", "tagged"),
    [
        ("logistic", "ridge", True),
        ("logistic", "ridge", False),
        ("knn", "knn", True),
        ("rf", "hgb", True),
        ("hgb", "mean", False),
    ],
)
def test_predict_equals_the_parts(quality: str, length: str, tagged: bool) -> None:
    model, queries = _fitted(quality, length, tagged=tagged)
    pred = model.predict(queries)
    q, c, u = _by_parts(model, queries)
    assert pred.uncertainty is not None
    _assert_close(pred.quality, q, tagged=tagged)
    _assert_close(pred.cost_usd, c, tagged=tagged)
    _assert_close(pred.uncertainty, u, tagged=tagged)
    # One query at a time gives the same rows as the batch, up to rounding: BLAS sums a
    # matrix-vector product in another order than a matrix-matrix one.
    for i in (0, 7):
        one = model.predict(take(queries, np.array([i])))
        _assert_close(one.quality, pred.quality[i : i + 1], tagged=tagged)
        _assert_close(one.cost_usd, pred.cost_usd[i : i + 1], tagged=tagged)


def test_without_uncertainty_only_the_bonus_is_left_out() -> None:
    model, queries = _fitted("logistic", "ridge")
    full, lean = model.predict(queries), model.predict(queries, uncertainty=False)
    assert lean.uncertainty is None and full.uncertainty is not None
    np.testing.assert_array_equal(lean.quality, full.quality)
    np.testing.assert_array_equal(lean.cost_usd, full.cost_usd)


def test_projection_shortcut_matches_the_transform() -> None:
    model, queries = _fitted("logistic", "ridge")
    assert model.projection_ is not None
    rng = np.random.default_rng(0)
    x = np.concatenate([queries.embeddings, rng.normal(size=(20, 16)).astype(np.float32)])
    x[-1] = 0.0  # a zero row: the lengths' floor of 1e-12 applies
    shortcut = _project(model.projection_, x)
    assert shortcut.dtype == np.float32 and shortcut.shape == (len(x), model.projection_.dim_)
    # Two code paths for the same float32 arithmetic: equal up to float32 rounding.
    np.testing.assert_allclose(shortcut, model.projection_.transform(x), rtol=1e-5, atol=1e-6)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError):
        _project(model.projection_, bad)


def test_a_missing_prompt_count_still_gets_a_cost() -> None:
    model, queries = _fitted("logistic", "ridge")
    ptok = queries.prompt_tokens.copy()
    ptok[:3] = np.nan
    holes = QueryBatch(queries.ids, queries.prompts, queries.embeddings, ptok)
    pred = model.predict(holes)
    _, c, _ = _by_parts(model, holes)
    _assert_close(pred.cost_usd, c, tagged=True)
    assert np.isfinite(pred.cost_usd).all()
