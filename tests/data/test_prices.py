from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from mixllm.data.dataset import Dataset, Outcome
from mixllm.data.price_table import PriceTable, price_dataset, read_price_table
from mixllm.data.prices import ROUTERBENCH_LIST_PRICES, fit_llm_price, fit_prices, fitted_llms
from mixllm.errors import ConfigError
from mixllm.types import LLM


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


# -- price tables ------------------------------------------------------------------------------
PRICE_FILES = {
    "p.csv": "llm,price_in_per_mtok,price_out_per_mtok\nbig,10,30\nsmall,0.5,1.5\n",
    "p.json": json.dumps(
        [
            {"llm": "big", "price_in_per_mtok": 10, "price_out_per_mtok": 30},
            {"llm": "small", "price_in_per_mtok": 0.5, "price_out_per_mtok": 1.5},
        ]
    ),
    "by_llm.json": json.dumps(
        {
            "big": {"price_in_per_mtok": 10, "price_out_per_mtok": 30},
            "small": {"price_in_per_mtok": 0.5, "price_out_per_mtok": 1.5},
        }
    ),
    "p.toml": "[[prices]]\nllm = 'big'\nprice_in_per_mtok = 10\nprice_out_per_mtok = 30\n"
    "[[prices]]\nllm = 'small'\nprice_in_per_mtok = 0.5\nprice_out_per_mtok = 1.5\n",
    "by_llm.toml": '["big"]\nprice_in_per_mtok = 10\nprice_out_per_mtok = 30\n'
    '["small"]\nprice_in_per_mtok = 0.5\nprice_out_per_mtok = 1.5\n',
}


@pytest.mark.parametrize("name", sorted(PRICE_FILES))
def test_price_table_reads_csv_json_and_toml(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(PRICE_FILES[name])
    table = read_price_table(path)
    assert table.prices == {"big": LLM("big", 10.0, 30.0), "small": LLM("small", 0.5, 1.5)}
    assert table.default is None
    assert table.for_llms(["small"]) == {"small": LLM("small", 0.5, 1.5)}


def test_one_price_for_all(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("llm,price_in_per_mtok,price_out_per_mtok\n*,0.2,0.3\nbig,10,30\n")
    table = read_price_table(path)
    assert table.for_llms(["big", "x", "y"]) == {
        "big": LLM("big", 10.0, 30.0),
        "x": LLM("x", 0.2, 0.3),
        "y": LLM("y", 0.2, 0.3),
    }


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("p.csv", "llm,price_in_per_mtok,price_out_per_mtok\nbig,ten,30\n", "'ten'"),
        ("p.csv", "llm,price_in_per_mtok,price_out_per_mtok\nbig,-1,30\n", "-1"),
        ("p.csv", "llm,price_in_per_mtok\nbig,1\n", "missing field(s) ['price_out_per_mtok']"),
        ("p.csv", "llm,price_in_per_mtok,price_out_per_mtok\nbig,1,1\nbig,2,2\n", "twice"),
        ("p.csv", "llm,price_in_per_mtok,price_out_per_mtok\n", "empty"),
        ("p.json", "[1, 2]", "entry 0"),
        ("p.json", "{oops", "invalid JSON"),
        ("p.json", '{"big": 3}', "LLM 'big'"),
        ("p.json", '[{"llm": "big", "price_in_per_mtok": true, "price_out_per_mtok": 1}]', "True"),
        ("p.toml", "x = [", "invalid TOML"),
        ("p.yaml", "big: 1", "'.yaml'"),
    ],
)
def test_bad_price_tables_name_the_value(name: str, text: str, expect: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(expect)):
        read_price_table(path)


def test_missing_price_table_and_unpriced_llm(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.csv"):
        read_price_table(tmp_path / "absent.csv")
    table = PriceTable({"big": LLM("big", 1.0, 1.0)}, source="p.csv")
    with pytest.raises(ConfigError, match=re.escape("no price for LLM(s) ['small', 'tiny']")):
        table.for_llms(["big", "small", "tiny"])


def _unpriced() -> Dataset:
    return Dataset.from_outcomes(
        [
            Outcome("q1", "one two three", "big", 1.0, None, prompt_tokens=100, output_tokens=10),
            Outcome("q1", "one two three", "small", 0.0, None, response="a b c d"),
            Outcome("q2", "hello world", "big", 0.5, None),
        ]
    )


def test_price_dataset_computes_costs_and_says_how() -> None:
    table = PriceTable({"big": LLM("big", 10.0, 30.0), "small": LLM("small", 1.0, 2.0)})
    ds, notes = price_dataset(_unpriced(), table)
    cost = ds.cost_usd
    assert cost[0, 0] == pytest.approx((100 * 10 + 10 * 30) / 1e6)
    assert ds.output_tokens[0, 1] == 4.0  # counted from the response
    assert cost[0, 1] == pytest.approx((100 * 1 + 4 * 2) / 1e6)
    assert ds.prompt_tokens[1] == 2.0  # counted from the prompt
    assert cost[1, 0] == pytest.approx(2 * 10 / 1e6)  # prompt only: output tokens unknown
    assert np.isnan(cost[1, 1])  # no outcome, no cost
    assert ds.prices["small"] == LLM("small", 1.0, 2.0)
    text = " | ".join(notes)
    assert "prompt tokens counted with cl100k_base for 1 queries" in text
    assert "output tokens counted from the responses for 1 answers" in text
    assert "output tokens unknown for 1 answers" in text
    assumed, notes = price_dataset(_unpriced(), table, output_tokens=50)
    assert assumed.cost_usd[1, 0] == pytest.approx((2 * 10 + 50 * 30) / 1e6)
    assert "1 answers assumed 50 output tokens" in " | ".join(notes)


def test_list_price_table_reproduces_routerbench_costs(routerbench: Dataset) -> None:
    priced, notes = price_dataset(routerbench, PriceTable(dict(ROUTERBENCH_LIST_PRICES)))
    assert notes == ["costs computed from the prices in prices (tokens × USD per Mtok)"]
    known = np.isfinite(routerbench.cost_usd)
    assert np.array_equal(np.isfinite(priced.cost_usd), known)
    rel = np.abs(priced.cost_usd[known] - routerbench.cost_usd[known]) / routerbench.cost_usd[known]
    assert rel.max() < 1e-9


def test_price_table_names_llms_by_short_names_too() -> None:
    table = PriceTable(
        {"Llama-3-8B": LLM("Llama-3-8B", 0.2, 0.3), "org/x": LLM("org/x", 5.0, 5.0)},
        default=LLM("*", 1.0, 1.0),
        source="p.csv",
    )
    prices = table.for_llms(["meta/Llama-3-8B", "org/x", "other/x", "y"])
    assert prices["meta/Llama-3-8B"] == LLM("meta/Llama-3-8B", 0.2, 0.3)
    assert prices["org/x"] == LLM("org/x", 5.0, 5.0)  # the full name
    assert prices["other/x"] == LLM("other/x", 1.0, 1.0)  # '*'
    ambiguous = PriceTable({"x": LLM("x", 1.0, 1.0)}, source="p.csv")
    with pytest.raises(ConfigError, match=re.escape("ambiguous LLM name 'x'")):
        ambiguous.for_llms(["org/x", "other/x"])
