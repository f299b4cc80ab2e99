"""Read JSONL and CSV files as numbered records, with errors that name the file and the line.

Every text-table reader in :mod:`mixllm.data` (queries, the long format, RouteLLM's lists)
goes through these two functions, so a bad line is reported the same way everywhere.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from mixllm.errors import DataError

__all__ = ["csv_records", "jsonl_objects", "not_utf8", "table_records"]


def not_utf8(path: Path) -> str:
    """The one-line message for a file that is not UTF-8 text: the first bad byte's line and
    offset (read again as bytes: a text reader's error counts from its last buffer).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = p.write_bytes(b"a,b\\n1,\\xff\\n")
    >>> not_utf8(p).split(": ")[1]
    'not UTF-8 text (line 2, byte 6 is 0xff)'
    """
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"line {line}, byte {exc.start} is 0x{data[exc.start]:02x}"
    else:  # pragma: no cover - only called after a decoding error
        where = "undecodable"
    return (
        f"{path}: not UTF-8 text ({where}): a binary file, or text in another encoding? "
        "mixllm reads .csv, .jsonl and .json files as UTF-8"
    )


def jsonl_objects(path: Path) -> Iterator[tuple[int, Mapping[str, object]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file.

    Raises :class:`~mixllm.errors.DataError` for invalid JSON or a line that is not an object.
    """
    with path.open(encoding="utf-8-sig") as f:
        for lineno, line in enumerate(_utf8_lines(path, f), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path} line {lineno}: invalid JSON at column {exc.colno} ({exc.msg})"
                ) from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{path} line {lineno}: expected a JSON object, found {line[:40]!r}"
                )
            yield lineno, row


def _utf8_lines(path: Path, lines: Iterable[str]) -> Iterator[str]:
    """``lines`` of a text file opened as UTF-8; a byte that is not UTF-8 raises a
    :class:`DataError` naming its line, instead of a ``UnicodeDecodeError`` traceback."""
    try:
        yield from lines
    except UnicodeDecodeError:
        raise DataError(not_utf8(path)) from None


def csv_records(
    path: Path, *, check_header: Callable[[Sequence[str]], None] | None = None
) -> Iterator[tuple[int, Mapping[str, object]]]:
    """``(line number, record)`` for each CSV row (line numbers count quoted line breaks).

    Empty cells become ``None``; ``check_header`` may reject the header before any row is read.
    """
    csv.field_size_limit(2**31 - 1)
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(_utf8_lines(path, f))
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
