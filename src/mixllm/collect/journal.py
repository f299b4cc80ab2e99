"""The files of a collection run, written so that a run can be killed at any moment and resumed.

For an output ``OUT`` (``outcomes.jsonl``):

- ``OUT``: the finished rows, in the long layout (:mod:`mixllm.data.longform`);
- ``OUT.answers.jsonl``: every answer, written before it is graded, so a run killed between an
  answer and its grade grades it on the next run without asking the LLM again;
- ``OUT.judge.jsonl``: every judgement (its calls, replies, score or verdict and cost); one that
  finished is reused on the next run, so a judge is not asked twice either;
- ``OUT.errors.jsonl``: the pairs that failed in the latest run (they are tried again next run).

Each record is one line appended with a single ``write`` followed by ``fsync``. On resume, a last
line that is cut short (no line break, or not JSON) is removed; a bad line elsewhere is a
:class:`~mixllm.errors.DataError`, as is a record whose prompt differs from the prompt of the same
query id in this run's prompts (the output was made from other prompts).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixllm.errors import DataError

__all__ = ["Journal", "Resumed", "pair_key"]

Pair = tuple[str, str]  # (query_id, llm)


def pair_key(record: Mapping[str, Any]) -> Pair:
    return str(record["query_id"]), str(record["llm"])


@dataclass
class Resumed:
    """What earlier runs left: rows written, answers journaled, judgements made, money spent."""

    rows: dict[Pair, dict[str, Any]] = field(default_factory=dict)
    answers: dict[Pair, dict[str, Any]] = field(default_factory=dict)
    judgements: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    spent_usd: float = 0.0
    judge_spent_usd: float = 0.0

    def answer_text(self, pair: Pair) -> str | None:
        """The recorded answer of a pair (journal or row), if any."""
        found = self.answers.get(pair) or self.rows.get(pair)
        return None if found is None else str(found.get("response") or "")


class Journal:
    """Append-only, fsynced JSONL files next to the output ``out``."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.answers = self.out.with_name(self.out.name + ".answers.jsonl")
        self.judge = self.out.with_name(self.out.name + ".judge.jsonl")
        self.errors = self.out.with_name(self.out.name + ".errors.jsonl")
        self._fds: dict[Path, int] = {}

    def resume(self, prompts: Mapping[str, str]) -> Resumed:
        """Read what earlier runs wrote (cutting off a torn last line), check it against
        ``prompts`` (query id -> prompt) and add up what it cost."""
        state = Resumed()
        for path, target in ((self.out, state.rows), (self.answers, state.answers)):
            for lineno, record in _records(path):
                _check(path, lineno, record, prompts, ("query_id", "llm", "prompt"))
                target.setdefault(pair_key(record), record)
        for lineno, record in _records(self.judge):
            _check(self.judge, lineno, record, prompts, ("query_id", "llm", "judge"))
            cost = _cost(self.judge, lineno, record)
            state.judge_spent_usd += cost
            if record.get("complete"):
                key = (str(record["query_id"]), str(record["llm"]), str(record["judge"]))
                state.judgements[key] = record
        answer_cost = 0.0
        for pair in {*state.rows, *state.answers}:
            record = state.answers.get(pair) or state.rows[pair]
            answer_cost += _cost(self.answers if pair in state.answers else self.out, 0, record)
        state.spent_usd = answer_cost + state.judge_spent_usd
        return state

    def start_errors(self) -> None:
        """Empty the errors file: it lists the failures of the run that starts."""
        self.errors.parent.mkdir(parents=True, exist_ok=True)
        self.errors.write_text("", encoding="utf-8")

    def write(self, path: Path, record: Mapping[str, Any]) -> None:
        """Append ``record`` to ``path`` as one line: one ``write`` call, then ``fsync``."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fd = self._fds.get(path)
        if fd is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._fds[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        view = memoryview(data)
        while view:  # a regular file takes it all at once; loop in case it does not
            view = view[os.write(fd, view) :]
        os.fsync(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of a journal file; a torn last line is cut off the file first."""
    if not path.exists():
        return
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last line break: empty unless the last line is torn
    keep = len(data) - len(tail)
    if lines and not tail and not _is_object(lines[-1]):
        keep -= len(lines.pop()) + 1  # a complete-looking but garbled last line
    if keep != len(data):
        with path.open("r+b") as f:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise DataError(
                f"{path} line {lineno}: not a JSON object ({line[:40]!r}); the file was changed "
                "by something other than mixllm collect"
            )
        yield lineno, record


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _check(
    path: Path, lineno: int, record: Mapping[str, Any], prompts: Mapping[str, str],
    fields: tuple[str, ...],
) -> None:  # fmt: skip
    missing = [f for f in fields if record.get(f) in (None, "")]
    if missing:
        raise DataError(f"{path} line {lineno}: missing field(s) {missing}")
    qid, prompt = str(record["query_id"]), record.get("prompt")
    if prompt is not None and qid in prompts and prompts[qid] != prompt:
        raise DataError(
            f"{path} line {lineno}: query {qid!r} has a different prompt than in the prompts "
            "given; this output was collected from other prompts (use another --out)"
        )


def _cost(path: Path, lineno: int, record: Mapping[str, Any]) -> float:
    cost = record.get("cost_usd", 0.0)
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not cost >= 0:
        where = f"{path} line {lineno}" if lineno else str(path)
        raise DataError(f"{where}: field 'cost_usd' = {cost!r}; expected a number >= 0")
    return float(cost)
