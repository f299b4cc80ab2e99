from __future__ import annotations

import logging

import numpy as np
import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.prices import ROUTERBENCH_LIST_PRICES, fit_llm_price, fit_prices, fitted_llms


def test_recovers_exact_prices() -> None:
    rng = np.random.default_rng(0)
    pt, ot = rng.integers(10, 2000, 50).astype(float), rng.integers(1, 500, 50).astype(float)
    fit = fit_llm_price(pt, ot, (pt * 3.0 + ot * 15.0) / 1e6, llm="m")
    assert fit is not None
    assert (fit.price_in_per_mtok, fit.price_out_per_mtok) == (3.0, 15.0)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.max_rel_error < 1e-9
    assert fit.n_rows == 50
    assert fit.to_llm().cost_usd(1e6, 1e6) == pytest.approx(18.0)


def test_prices_are_never_negative() -> None:
    pt, ot = np.array([100.0, 200.0, 300.0, 400.0]), np.array([400.0, 300.0, 200.0, 100.0])
    fit = fit_llm_price(pt, ot, (ot * 20.0 - pt * 1.0) / 1e6, llm="m")
    assert fit is not None
    assert fit.price_in_per_mtok == 0.0
    assert fit.price_out_per_mtok > 0.0
    assert fit.r2 < 1.0


def test_missing_values_are_left_out_and_too_few_rows_give_none() -> None:
    pt = np.array([100.0, np.nan, 300.0])
    ot = np.array([10.0, 10.0, np.nan])
    assert fit_llm_price(pt, ot, np.array([1e-3, 1e-3, 1e-3]), llm="m") is None
    fit = fit_llm_price(pt, np.array([10.0, 10.0, 20.0]), np.array([1.3e-3, 5.0, 3.6e-3]), llm="m")
    assert fit is not None
    assert fit.n_rows == 2


def test_routerbench_costs_are_list_prices_times_cl100k_tokens(routerbench: Dataset) -> None:
    fits = fit_prices(routerbench)
    assert set(fits) == set(ROUTERBENCH_LIST_PRICES)
    for name, fit in fits.items():
        listed = ROUTERBENCH_LIST_PRICES[name]
        assert fit.price_in_per_mtok == pytest.approx(listed.price_in_per_mtok, rel=1e-6), name
        assert fit.price_out_per_mtok == pytest.approx(listed.price_out_per_mtok, rel=1e-6), name
        assert fit.r2 > 0.999999, name
        assert fit.max_rel_error < 1e-6, name
        assert routerbench.prices[name] == listed


def test_poor_fits_are_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    fit = fit_llm_price(
        np.array([100.0, 200.0, 300.0]),
        np.array([5.0, 5.0, 5.0]),
        np.array([3e-3, 1e-4, 2e-3]),
        llm="m",
    )
    assert fit is not None
    with caplog.at_level(logging.WARNING, logger="mixllm.data.prices"):
        llms = fitted_llms({"m": fit}, source="toy.jsonl")
    assert llms["m"].name == "m"
    assert "toy.jsonl" in caplog.text
    assert "poorly" in caplog.text
