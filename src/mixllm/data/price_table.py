"""Price tables: USD per million tokens per LLM, read from a file, and costs computed from them.

A price table gives data without costs (RouterDC's task files, a long file of open models)
costs of ``prompt tokens × input price + output tokens × output price``, or replaces recorded
costs with list prices. The file is a ``.csv``, ``.json`` or ``.toml`` table of records with the
fields ``llm``, ``price_in_per_mtok`` and ``price_out_per_mtok``:

* CSV: a header line with those three columns, one LLM per line;
* JSON: a list of such objects, or an object ``{"<llm>": {"price_in_per_mtok": ..., ...}}``;
* TOML: ``[[prices]]`` tables with the three fields, or one table per LLM
  (``["<llm>"]`` with the two prices).

The LLM name ``*`` prices every LLM the table does not name: one line ``*,0.2,0.2`` is "one
price for all". See ``docs/data-format.md``.

>>> table = PriceTable({"big": LLM("big", 10.0, 30.0)}, default=LLM("*", 0.2, 0.2))
>>> [(m.name, m.price_in_per_mtok) for m in table.for_llms(["big", "small"]).values()]
[('big', 10.0), ('small', 0.2)]
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tomllib

from mixllm.data.dataset import Dataset
from mixllm.data.rows import csv_records
from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError, DataError, UnknownLLMError
from mixllm.types import LLM, resolve_llm

__all__ = ["ALL_LLMS", "PRICE_FIELDS", "PriceTable", "price_dataset", "read_price_table"]

#: The LLM name of the row that prices every LLM the table does not name.
ALL_LLMS = "*"
PRICE_FIELDS = ("llm", "price_in_per_mtok", "price_out_per_mtok")
_SUFFIXES = (".csv", ".json", ".toml")


@dataclass(frozen=True)
class PriceTable:
    """Prices by LLM name, and ``default`` (the ``*`` row) for every other LLM."""

    prices: Mapping[str, LLM]
    default: LLM | None = None
    source: str = "prices"

    def for_llms(self, llms: Sequence[str]) -> dict[str, LLM]:
        """The price of each of ``llms``; :class:`ConfigError` naming those without one.

        A table name matches an LLM by its full name or, when no other LLM of ``llms`` shares
        it, its short name (``Meta-Llama-3-8B`` for ``meta-llama/Meta-Llama-3-8B``); a full
        name wins over a short one.
        """
        found = {m: self.prices[m] for m in llms if m in self.prices}
        for name, price in self.prices.items():
            try:
                full = resolve_llm(name, llms)
            except UnknownLLMError as exc:
                if "ambiguous" in str(exc):
                    raise ConfigError(f"{self.source}: {exc}") from None
                continue  # an LLM the data does not have
            found.setdefault(full, price)
        missing = [m for m in llms if m not in found and self.default is None]
        if missing:
            raise ConfigError(
                f"{self.source}: no price for LLM(s) {missing} of the data; add a line for "
                f"each (priced: {sorted(self.prices)}) or a line with llm '{ALL_LLMS}' for all"
            )
        out: dict[str, LLM] = {}
        for m in llms:
            p = found.get(m) or self.default
            assert p is not None  # checked above
            out[m] = LLM(m, p.price_in_per_mtok, p.price_out_per_mtok)
        return out


def _price(where: str, name: str, value: object) -> float:
    number = value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    if (
        isinstance(number, bool)
        or not isinstance(number, int | float)
        or not math.isfinite(number)
        or number < 0
    ):
        raise ConfigError(f"{where}: {name} = {value!r}; expected a number of USD per Mtok >= 0")
    return float(number)


def _record(where: str, row: Mapping[str, object]) -> LLM:
    missing = [f for f in PRICE_FIELDS if row.get(f) in (None, "")]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {missing}; expected {list(PRICE_FIELDS)}")
    name = row["llm"]
    if not isinstance(name, str | int | float) or isinstance(name, bool):
        raise ConfigError(f"{where}: llm = {name!r}; expected an LLM name")
    return LLM(
        str(name).strip(),
        _price(where, "price_in_per_mtok", row["price_in_per_mtok"]),
        _price(where, "price_out_per_mtok", row["price_out_per_mtok"]),
    )


def _structured(path: Path, data: object) -> Iterable[tuple[str, Mapping[str, object]]]:
    """``(where, record)`` of a parsed JSON or TOML document (records or a mapping by LLM)."""
    if isinstance(data, dict) and isinstance(data.get("prices"), list):
        data = data["prices"]
    if isinstance(data, list):
        for k, row in enumerate(data):
            if not isinstance(row, dict):
                raise ConfigError(f"{path} entry {k}: expected an object with {list(PRICE_FIELDS)}")
            yield f"{path} entry {k}", row
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a list of {list(PRICE_FIELDS)} records")
    for name, row in data.items():
        if not isinstance(row, dict):
            raise ConfigError(
                f"{path} LLM {name!r}: expected price_in_per_mtok and price_out_per_mtok, "
                f"found {row!r}"
            )
        yield f"{path} LLM {name!r}", {"llm": name, **row}


def _rows(path: Path) -> Iterable[tuple[str, Mapping[str, object]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            return ((f"{path} line {n}", row) for n, row in list(csv_records(path)))
        except DataError as exc:
            raise ConfigError(str(exc)) from None
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text) if suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid {suffix[1:].upper()} ({exc})") from None
    return _structured(path, data)


def read_price_table(path: str | Path) -> PriceTable:
    """Read a price table from a ``.csv``, ``.json`` or ``.toml`` file (see the module doc).

    Raises
    ------
    ConfigError
        Naming the file and the entry: a missing file, another suffix, invalid JSON or TOML, a
        missing field, a price that is not a number >= 0, an LLM named twice, an empty table.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() not in _SUFFIXES:
        raise ConfigError(
            f"{path}: unknown price table format {path.suffix!r}; expected {_SUFFIXES}"
        )
    if not path.is_file():
        raise ConfigError(f"{path}: no such price table (expected {'/'.join(_SUFFIXES)})")
    prices: dict[str, LLM] = {}
    default: LLM | None = None
    for where, row in _rows(path):
        llm = _record(where, row)
        if llm.name in prices or (llm.name == ALL_LLMS and default is not None):
            raise ConfigError(f"{where}: LLM {llm.name!r} is priced twice")
        if llm.name == ALL_LLMS:
            default = llm
        else:
            prices[llm.name] = llm
    if not prices and default is None:
        raise ConfigError(f"{path}: no prices (the table is empty); expected {list(PRICE_FIELDS)}")
    return PriceTable(prices, default=default, source=str(path))


def price_dataset(
    ds: Dataset, table: PriceTable, *, output_tokens: float | None = None
) -> tuple[Dataset, list[str]]:
    """``ds`` with every known outcome's cost computed from ``table``, and notes saying how.

    Cost = prompt tokens × input price + output tokens × output price (USD per Mtok). A query
    without ``prompt_tokens`` has its prompt counted (``cl100k_base``). An answer without
    ``output_tokens`` has its response counted where the data has it; otherwise it is taken as
    ``output_tokens`` tokens when given, else 0 (the cost then counts the prompt only, a lower
    bound). A cell with neither quality nor cost (no outcome) stays without a cost. Raises
    :class:`ConfigError` naming any LLM of ``ds`` that the table does not price.
    """
    if output_tokens is not None and not (math.isfinite(output_tokens) and output_tokens >= 0):
        raise ConfigError(f"output tokens {output_tokens!r}; expected a number of tokens >= 0")
    prices = table.for_llms(ds.llms)
    notes = [f"costs computed from the prices in {table.source} (tokens × USD per Mtok)"]
    ptok = ds.prompt_tokens.copy()
    gaps = np.isnan(ptok)
    if gaps.any():
        ptok[gaps] = count_tokens([str(p) for p in ds.prompts[gaps]])
        notes.append(f"prompt tokens counted with cl100k_base for {int(gaps.sum())} queries")
    known = np.isfinite(ds.quality) | np.isfinite(ds.cost_usd)
    otok = ds.output_tokens.copy()
    if ds.responses is not None:
        has = np.vectorize(lambda r: r is not None, otypes=[bool])(ds.responses)
        fill = has & np.isnan(otok) & known
        if fill.any():
            otok[fill] = count_tokens([str(r) for r in ds.responses[fill]])
            notes.append(f"output tokens counted from the responses for {int(fill.sum())} answers")
    unknown = np.isnan(otok) & known
    if unknown.any():
        if output_tokens is None:
            notes.append(
                f"output tokens unknown for {int(unknown.sum())} answers: their cost counts the "
                "prompt only (a lower bound; give an answer length to assume one)"
            )
        else:
            notes.append(f"{int(unknown.sum())} answers assumed {output_tokens:g} output tokens")
    used = np.where(np.isnan(otok), output_tokens or 0.0, otok)
    pin = np.array([prices[m].price_in_per_mtok for m in ds.llms])
    pout = np.array([prices[m].price_out_per_mtok for m in ds.llms])
    cost = (ptok[:, None] * pin[None, :] + used * pout[None, :]) / 1e6
    priced = replace(ds.with_tokens(ptok, otok), cost_usd=np.where(known, cost, np.nan))
    return replace(priced, prices=prices), notes
