from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from mixllm.data.dataset import Dataset, Outcome
from mixllm.data.longform import load_longform, write_longform
from mixllm.errors import DataError


def rows() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(4):
        for llm, (p_in, p_out) in {"big": (10.0, 30.0), "small": (1.0, 2.0)}.items():
            pt, ot = 100.0 + 10 * i, 5.0 + i * (2 if llm == "big" else 1)
            out.append(
                {
                    "query_id": f"q{i}",
                    "prompt": f"prompt {i}",
                    "llm": llm,
                    "quality": 1.0 if llm == "big" or i % 2 else 0.0,
                    "cost_usd": (pt * p_in + ot * p_out) / 1e6,
                    "prompt_tokens": pt,
                    "output_tokens": ot,
                    "task": "even" if i % 2 == 0 else "odd",
                }
            )
    return out


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_csv(path: Path, records: list[dict[str, object]]) -> Path:
    fields = list(dict.fromkeys(k for r in records for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)
    return path


@pytest.mark.parametrize("write", [write_jsonl, write_csv])
def test_loads_jsonl_and_csv(write: object, tmp_path: Path) -> None:
    path = write(tmp_path / ("d.jsonl" if write is write_jsonl else "d.csv"), rows())  # type: ignore[operator]
    ds = load_longform(path)
    assert ds.name == "d"
    assert ds.llms == ("big", "small")
    assert list(ds.query_ids) == ["q0", "q1", "q2", "q3"]
    assert ds.quality[:, 1].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert ds.task_names == ("even", "odd")
    assert ds.prices["big"].price_in_per_mtok == pytest.approx(10.0)
    assert ds.prices["small"].price_out_per_mtok == pytest.approx(2.0)


def test_id_alias_optional_fields_and_unknown_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = [
        {"id": 7, "prompt": "p", "llm": "m", "cost_usd": 0, "quality": None, "note": "x"},
        {"id": 8, "prompt": "q", "llm": "m", "cost_usd": 1e-4, "quality": "", "latency_s": 1.5},
    ]
    with caplog.at_level(logging.WARNING, logger="mixllm.data.longform"):
        ds = load_longform(write_jsonl(tmp_path / "d.jsonl", records))
    assert list(ds.query_ids) == ["7", "8"]
    assert np.isnan(ds.quality).all()
    assert ds.latency_s[1, 0] == 1.5
    assert ds.prices == {}
    assert "ignored unknown field(s) ['note']" in caplog.text


def test_tokenize_fills_missing_token_counts(tmp_path: Path) -> None:
    records = [
        {"query_id": "a", "prompt": "hello world", "llm": "m", "cost_usd": 1e-6, "response": "hi"},
        {"query_id": "b", "prompt": "hello", "llm": "m", "cost_usd": 1e-6, "output_tokens": 9},
    ]
    ds = load_longform(write_jsonl(tmp_path / "d.jsonl", records), tokenize=True)
    assert ds.prompt_tokens.tolist() == [2.0, 1.0]
    assert ds.output_tokens[:, 0].tolist() == [1.0, 9.0]


def test_each_line_keeps_its_own_prompt_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # "small" counts each prompt with another tokenizer: 30% more tokens, and more on odd ones
    records = rows()
    for k, r in enumerate(records):
        if r["llm"] == "small":
            pt = round(float(r["prompt_tokens"]) * 1.3) + 20 * (k // 2 % 2)  # type: ignore[arg-type]
            r["prompt_tokens"] = pt
            r["cost_usd"] = (pt * 1.0 + float(r["output_tokens"]) * 2.0) / 1e6  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="mixllm.data.prices"):
        ds = load_longform(write_jsonl(tmp_path / "d.jsonl", records))
    assert "poorly" not in caplog.text
    assert (ds.prices["big"].price_in_per_mtok, ds.prices["big"].price_out_per_mtok) == (10, 30)
    assert (ds.prices["small"].price_in_per_mtok, ds.prices["small"].price_out_per_mtok) == (1, 2)
    # the query's prompt tokens: the median of its lines' (here the mean of the two)
    assert ds.prompt_tokens.tolist() == pytest.approx([115.0, 136.5, 138.0, 159.5])


def bad(tmp_path: Path, index: int, **changes: object) -> Path:
    records = rows()
    records[index] = {k: v for k, v in {**records[index], **changes}.items() if v is not ...}
    return write_jsonl(tmp_path / "data.jsonl", records)


def test_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(rows()[0]) + "\n\n{oops\n")
    with pytest.raises(DataError, match=r"data\.jsonl line 3: invalid JSON"):
        load_longform(path)


def test_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=r"data\.jsonl line 1: expected a JSON object"):
        load_longform(path)


def test_missing_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.jsonl line 3: missing field 'cost_usd'"):
        load_longform(bad(tmp_path, 2, cost_usd=...))
    with pytest.raises(DataError, match=r"data\.jsonl line 2: missing or empty field 'llm'"):
        load_longform(bad(tmp_path, 1, llm=...))
    with pytest.raises(DataError, match=r"data\.jsonl line 1: missing or empty field 'query_id'"):
        load_longform(bad(tmp_path, 0, query_id=...))


def test_missing_csv_column(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "data.csv", [{k: v for k, v in r.items() if k != "llm"} for r in rows()]
    )
    with pytest.raises(DataError, match=r"data\.csv line 1: missing column\(s\) \['llm'\]"):
        load_longform(path)


def test_non_numeric_value(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"data\.jsonl line 4: field 'cost_usd' = 'cheap' is not a number"
    ):
        load_longform(bad(tmp_path, 3, cost_usd="cheap"))
    with pytest.raises(DataError, match=r"line 4: field 'quality' = True is not a number"):
        load_longform(bad(tmp_path, 3, quality=True))


def test_non_numeric_csv_cell(tmp_path: Path) -> None:
    records = rows()
    records[5]["output_tokens"] = "many"
    with pytest.raises(
        DataError, match=r"data\.csv line 7: field 'output_tokens' = 'many' is not a"
    ):
        load_longform(write_csv(tmp_path / "data.csv", records))


def test_negative_cost(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.jsonl line 2: field 'cost_usd' = -0\.5 is outside"):
        load_longform(bad(tmp_path, 1, cost_usd=-0.5))


def test_empty_cost(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.jsonl line 2: field 'cost_usd' is empty"):
        load_longform(bad(tmp_path, 1, cost_usd=None))


def test_quality_outside_unit_interval(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"data\.jsonl line 7: field 'quality' = 1\.7 is outside \[0, 1\]"
    ):
        load_longform(bad(tmp_path, 6, quality=1.7))


def test_quality_outside_unit_interval_in_csv(tmp_path: Path) -> None:
    records = rows()
    records[6]["quality"] = "1.7"
    with pytest.raises(DataError, match=r"data\.csv line 8: field 'quality' = 1\.7 is outside"):
        load_longform(write_csv(tmp_path / "data.csv", records))


def test_not_finite(tmp_path: Path) -> None:
    records = rows()
    records[0]["latency_s"] = "inf"
    with pytest.raises(
        DataError, match=r"data\.csv line 2: field 'latency_s' = 'inf' is not a finite"
    ):
        load_longform(write_csv(tmp_path / "data.csv", records))


def test_duplicate_query_and_llm(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [*rows(), rows()[2]])
    with pytest.raises(
        DataError,
        match=r"data\.jsonl line 9: duplicate outcome for query 'q1' and LLM 'big' "
        r"\(first on line 3\)",
    ):
        load_longform(path)


def test_query_with_two_prompts(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"data\.jsonl line 4: query 'q1' has a different prompt than on line 3"
    ):
        load_longform(bad(tmp_path, 3, prompt="another prompt"))


def test_csv_written_by_excel_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes("query_id,prompt,llm,cost_usd\nq,p,m,0.1\n".encode("utf-8-sig"))
    assert list(load_longform(path).query_ids) == ["q"]


def test_extra_csv_values(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("query_id,prompt,llm,cost_usd\nq,p,m,0.1\nq,p,n,0.1,surplus\n")
    with pytest.raises(DataError, match=r"data\.csv line 3: more values than the header"):
        load_longform(path)


@pytest.mark.parametrize("name", ["data.jsonl", "data.csv"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("")
    with pytest.raises(
        DataError, match=rf"{name.replace('.', '[.]')}: no outcomes \(the file is empty\)"
    ):
        load_longform(tmp_path / name)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent\.jsonl: no such file"):
        load_longform(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match=r"data\.xlsx: unknown long format '\.xlsx'"):
        load_longform(tmp_path / "data.xlsx")


def assert_same(a: Dataset, b: Dataset) -> None:
    assert a.llms == b.llms
    assert list(a.query_ids) == list(b.query_ids)
    assert list(a.prompts) == list(b.prompts)
    assert list(a.tasks) == list(b.tasks)
    for attr in ("quality", "cost_usd", "prompt_tokens", "output_tokens", "latency_s"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    assert a.responses is not None and b.responses is not None
    assert (a.responses == b.responses).all()
    assert a.prices.keys() == b.prices.keys()
    for name, llm in a.prices.items():
        assert b.prices[name].price_in_per_mtok == pytest.approx(llm.price_in_per_mtok)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_routerbench_round_trips(routerbench: Dataset, tmp_path: Path, suffix: str) -> None:
    part = routerbench.subset(np.arange(0, len(routerbench), 10))
    path = write_longform(part, tmp_path / f"{part.name}{suffix}")
    assert_same(part, load_longform(path))


def test_writer_skips_missing_outcomes_and_refuses_quality_without_cost(tmp_path: Path) -> None:
    ds = Dataset.from_outcomes(
        [Outcome("q", "p", "a", 1.0, 0.1), Outcome("r", "p2", "b", None, 0.2)]
    )
    written = write_longform(ds, tmp_path / "d.jsonl").read_text().splitlines()
    assert len(written) == 2  # (q, b) and (r, a) are missing outcomes
    ds = Dataset.from_outcomes([Outcome("q", "p", "a", 1.0, None)])
    with pytest.raises(DataError, match=r"query 'q', LLM 'a' has a quality but no cost"):
        write_longform(ds, tmp_path / "e.jsonl")
    with pytest.raises(DataError, match=r"unknown long format '\.txt'"):
        write_longform(ds, tmp_path / "e.txt")
