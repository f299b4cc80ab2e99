"""Bring-your-own data: the long layout, one line per query × LLM, as JSONL or CSV.

Required fields: ``query_id`` (or ``id``), ``prompt``, ``llm``, ``cost_usd``. Optional:
``quality`` (in [0, 1]; blank or null = unknown), ``prompt_tokens``, ``output_tokens``,
``latency_s``, ``task``, ``response``, ``domain`` (a label finer than the task, e.g. a cluster).
Other fields are ignored (and logged). Errors name the file, the line and the field.
:func:`write_longform` writes a :class:`Dataset` back so that it round-trips. See
``docs/data-format.md``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset, Outcome
from mixllm.data.prices import fit_prices, fitted_llms
from mixllm.data.rows import csv_records, jsonl_objects
from mixllm.data.tokens import count_tokens
from mixllm.errors import DataError

__all__ = ["LONG_FIELDS", "LONG_SUFFIXES", "load_longform", "write_longform"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

LONG_FIELDS = (
    "query_id",
    "prompt",
    "llm",
    "quality",
    "cost_usd",
    "prompt_tokens",
    "output_tokens",
    "latency_s",
    "task",
    "response",
    "domain",
)
LONG_SUFFIXES = (".jsonl", ".csv")
_OPTIONAL_NUMBERS = ("quality", "prompt_tokens", "output_tokens", "latency_s")
_TOKEN_FIELDS = ("prompt_tokens", "output_tokens")


def _check_long_header(path: Path) -> Callable[[Sequence[str]], None]:
    def check(header: Sequence[str]) -> None:
        missing = [c for c in ("prompt", "llm", "cost_usd") if c not in header]
        if not {"query_id", "id"} & set(header):
            missing.insert(0, "query_id")
        if missing:
            raise DataError(f"{path} line 1: missing column(s) {missing} in header {list(header)}")

    return check


def _number(where: str, name: str, value: object, *, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DataError(f"{where}: field {name!r} = {value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{where}: field {name!r} = {value!r} is not a number") from None
    shown = value if isinstance(value, int | float) else number
    if not math.isfinite(number):
        raise DataError(f"{where}: field {name!r} = {value!r} is not a finite number")
    if number < 0 or (upper is not None and number > upper):
        expected = "[0, 1]" if upper == 1.0 else "[0, inf)"
        raise DataError(f"{where}: field {name!r} = {shown!r} is outside {expected}")
    return number


def _text(where: str, name: str, value: object, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise DataError(f"{where}: missing or empty field {name!r} (expected text)")
        return None
    if isinstance(value, dict | list):
        raise DataError(f"{where}: field {name!r} = {value!r} is not text")
    return str(value)


def _outcome(where: str, row: Mapping[str, object]) -> Outcome:
    if "cost_usd" not in row:
        raise DataError(f"{where}: missing field 'cost_usd' (expected a number >= 0)")
    qid = row.get("query_id", row.get("id"))
    numbers: dict[str, float | None] = {}
    for name in _OPTIONAL_NUMBERS:
        value = row.get(name)
        upper = 1.0 if name == "quality" else None
        numbers[name] = None if value in (None, "") else _number(where, name, value, upper=upper)
    if row["cost_usd"] is None:
        raise DataError(f"{where}: field 'cost_usd' is empty (expected a number >= 0)")
    return Outcome(
        query_id=str(_text(where, "query_id", qid, required=True)),
        prompt=str(_text(where, "prompt", row.get("prompt"), required=True)),
        llm=str(_text(where, "llm", row.get("llm"), required=True)),
        cost_usd=_number(where, "cost_usd", row["cost_usd"]),
        task=_text(where, "task", row.get("task"), required=False),
        response=_text(where, "response", row.get("response"), required=False),
        domain=_text(where, "domain", row.get("domain"), required=False),
        **numbers,
    )


def _read_outcomes(path: Path) -> list[Outcome]:
    rows = (
        jsonl_objects(path)
        if path.suffix.lower() == ".jsonl"
        else csv_records(path, check_header=_check_long_header(path))
    )
    outcomes: list[Outcome] = []
    cells: dict[tuple[str, str], int] = {}
    prompts: dict[str, tuple[str, int]] = {}
    ignored: set[str] = set()
    for lineno, row in rows:
        where = f"{path} line {lineno}"
        o = _outcome(where, row)
        ignored.update(k for k in row if k not in LONG_FIELDS and k != "id")
        first = cells.setdefault((o.query_id, o.llm), lineno)
        if first != lineno:
            raise DataError(
                f"{where}: duplicate outcome for query {o.query_id!r} and LLM {o.llm!r} "
                f"(first on line {first})"
            )
        prompt, line0 = prompts.setdefault(o.query_id, (o.prompt, lineno))
        if prompt != o.prompt:
            raise DataError(
                f"{where}: query {o.query_id!r} has a different prompt than on line {line0}"
            )
        outcomes.append(o)
    if ignored:
        logger.warning("%s: ignored unknown field(s) %s", path, sorted(ignored))
    return outcomes


def load_longform(path: str | Path, *, tokenize: bool = False) -> Dataset:
    """Load a long-layout ``.jsonl`` or ``.csv`` file (one line per query × LLM).

    Parameters
    ----------
    path:
        The file.
    tokenize:
        Count missing prompt tokens from the prompts and missing output tokens from the
        responses with :func:`~mixllm.data.tokens.count_tokens`.

    Returns
    -------
    Dataset
        With per-LLM prices fitted to the costs where token counts are known, each line with
        its own ``prompt_tokens`` (LLMs with different tokenizers count the same prompt
        differently). A query's ``prompt_tokens`` (what a router prices a new prompt with) is
        the median of its lines' values.

    Raises
    ------
    DataError
        Naming the file, line and field: bad JSON, a missing field, a non-numeric or negative
        number, a quality outside [0, 1], a duplicate (query, LLM) line, a query with two
        different prompts, an empty or missing file, or an unknown suffix.
    """
    path = Path(path)
    if path.suffix.lower() not in LONG_SUFFIXES:
        raise DataError(f"{path}: unknown long format {path.suffix!r}; expected .jsonl or .csv")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    outcomes = _read_outcomes(path)
    if not outcomes:
        raise DataError(f"{path}: no outcomes (the file is empty)")
    ds = Dataset.from_outcomes(outcomes, name=path.stem)
    lines = _prompt_token_grid(ds, outcomes)
    ds = ds.with_tokens(_median_per_query(lines), ds.output_tokens)
    if tokenize:
        ds = _fill_tokens(ds)
    lines = np.where(np.isnan(lines), ds.prompt_tokens[:, None], lines)
    fits = fit_prices(ds, prompt_tokens=lines)
    return ds.with_prices(fitted_llms(fits, source=str(path)))


def _prompt_token_grid(ds: Dataset, outcomes: Sequence[Outcome]) -> FloatArray:
    """Each line's own ``prompt_tokens``, shape (queries, LLMs); ``NaN`` where not given."""
    rows = {str(q): i for i, q in enumerate(ds.query_ids)}
    cols = {m: j for j, m in enumerate(ds.llms)}
    grid = np.full((len(ds), ds.n_llms), np.nan)
    for o in outcomes:
        if o.prompt_tokens is not None:
            grid[rows[o.query_id], cols[o.llm]] = o.prompt_tokens
    return grid


def _median_per_query(grid: FloatArray) -> FloatArray:
    """The median of each row's known values (``NaN`` for a row with none)."""
    out = np.full(grid.shape[0], np.nan)
    for i, row in enumerate(grid):
        known = row[np.isfinite(row)]
        if known.size:
            out[i] = float(np.median(known))
    return out


def _fill_tokens(ds: Dataset) -> Dataset:
    prompt_tokens = ds.prompt_tokens.copy()
    gaps = np.isnan(prompt_tokens)
    prompt_tokens[gaps] = count_tokens([str(p) for p in ds.prompts[gaps]])
    output_tokens = ds.output_tokens.copy()
    if ds.responses is not None:
        known = np.array([r is not None for r in ds.responses.ravel()]).reshape(ds.responses.shape)
        fill = known & np.isnan(output_tokens)
        output_tokens[fill] = count_tokens([str(r) for r in ds.responses[fill]])
    return ds.with_tokens(prompt_tokens, output_tokens)


def _record(o: Outcome) -> dict[str, object]:
    row: dict[str, object] = {f: getattr(o, f) for f in LONG_FIELDS}
    for name in _TOKEN_FIELDS:
        value = row[name]
        if isinstance(value, float) and value.is_integer():
            row[name] = int(value)
    return row


def write_longform(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` in the long layout (``.jsonl`` or ``.csv`` by suffix); returns the path.

    Cells with neither cost nor quality (missing outcomes) are left out; a cell with a quality
    but no cost cannot be written (``cost_usd`` is required) and raises ``DataError``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in LONG_SUFFIXES:
        raise DataError(f"{path}: unknown long format {path.suffix!r}; expected .jsonl or .csv")
    records: list[dict[str, object]] = []
    for o in ds.outcomes():
        if o.cost_usd is None:
            if o.quality is not None:
                raise DataError(
                    f"{ds.name}: query {o.query_id!r}, LLM {o.llm!r} has a quality but no cost; "
                    "the long layout needs cost_usd"
                )
            continue
        records.append(_record(o))
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as f:
            for r in records:
                f.write(
                    json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False)
                )
                f.write("\n")
    else:
        with path.open("w", encoding="utf-8", newline="") as f:
            # The domain column only when the dataset has domains (older readers know the rest).
            fields = [c for c in LONG_FIELDS if c != "domain" or ds.domains is not None]
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(
                {k: ("" if v is None else v) for k, v in r.items() if k in fields} for r in records
            )
    return path
