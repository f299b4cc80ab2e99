"""The prompts to collect outcomes for: read from JSONL or CSV, sampled, written back.

A prompts file has one row per query: ``query_id`` (or ``id``), ``prompt``, and optionally
``reference`` (the expected answer, for the graders of :mod:`mixllm.grade`), ``task`` and
``grader`` (this row's grader, overriding ``--grader``). Other fields are ignored. Every problem is
a :class:`~mixllm.errors.DataError` naming the file, the line and the field.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
>>> _ = path.write_text('{"id": 1, "prompt": "2+2?", "reference": "4"}\\n')
>>> read_prompts(path)
[PromptRow(query_id='1', prompt='2+2?', reference='4', task=None, grader=None)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixllm.data.dataset import Dataset
from mixllm.data.rows import table_records
from mixllm.errors import ConfigError, DataError

__all__ = [
    "JUDGE",
    "NO_GRADE",
    "PromptRow",
    "check_grader_choice",
    "dataset_prompts",
    "grader_choices",
    "read_prompts",
    "sample_prompts",
    "write_prompts",
]

#: Besides the graders of :data:`mixllm.grade.GRADERS`: the LLM judge, or no grade at all.
JUDGE, NO_GRADE = "judge", "none"


@dataclass(frozen=True)
class PromptRow:
    """One query to send to every LLM of the pool."""

    query_id: str
    prompt: str
    reference: str | None = None
    task: str | None = None
    grader: str | None = None


def grader_choices() -> tuple[str, ...]:
    """Every grader name a row or ``--grader`` may give."""
    from mixllm.grade import GRADERS

    return (*GRADERS, JUDGE, NO_GRADE)


def check_grader_choice(name: str, *, where: str = "--grader") -> str:
    """``name`` if it names a grader, ``"judge"`` or ``"none"``; else a ConfigError naming it."""
    choices = grader_choices()
    if name not in choices:
        raise ConfigError(f"{where}: unknown grader {name!r}; expected one of {list(choices)}")
    return name


def _text(where: str, name: str, value: object, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise DataError(f"{where}: missing or empty field {name!r} (expected text)")
        return None
    if isinstance(value, dict | list | bool):
        raise DataError(f"{where}: field {name!r} = {value!r} is not text")
    return str(value)


def read_prompts(path: str | Path) -> list[PromptRow]:
    """The rows of a prompts file (JSONL or CSV), in file order.

    Raises
    ------
    DataError
        Naming the file, the line and the field: a missing file, an unknown suffix, invalid
        JSON, a missing id or prompt, a field that is not text, an unknown grader, a duplicate
        query id, or no rows at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such prompts file")
    rows: list[PromptRow] = []
    seen: dict[str, int] = {}
    choices = grader_choices()
    for lineno, raw in table_records(path, what="prompts"):
        where = f"{path} line {lineno}"
        qid_field = "query_id" if raw.get("query_id") not in (None, "") else "id"
        qid = _text(where, "query_id", raw.get(qid_field), required=True)
        assert qid is not None
        if isinstance(raw.get(qid_field), float):
            raise DataError(f"{where}: field {qid_field!r} = {raw[qid_field]!r} is not an id")
        prompt = _text(where, "prompt", raw.get("prompt"), required=True)
        assert prompt is not None
        if not prompt.strip():
            raise DataError(f"{where}: field 'prompt' is blank (expected text)")
        grader = _text(where, "grader", raw.get("grader"), required=False)
        if grader is not None and grader not in choices:
            raise DataError(
                f"{where}: field 'grader' = {grader!r} is not a grader; expected one of "
                f"{list(choices)}"
            )
        if qid in seen:
            raise DataError(f"{where}: duplicate query id {qid!r} (first on line {seen[qid]})")
        seen[qid] = lineno
        rows.append(
            PromptRow(
                query_id=qid,
                prompt=prompt,
                reference=_text(where, "reference", raw.get("reference"), required=False),
                task=_text(where, "task", raw.get("task"), required=False),
                grader=grader,
            )
        )
    if not rows:
        raise DataError(f"{path}: no prompts (the file is empty)")
    return rows


def sample_prompts(rows: Sequence[PromptRow], n: int | None, *, seed: int = 0) -> list[PromptRow]:
    """A seeded sample of ``n`` rows in file order (all of them when ``n`` is ``None`` or at
    least their number); the same seed gives the same sample, so a rerun resumes it.

    >>> rows = [PromptRow(str(i), f"p{i}") for i in range(10)]
    >>> [r.query_id for r in sample_prompts(rows, 3, seed=1)] == [
    ...     r.query_id for r in sample_prompts(rows, 3, seed=1)]
    True
    """
    if n is None or n >= len(rows):
        return list(rows)
    if isinstance(n, bool) or n < 1:
        raise ConfigError(f"--sample {n!r}; expected a number of prompts >= 1")
    picked = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    return [rows[i] for i in sorted(picked.tolist())]


def dataset_prompts(ds: Dataset) -> list[PromptRow]:
    """The queries of a dataset (id, prompt, task) as prompt rows."""
    return [
        PromptRow(str(q), str(p), task=None if t is None or t == "" else str(t))
        for q, p, t in zip(ds.query_ids, ds.prompts, ds.tasks)
    ]


def write_prompts(rows: Sequence[PromptRow], path: str | Path) -> Path:
    """Write ``rows`` as JSONL (fields that are ``None`` left out), through a temporary file
    renamed into place, so ``path`` is never half-written."""
    path = Path(path)
    if path.suffix.lower() != ".jsonl":
        raise ConfigError(f"{path}: prompts are written as JSONL; expected a .jsonl path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            record = {
                "query_id": r.query_id, "prompt": r.prompt, "reference": r.reference,
                "task": r.task, "grader": r.grader,
            }  # fmt: skip
            f.write(json.dumps({k: v for k, v in record.items() if v is not None}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path
