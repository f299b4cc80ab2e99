"""Grading: an LLM's answer → a quality in [0, 1], by rule or by a judge LLM.

Rule-based graders (:func:`grade`, names in :data:`GRADERS`): ``choice`` (the letter picked),
``number`` (the final number, within tolerances), ``exact``, ``normalised`` (lower case, no
punctuation or articles), ``code`` (the reference's tests run after the answer's code in a
guarded subprocess, :func:`run_code_tests`) and ``auto``, which picks one from the reference.

LLM-as-a-judge helpers: prompt templates (:data:`DEFAULT_JUDGE_TEMPLATE`, 1-10 ratings;
:data:`PAIRWISE_TEMPLATE`, A/B/tie against a baseline), their parsers, and the async
:func:`judge_answer` and :func:`judge_pair`, which take the function that asks the judge.

This package needs only the standard library.

>>> grade("After simplifying, the answer is (C).", "C")
1.0
>>> grade("#### 1,234", "1234"), grade("The Beatles", "beatles")
(1.0, 1.0)
"""

from __future__ import annotations

from mixllm.grade.graders import (
    GRADERS,
    check_grader,
    extract_choice,
    extract_number,
    grade,
    normalise_text,
)
from mixllm.grade.judge import (
    DEFAULT_JUDGE_TEMPLATE,
    NO_REFERENCE,
    PAIRWISE_TEMPLATE,
    Judgement,
    judge_answer,
    judge_pair,
    judge_prompt,
    load_template,
    pairwise_quality,
    parse_score,
    parse_verdict,
    score_to_quality,
)
from mixllm.grade.sandbox import CodeRun, extract_code, run_code_tests

__all__ = [
    "DEFAULT_JUDGE_TEMPLATE",
    "GRADERS",
    "NO_REFERENCE",
    "PAIRWISE_TEMPLATE",
    "CodeRun",
    "Judgement",
    "check_grader",
    "extract_choice",
    "extract_code",
    "extract_number",
    "grade",
    "judge_answer",
    "judge_pair",
    "judge_prompt",
    "load_template",
    "normalise_text",
    "pairwise_quality",
    "parse_score",
    "parse_verdict",
    "run_code_tests",
    "score_to_quality",
]
