"""Read a file of queries to route: CSV or JSONL with a ``prompt`` field and an id field.

The id field is ``sample_id`` or ``id``; other fields are ignored. A prompt may be plain text or a
RouterBench stringified Python list (``"['part 1', 'part 2']"``), which is parsed safely with
:func:`ast.literal_eval` and joined.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mixllm.data.rows import table_records
from mixllm.errors import DataError

__all__ = ["parse_prompt", "read_queries"]

_ID_FIELDS = ("sample_id", "id")


def parse_prompt(text: str) -> str:
    """Plain text as is; a stringified list of strings parsed (never ``eval``) and joined.

    >>> parse_prompt("['Question: 1+1?', 'Answer:']")
    'Question: 1+1?\\nAnswer:'
    >>> parse_prompt("What is 2+2?")
    'What is 2+2?'
    """
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "\n".join(value)
    return text


def read_queries(path: str | Path) -> tuple[list[str], list[str]]:
    """Return ``(ids, prompts)`` from a CSV or JSONL queries file.

    Raises :class:`~mixllm.errors.DataError` naming the file, line and field for a missing
    file, an unknown format, a missing ``prompt`` or id field, a duplicate id or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such queries file")
    ids: list[str] = []
    prompts: list[str] = []
    seen: dict[str, int] = {}
    for lineno, row in table_records(path, what="queries"):
        id_field = next((f for f in _ID_FIELDS if row.get(f) not in (None, "")), None)
        if id_field is None:
            raise DataError(
                f"{path} line {lineno}: missing id field (expected 'sample_id' or 'id')"
            )
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(
                f"{path} line {lineno}: missing or empty field 'prompt' (expected text)"
            )
        qid = str(row[id_field])
        if qid in seen:
            raise DataError(
                f"{path} line {lineno}: duplicate id {qid!r} (first on line {seen[qid]})"
            )
        seen[qid] = lineno
        ids.append(qid)
        prompts.append(parse_prompt(prompt))
    if not ids:
        raise DataError(f"{path}: no queries (the file is empty)")
    return ids, prompts
