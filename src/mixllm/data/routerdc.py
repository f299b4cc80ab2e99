"""RouterDC's per-task JSON files (Chen et al., 2024; repository ``shuhao02/RouterDC``, folder
``datasets/split2_model7/``).

Each file is a JSON list of objects ``{"question": str, "scores": {llm: float in [0, 1]}}``;
the task is the file's stem (``gsm8k-test.json`` → ``gsm8k-test``) and the query id is
``<task>-<position in the list>``. An object's optional ``cluster_id`` (RouterDC's own clustering
of the questions) becomes the query's domain ``<task>/c<cluster_id>`` (:attr:`Dataset.domains`;
``None`` where an object has none). Other fields are ignored (logged once per file).
A score of ``null`` is a missing outcome, as is an LLM absent from an object.

The files record no costs (the LLMs are open models). Costs come from ``prices`` (USD per
million tokens, in and out) and the prompt's ``cl100k_base`` token count: with ``output_tokens``
given, cost = prompt tokens × input price + ``output_tokens`` × output price; without it the
answer length is unknown (``NaN``) and cost counts the prompt only (a lower bound). An LLM
without a price has unknown costs (``NaN``; the harness cannot score a set where an LLM has no
cost at all). See ``docs/data-format.md``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from mixllm.data.dataset import Dataset, Outcome
from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError, DataError
from mixllm.types import LLM

__all__ = ["RouterDCPrices", "load_routerdc", "routerdc_files"]

logger = logging.getLogger(__name__)

#: Prices per LLM: an :class:`~mixllm.types.LLM` record or ``(input, output)`` USD per Mtok.
RouterDCPrices = Mapping[str, LLM | tuple[float, float]]
_FIELDS = ("question", "scores", "cluster_id")


def routerdc_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """The ``.json`` files of ``source``: a file, a folder (its ``*.json``, sorted) or a list."""
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix == ".json")
            if not files:
                raise DataError(f"{path}: no RouterDC .json files in this folder")
            return files
        paths = [path]
    else:
        paths = [Path(p).expanduser() for p in source]
    if not paths:
        raise DataError("no RouterDC files given; expected a .json file, a folder or a list")
    for p in paths:
        if not p.is_file():
            raise DataError(f"{p}: no such file (expected a RouterDC .json file)")
    return paths


def _score(where: str, llm: object, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(f"{where}: score for LLM {llm!r} = {value!r} is not a number")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise DataError(f"{where}: score for LLM {llm!r} = {value!r} is outside [0, 1]")
    return float(value)


def _domain(where: str, task: str, value: object) -> str | None:
    """``<task>/c<cluster_id>``, or ``None`` without a cluster id."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise DataError(f"{where}: field 'cluster_id' = {value!r} is not an integer or a label")
    return f"{task}/c{value}"


def _items(path: Path) -> list[object]:
    try:
        with path.open(encoding="utf-8-sig") as f:
            items = json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from None
    if not isinstance(items, list):
        raise DataError(
            f"{path}: expected a JSON list of {{'question', 'scores'}} objects, "
            f"found {type(items).__name__}"
        )
    if not items:
        raise DataError(f"{path}: no questions (the list is empty)")
    return items


Row = tuple[str, str, dict[str, float | None], str | None]


def _read_file(path: Path) -> list[Row]:
    """``(query id, question, scores, domain)`` for each object of one file."""
    rows = []
    ignored: set[str] = set()
    for k, item in enumerate(_items(path)):
        where = f"{path} item {k}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object, found {str(item)[:40]!r}")
        question, scores = item.get("question"), item.get("scores")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: missing or empty field 'question' = {question!r}")
        if not isinstance(scores, dict):
            raise DataError(f"{where}: field 'scores' = {scores!r} is not an object of LLM scores")
        ignored.update(str(f) for f in item if f not in _FIELDS)
        parsed = {str(m): _score(where, m, v) for m, v in scores.items()}
        domain = _domain(where, path.stem, item.get("cluster_id"))
        rows.append((f"{path.stem}-{k}", question, parsed, domain))
    if ignored:
        logger.warning("%s: ignored unknown field(s) %s", path, sorted(ignored))
    return rows


def _price_records(prices: RouterDCPrices | None, llms: Sequence[str]) -> dict[str, LLM]:
    records: dict[str, LLM] = {}
    for name, p in (prices or {}).items():
        pin, pout = (p.price_in_per_mtok, p.price_out_per_mtok) if isinstance(p, LLM) else p
        if not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in (pin, pout)):
            raise ConfigError(
                f"price of LLM {name!r} = {p!r}; expected USD per Mtok (input, output) >= 0"
            )
        records[name] = LLM(name, float(pin), float(pout))
    unknown = sorted(set(records) - set(llms))
    if unknown:
        logger.warning("prices for LLMs %s that the RouterDC files do not have", unknown)
    unpriced = [m for m in llms if m not in records]
    if unpriced and records:  # some priced, not all (no prices at all: the caller prices later)
        logger.warning("no price for LLMs %s; their costs are unknown (NaN)", unpriced)
    return {m: r for m, r in records.items() if m in llms}


def load_routerdc(
    source: str | Path | Sequence[str | Path],
    *,
    prices: RouterDCPrices | None = None,
    output_tokens: float | None = None,
    name: str = "routerdc",
) -> Dataset:
    """Load RouterDC per-task JSON files into one :class:`Dataset` (task = file stem, domain =
    ``<task>/c<cluster_id>`` where an item has a ``cluster_id``).

    Parameters
    ----------
    source:
        A ``.json`` file, a folder (every ``*.json`` in it) or a list of files.
    prices:
        USD per million tokens per LLM, as :class:`~mixllm.types.LLM` records or
        ``(input, output)`` pairs. LLMs without one get ``NaN`` costs.
    output_tokens:
        Assumed answer length in tokens for every (query, LLM); default unknown (``NaN``),
        and then cost counts the prompt tokens only.
    name:
        The dataset's name.

    Raises
    ------
    DataError
        Naming the file and the item: invalid JSON, a top level that is not a list, an item that
        is not an object, a missing or empty ``question``, ``scores`` that is not an object, a
        score that is not a number or is outside [0, 1], a ``cluster_id`` that is neither an
        integer nor a label; a missing file, an empty list or folder.
    ConfigError
        For a negative or non-numeric price or ``output_tokens``.
    """
    if output_tokens is not None and not (
        isinstance(output_tokens, int | float)
        and math.isfinite(output_tokens)
        and output_tokens >= 0
    ):
        raise ConfigError(f"output_tokens={output_tokens!r}; expected a number >= 0 or None")
    rows = [(f.stem, *r) for f in routerdc_files(source) for r in _read_file(f)]
    prompt_tokens = count_tokens([r[2] for r in rows])
    llms = list(dict.fromkeys(m for r in rows for m in r[3]))
    records = _price_records(prices, llms)
    out = None if output_tokens is None else float(output_tokens)
    outcomes = []
    for (task, qid, question, scores, domain), ptok in zip(rows, prompt_tokens.tolist()):
        for m, quality in scores.items():
            if quality is None:
                continue
            price = records.get(m)
            cost = None if price is None else price.cost_usd(ptok, out or 0.0)
            outcomes.append(
                Outcome(qid, question, m, quality, cost, ptok, out, task=task, domain=domain)
            )
    return Dataset.from_outcomes(outcomes, name=name, prices=records)
