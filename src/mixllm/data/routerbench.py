"""RouterBench's wide table (Hu et al., 2024): the only module that knows its schema.

One row per prompt: ``sample_id``, ``prompt`` (a stringified Python list of strings),
``eval_name`` (the task), and for every LLM ``<model>`` a quality column ``<model>``,
``<model>|total_cost`` (USD) and ``<model>|model_response``. The LLMs are the columns with a
``|total_cost`` partner, so the same code reads the 2,541-row shared subset and the full
36,497-row ``routerbench_0shot.pkl``.

Pickles run code when they are loaded: :func:`load_routerbench` reads one only when called with
``allow_pickle=True`` (the pinned hub download, or a path the user named explicitly).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.data.prices import fit_prices, fitted_llms
from mixllm.data.queries import parse_prompt
from mixllm.data.tokens import count_tokens
from mixllm.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COST_SUFFIX",
    "RESPONSE_SUFFIX",
    "is_routerbench_columns",
    "load_routerbench",
    "routerbench_from_frame",
]

COST_SUFFIX = "|total_cost"
RESPONSE_SUFFIX = "|model_response"
REQUIRED_COLUMNS = ("sample_id", "prompt", "eval_name")
PICKLE_SUFFIXES = (".pkl", ".pickle")
FloatArray = NDArray[np.float64]


def is_routerbench_columns(columns: Iterable[object]) -> bool:
    """True for a wide RouterBench header: a ``sample_id`` column and ``|total_cost`` columns."""
    names = [str(c) for c in columns]
    return "sample_id" in names and any(c.endswith(COST_SUFFIX) for c in names)


def load_routerbench(path: str | Path, *, allow_pickle: bool = False) -> Dataset:
    """Load a RouterBench wide table from ``.csv``, ``.parquet`` or (trusted) ``.pkl``.

    Parameters
    ----------
    path:
        The file.
    allow_pickle:
        Read a ``.pkl`` file. Unpickling runs code from the file, so only pass ``True`` for a
        file you trust, such as the pinned download of
        :func:`~mixllm.data.hub.fetch_routerbench`.

    Returns
    -------
    Dataset
        Quality (blank → ``NaN``), recorded cost, responses, ``cl100k_base`` token counts,
        tasks from ``eval_name``, and per-LLM prices fitted to the recorded costs.

    Raises
    ------
    DataError
        Naming the file (and the row and column where it applies) for an unreadable or empty
        file, a missing column, a duplicate ``sample_id``, a non-numeric or negative cost or a
        quality outside [0, 1].
    """
    path = Path(path)
    frame = _read_table(path, allow_pickle=allow_pickle)
    return routerbench_from_frame(frame, source=str(path), name=path.stem)


def _read_table(path: Path, *, allow_pickle: bool) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise DataError(
            f"{path}: refusing to read a pickle: loading one runs code stored in the file. "
            "Pass allow_pickle=True only for a file you trust (e.g. the pinned download of "
            "`mixllm data fetch routerbench`), or convert it to .parquet or .csv"
        )
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, low_memory=False, dtype={"sample_id": str})
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in PICKLE_SUFFIXES:
            frame = pd.read_pickle(path)
        else:
            raise DataError(
                f"{path}: unknown RouterBench format {suffix!r}; expected .csv, .parquet or .pkl"
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (ValueError, OSError, EOFError, pickle.UnpicklingError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read the table ({exc})") from exc
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"{path}: expected a table (pandas DataFrame), found {type(frame).__name__}"
        )
    return frame


def routerbench_from_frame(frame: pd.DataFrame, *, source: str, name: str) -> Dataset:
    """Build a :class:`Dataset` from a RouterBench wide table already in memory.

    ``source`` names the table in error messages (usually the file path).
    """
    if len(frame) == 0:
        raise DataError(f"{source}: no rows (the table is empty)")
    llms = _llm_columns([str(c) for c in frame.columns], source)
    ids = _sample_ids(frame, source)
    prompts = _texts(frame["prompt"])
    empty = [i for i, p in enumerate(prompts) if p is None]
    if empty:
        raise DataError(f"{source}: {_where(empty[0], ids)}, column 'prompt': the prompt is empty")
    quality = np.stack([_numbers(frame, m, ids, source, upper=1.0) for m in llms], axis=1)
    cost = np.stack([_numbers(frame, m + COST_SUFFIX, ids, source) for m in llms], axis=1)
    responses, output_tokens = _responses(frame, llms)
    prompt_tokens = count_tokens([str(p) for p in prompts])
    tasks = _texts(frame["eval_name"])
    ds = Dataset(
        query_ids=np.array(ids, dtype=object),
        prompts=np.array(prompts, dtype=object),
        llms=tuple(llms),
        quality=quality,
        cost_usd=cost,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        latency_s=np.full(cost.shape, np.nan),
        tasks=np.array(tasks, dtype=object),
        name=name,
        responses=responses,
    )
    return ds.with_prices(fitted_llms(fit_prices(ds), source=source))


def _llm_columns(columns: list[str], source: str) -> list[str]:
    llms = [c[: -len(COST_SUFFIX)] for c in columns if c.endswith(COST_SUFFIX)]
    if not llms:
        raise DataError(
            f"{source}: no LLM columns: expected a quality column '<model>' and a cost column "
            f"'<model>{COST_SUFFIX}' for each LLM; found columns {columns[:8]}"
        )
    missing = [c for c in (*REQUIRED_COLUMNS, *llms) if c not in columns]
    if missing:
        raise DataError(f"{source}: missing required column(s) {missing}")
    return sorted(llms, key=columns.index)


def _where(i: int, ids: list[str] | None) -> str:
    return f"row {i + 1}" + (f" (sample_id {ids[i]!r})" if ids is not None else "")


def _sample_ids(frame: pd.DataFrame, source: str) -> list[str]:
    column = frame["sample_id"]
    blank = np.flatnonzero(column.isna().to_numpy())
    if len(blank):
        raise DataError(f"{source}: {_where(int(blank[0]), None)}: empty sample_id")
    ids = [str(v) for v in column.tolist()]
    first: dict[str, int] = {}
    for i, qid in enumerate(ids):
        if qid in first:
            raise DataError(
                f"{source}: duplicate sample_id {qid!r} (rows {first[qid] + 1} and {i + 1})"
            )
        first[qid] = i
    return ids


def _numbers(
    frame: pd.DataFrame, column: str, ids: list[str], source: str, *, upper: float | None = None
) -> FloatArray:
    """A numeric column; blank cells are ``NaN``; anything else non-numeric is an error."""
    import pandas as pd

    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = raw.notna().to_numpy() & (raw.astype(str).str.strip() != "").to_numpy()
    what = "cost" if column.endswith(COST_SUFFIX) else "quality"
    bad = np.flatnonzero(present & ~np.isfinite(values))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{source}: {_where(i, ids)}, column {column!r}: {what} {raw.iloc[i]!r} is not a number"
        )
    high = np.inf if upper is None else upper
    out = np.flatnonzero((values < 0) | (values > high))
    if len(out):
        i = int(out[0])
        expected = "[0, 1]" if upper is not None else "a number >= 0"
        raise DataError(
            f"{source}: {_where(i, ids)}, column {column!r}: {what} {float(values[i])!r} "
            f"is outside {expected}"
        )
    return values


def _text(value: object) -> str:
    """A cell as text: stringified lists parsed and joined with newlines."""
    if isinstance(value, list | tuple):
        return "\n".join(str(v) for v in value)
    return parse_prompt(value) if isinstance(value, str) else str(value)


def _texts(column: pd.Series[Any]) -> list[str | None]:
    """Each cell of ``column`` as text (see :func:`_text`); blank cells are ``None``."""
    blank = column.isna().to_numpy()
    return [None if b else _text(v) for v, b in zip(column.tolist(), blank, strict=True)]


def _responses(
    frame: pd.DataFrame, llms: list[str]
) -> tuple[NDArray[np.object_] | None, FloatArray]:
    """Parsed responses (``None`` without response columns) and their token counts."""
    n, k = len(frame), len(llms)
    tokens = np.full((n, k), np.nan)
    if not any(m + RESPONSE_SUFFIX in frame.columns for m in llms):
        return None, tokens
    texts = np.full((n, k), None, dtype=object)
    for j, m in enumerate(llms):
        if m + RESPONSE_SUFFIX in frame.columns:
            texts[:, j] = _texts(frame[m + RESPONSE_SUFFIX])
    known = np.array([t is not None for t in texts.ravel()], dtype=bool).reshape(n, k)
    tokens[known] = count_tokens([str(t) for t in texts[known]])
    return texts, tokens
