"""One entry point for every data source: a file, a folder, or a named set.

Named sets: ``routerbench`` (``<data>/routerbench/*.csv|parquet``, else an earlier
``mixllm data fetch routerbench`` download), ``routellm-mmlu``, ``routellm-gsm8k`` and
``routellm-mt-bench`` (``<data>/routellm/...``), where ``<data>`` is ``$MIXLLM_DATA_DIR`` or,
when it is unset, the first of :data:`LOCAL_DATA_DIRS` (from the current directory) that holds
the set's ``routerbench`` or ``routellm`` folder. A pickle is read only when the user names its
path (or for the pinned hub download), never one found by looking in a folder.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

from mixllm.data.dataset import Dataset
from mixllm.data.hub import cached_routerbench
from mixllm.data.longform import load_longform
from mixllm.data.routellm import RouteLLMSet, load_routellm, load_routellm_dir
from mixllm.data.routerbench import PICKLE_SUFFIXES, is_routerbench_columns, load_routerbench
from mixllm.data.routerdc import load_routerdc
from mixllm.data.rows import not_utf8
from mixllm.errors import DataError

__all__ = ["DATA_DIR_ENV", "LOCAL_DATA_DIRS", "NAMED_SETS", "data_dir", "load_dataset"]

DATA_DIR_ENV = "MIXLLM_DATA_DIR"
#: Where named sets are looked for when ``MIXLLM_DATA_DIR`` is unset, in this order, from the
#: current directory: a ``data`` folder there, one beside it, and ``../shared/data``.
LOCAL_DATA_DIRS = ("data", "../data", "../shared/data")
_SET_FOLDERS = ("routerbench", "routellm")
_ROUTELLM_NAMES: dict[str, RouteLLMSet] = {
    "routellm-mmlu": "mmlu",
    "routellm-gsm8k": "gsm8k",
    "routellm-mt-bench": "mt_bench",
}
NAMED_SETS = ("routerbench", *_ROUTELLM_NAMES)
_TABLES = (".csv", ".parquet", ".jsonl")
_FORMATS = (
    ".jsonl or .csv (long layout: query_id, prompt, llm, cost_usd, ...), "
    ".csv, .parquet or .pkl (RouterBench wide layout), .json (RouterDC task file), "
    f"a RouteLLM set folder, a folder of RouterDC .json files, or a named set {list(NAMED_SETS)}"
)


def data_dir(
    environ: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    holding: str | None = None,
) -> Path | None:
    """The local data folder: ``MIXLLM_DATA_DIR`` when it is set, else the first of
    :data:`LOCAL_DATA_DIRS` (relative to ``cwd``, default the current directory) that holds a
    ``routerbench`` or ``routellm`` folder (only ``holding``, when given), else ``None``.

    >>> data_dir({"MIXLLM_DATA_DIR": "/data"})
    PosixPath('/data')
    >>> data_dir({}, cwd=Path("/nonexistent")) is None
    True
    """
    value = (os.environ if environ is None else environ).get(DATA_DIR_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    here = Path.cwd() if cwd is None else cwd
    for name in LOCAL_DATA_DIRS:
        folder = here / name
        if any((folder / sub).is_dir() for sub in ([holding] if holding else _SET_FOLDERS)):
            return folder.resolve()
    return None


def _where(root: Path | None) -> str:
    """Where a named set was looked for, for an error message."""
    if root is not None:
        return f"looked in {root}"
    return (
        f"{DATA_DIR_ENV} is unset and none of {list(LOCAL_DATA_DIRS)} (from {Path.cwd()}) "
        f"holds {' or '.join(_SET_FOLDERS)}/"
    )


def load_dataset(
    source: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    allow_pickle: bool | None = None,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load routing data from a file, a folder or a named set.

    Parameters
    ----------
    source:
        A file (``.jsonl``/``.csv`` long layout; ``.csv``/``.parquet``/``.pkl`` RouterBench
        wide layout, told apart by their columns; ``.json`` RouterDC task file, without
        costs), a folder (one RouteLLM set, a folder holding one data file, or a folder of
        RouterDC ``.json`` files and no other data file), or a name in :data:`NAMED_SETS`.
    environ:
        Where to read ``MIXLLM_DATA_DIR`` (default: ``os.environ``); when it is unset, named
        sets are looked for in :data:`LOCAL_DATA_DIRS` (see :func:`data_dir`).
    allow_pickle:
        Whether a ``.pkl`` may be read. Default: yes for a path named explicitly and for the
        pinned hub download (``False`` refuses both); a pickle is never read from a folder.
    cache_dir:
        The Hugging Face cache where ``mixllm data fetch`` put RouterBench (default: HF's).

    Raises
    ------
    DataError
        For a missing file or folder, an unknown format, or a named set that is not available,
        with what to do about it; and for any invalid content (see the loaders).
    """
    allow = True if allow_pickle is None else allow_pickle
    if isinstance(source, str) and source in NAMED_SETS:
        holding = "routellm" if source in _ROUTELLM_NAMES else "routerbench"
        root = data_dir(environ, holding=holding)
        return _load_named(source, root, allow_pickle=allow, cache_dir=cache_dir)
    path = Path(source).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory; expected {_FORMATS}")
    return _load_file(path, allow_pickle=allow)


def _load_file(path: Path, *, allow_pickle: bool) -> Dataset:
    try:
        return _dispatch(path, allow_pickle=allow_pickle)
    except UnicodeDecodeError:
        raise DataError(not_utf8(path)) from None


def _dispatch(path: Path, *, allow_pickle: bool) -> Dataset:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES or suffix == ".parquet":
        return load_routerbench(path, allow_pickle=allow_pickle)
    if suffix == ".jsonl":
        return load_longform(path)
    if suffix == ".json":
        return load_routerdc(path)
    if suffix != ".csv":
        raise DataError(f"{path}: unknown data format {path.suffix!r}; expected {_FORMATS}")
    header = _csv_header(path)
    if "llm" in header:
        return load_longform(path)
    if is_routerbench_columns(header):
        return load_routerbench(path)
    raise DataError(
        f"{path}: unknown CSV layout (columns {header[:8]}); expected a long table with columns "
        "query_id, prompt, llm, cost_usd or a RouterBench table with sample_id and "
        "'<model>|total_cost' columns"
    )


def _csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise DataError(f"{path}: the file is empty")
    return header


def _routellm_set(folder: Path) -> RouteLLMSet | None:
    if any((folder / "responses").glob("mmlu_*.csv")):
        return "mmlu"
    if (folder / "gsm8k_responses.csv").is_file():
        return "gsm8k"
    if (folder / "judgements.jsonl").is_file():
        return "mt_bench"
    return None


def _load_folder(folder: Path) -> Dataset:
    name = _routellm_set(folder)
    if name is not None:
        return load_routellm_dir(name, folder)
    sets = [s for s in ("mmlu", "gsm8k", "mt_bench") if _routellm_set(folder / s) is not None]
    if sets:
        raise DataError(
            f"{folder}: holds the RouteLLM sets {sets}; load one of them, e.g. {folder / sets[0]} "
            f"(or the named sets {list(_ROUTELLM_NAMES)} with MIXLLM_DATA_DIR)"
        )
    has_table = any(p.is_file() and p.suffix.lower() in _TABLES for p in folder.iterdir())
    if not has_table and any(folder.glob("*.json")):
        return load_routerdc(folder)
    return _load_file(_single_table(folder), allow_pickle=False)


def _single_table(folder: Path) -> Path:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _TABLES)
    if len(files) == 1:
        return files[0]
    if files:
        raise DataError(
            f"{folder}: several data files {[p.name for p in files]}; pass the one to load"
        )
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    hint = (
        f"; pickles {pickles} are not read from a folder (they run code when loaded): "
        "pass the file's path to read one you trust"
        if pickles
        else ""
    )
    if (folder / "routerbench").is_dir() or (folder / "routellm").is_dir():
        hint += (
            f"; it looks like a data folder: set {DATA_DIR_ENV}={folder} and load a named set "
            f"{list(NAMED_SETS)}"
        )
    raise DataError(f"{folder}: no data file (.csv, .parquet or .jsonl){hint}")


def _load_named(
    name: str, root: Path | None, *, allow_pickle: bool, cache_dir: str | Path | None
) -> Dataset:
    if root is not None and not root.is_dir():
        raise DataError(f"{DATA_DIR_ENV}={root} is not a directory")
    if name in _ROUTELLM_NAMES:
        folder = None if root is None else root / "routellm"
        if folder is None or not folder.is_dir():
            raise DataError(
                f"{name}: no RouteLLM data; set {DATA_DIR_ENV} to a folder holding "
                "routellm/mmlu, routellm/gsm8k and routellm/mt_bench (a copy of routellm/evals "
                f"from the RouteLLM repository); {_where(root)}"
            )
        return load_routellm(_ROUTELLM_NAMES[name], folder)
    if root is not None and (root / "routerbench").is_dir():
        return _load_file(_single_table(root / "routerbench"), allow_pickle=False)
    cached = cached_routerbench(cache_dir=cache_dir)
    if cached is not None:
        return load_routerbench(cached, allow_pickle=allow_pickle)
    raise DataError(
        "routerbench: no local copy; run `mixllm data fetch routerbench` to download it "
        f"(pinned), or set {DATA_DIR_ENV} to a folder holding routerbench/<file>.csv or "
        f".parquet; {_where(root)}"
    )
