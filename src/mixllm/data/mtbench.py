"""Read RouteLLM's MT-Bench judgements: questions, answers and GPT-4 judge scores per model.

``judgements.jsonl`` (FastChat's ``llm_judge`` output) holds one line per question × turn ×
model with the judge's prompt, which embeds the question(s) and the model's answer(s), and its
``score`` (1-10; -1 when the judge gave none). The texts are taken from that prompt, so no
``question.jsonl`` is needed. Categories follow MT-Bench's fixed id ranges (81-90 writing, ...).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from mixllm.errors import DataError

__all__ = ["MT_BENCH_CATEGORIES", "MTBenchQuestion", "mt_bench_category", "read_judgements"]

MT_BENCH_CATEGORIES = (
    "writing",
    "roleplay",
    "reasoning",
    "math",
    "coding",
    "extraction",
    "stem",
    "humanities",
)
_SINGLE = re.compile(
    r"\[Question\]\n(?P<q1>.*?)\n\n"
    r"(?:\[The Start of Reference Answer\].*?\[The End of Reference Answer\]\n\n)?"
    r"\[The Start of Assistant's Answer\]\n(?P<a1>.*?)\n\[The End of Assistant's Answer\]",
    re.DOTALL,
)
_CONVERSATION = re.compile(
    r"<\|The Start of Assistant A's Conversation with User\|>\n\n"
    r"### User:\n(?P<q1>.*?)\n\n### Assistant A:\n(?P<a1>.*?)\n\n"
    r"### User:\n(?P<q2>.*?)\n\n### Assistant A:\n(?P<a2>.*?)\n\n"
    r"<\|The End of Assistant A's Conversation with User\|>",
    re.DOTALL,
)
_FIELDS = ("question_id", "model", "turn", "score", "user_prompt")


@dataclass
class MTBenchQuestion:
    """One MT-Bench question: its two turns, each model's answers and judge scores (1-10)."""

    question_id: int
    turns: list[str] = field(default_factory=lambda: ["", ""])
    answers: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)


def mt_bench_category(question_id: int) -> str | None:
    """MT-Bench's category for a question id (81-160, ten per category), else ``None``.

    >>> mt_bench_category(81), mt_bench_category(160), mt_bench_category(7)
    ('writing', 'humanities', None)
    """
    index = (question_id - 81) // 10
    return MT_BENCH_CATEGORIES[index] if 81 <= question_id <= 160 else None


@dataclass(frozen=True)
class _Judgement:
    question_id: int
    model: str
    turn: int
    score: float
    texts: dict[str, str]  # q1, a1 (and q2, a2 for turn 2)


def _parse_line(path: Path, lineno: int, line: str) -> _Judgement:
    where = f"{path} line {lineno}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object")
    missing = [f for f in _FIELDS if f not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}")
    qid, turn, score = row["question_id"], row["turn"], row["score"]
    if isinstance(qid, bool) or not isinstance(qid, int):
        raise DataError(f"{where}: field 'question_id' = {qid!r} is not an integer")
    if turn not in (1, 2) or isinstance(turn, bool):
        raise DataError(f"{where}: field 'turn' = {turn!r}; expected 1 or 2")
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise DataError(f"{where}: field 'score' = {score!r} is not a number")
    if not (score == -1 or 0 <= score <= 10):
        raise DataError(f"{where}: field 'score' = {score!r} is outside [0, 10] (-1: no score)")
    match = (_CONVERSATION if turn == 2 else _SINGLE).search(str(row["user_prompt"]))
    if match is None:
        raise DataError(
            f"{where}: cannot find the question and answer of turn {turn} in field "
            "'user_prompt' (expected FastChat's judge prompt)"
        )
    return _Judgement(qid, str(row["model"]), int(turn), float(score), match.groupdict())


def _add(q: MTBenchQuestion, j: _Judgement) -> None:
    answers = q.answers.setdefault(j.model, ["", ""])
    scores = q.scores.setdefault(j.model, [math.nan, math.nan])
    for t in (0, 1):
        if f"q{t + 1}" in j.texts:
            q.turns[t] = q.turns[t] or j.texts[f"q{t + 1}"]
            answers[t] = answers[t] or j.texts[f"a{t + 1}"]
    scores[j.turn - 1] = j.score if j.score >= 0 else math.nan


def read_judgements(path: Path) -> list[MTBenchQuestion]:
    """Questions in file order, with the texts and scores found in ``judgements.jsonl``.

    Raises :class:`~mixllm.errors.DataError` naming the file and line for bad JSON, a missing
    field, a non-numeric score or a judge prompt without the question and answer in it.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    questions: dict[int, MTBenchQuestion] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                j = _parse_line(path, lineno, line)
                _add(questions.setdefault(j.question_id, MTBenchQuestion(j.question_id)), j)
    if not questions:
        raise DataError(f"{path}: no judgements (the file is empty)")
    return list(questions.values())
