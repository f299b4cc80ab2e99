"""Read JSONL and CSV files as numbered records, with errors that name the file and the line.

Every text-table reader in :mod:`mixllm.data` (queries, the long format, RouteLLM's lists)
goes through these two functions, so a bad line is reported the same way everywhere.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from mixllm.errors import DataError

__all__ = ["csv_records", "jsonl_objects", "table_records"]


def jsonl_objects(path: Path) -> Iterator[tuple[int, Mapping[str, object]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file.

    Raises :class:`~mixllm.errors.DataError` for invalid JSON or a line that is not an object.
    """
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{path} line {lineno}: expected a JSON object, found {line[:40]!r}"
                )
            yield lineno, row


def csv_records(
    path: Path, *, check_header: Callable[[Sequence[str]], None] | None = None
) -> Iterator[tuple[int, Mapping[str, object]]]:
    """``(line number, record)`` for each CSV row (line numbers count quoted line breaks).

    Empty cells become ``None``; ``check_header`` may reject the header before any row is read.
    """
    csv.field_size_limit(2**31 - 1)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        if header is None:
            return
        if check_header is not None:
            check_header(header)
        start = reader.line_num + 1
        for row in reader:
            if None in row:
                raise DataError(f"{path} line {start}: more values than the header's columns")
            yield start, {k: (None if v == "" else v) for k, v in row.items()}
            start = reader.line_num + 1


def table_records(path: Path, *, what: str) -> Iterator[tuple[int, Mapping[str, object]]]:
    """The records of a ``.jsonl`` or ``.csv`` file (by its suffix); ``what`` names the file's
    role in the error for any other suffix (``"queries"``, ``"prompts"``)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return jsonl_objects(path)
    if suffix == ".csv":
        return csv_records(path)
    raise DataError(f"{path}: unknown {what} format {suffix!r}; expected .jsonl or .csv")
