"""Rule graders: what they read from a reply, and their agreement with recorded outcomes."""

from __future__ import annotations

import ast
import csv
import math
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixllm.errors import ConfigError, DataError
from mixllm.grade import (
    GRADERS,
    check_grader,
    extract_choice,
    extract_number,
    grade,
    normalise_text,
)


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("The answer is (C).", "C"),
        ("C) Paris", "C"),
        ("Answer: c", "C"),
        ("B", "B"),
        ("b", "B"),
        ("B\n", "B"),
        ("(D)", "D"),
        ("**A**", "A"),
        ("A. 3 metres", "A"),
        ("The correct option is **B**, because the others are wrong.", "B"),
        ("A looks tempting and so does B, but the answer is D.", "D"),
        ("I first thought the answer is A. On reflection, the answer is C.", "C"),
        ("Final answer: \\boxed{E}", "E"),
        ("Answer:\nB", "B"),
        ("Between (A) and (B) I pick... my answer: (B)", "B"),
        ("It must be (H), the eighth option.", "H"),
        ("I think B is correct.", "B"),
        ("The answer is a trick: there is none.", None),
        ("I do not know.", None),
        ("A or B, hard to say.", None),
        ("", None),
    ],
)
def test_extract_choice(reply: str, letter: str | None) -> None:
    assert extract_choice(reply) == letter


@pytest.mark.parametrize(
    ("reply", "number"),
    [
        ("42", 42.0),
        ("She makes 9 * $2 = $18 a day.\n#### 18", 18.0),
        ("#### 1,234", 1234.0),
        ("so the result is $\\boxed{42}$ dollars, not 41", 42.0),
        ("$\\boxed{\\frac{3}{4}}$", 0.75),
        ("$\\boxed{-\\dfrac{1}{2}}$", -0.5),
        ("\\boxed{1{,}000}", 1000.0),
        ("It costs $1,234.50 in total.", 1234.5),
        ("the answer is -3.5, since 2 + 1.5 = 3.5", -3.5),
        ("Answer: 3/4 of the cake", 0.75),
        ("The final answer is 12 apples (6 * 2).", 12.0),
        ("The temperature fell to −7 degrees.", -7.0),
        ("x = 1e-3", 0.001),
        ("First 3, then 5, finally 8.", 8.0),
        ("about 2.5%", 2.5),
        ("In 2024 there were 3 cats.", 3.0),
        ("no number here", None),
        ("", None),
    ],
)
def test_extract_number(reply: str, number: float | None) -> None:
    got = extract_number(reply)
    if number is None:
        assert got is None
    else:
        assert got == pytest.approx(number, rel=1e-12)


@pytest.mark.parametrize(
    ("answer", "reference", "grader", "quality"),
    [
        ("Answer: B", "B", "auto", 1.0),
        ("Answer: B", "C", "auto", 0.0),
        ("Answer: B", "(B)", "choice", 1.0),
        ("The total is 1,000.", "1000", "auto", 1.0),
        ("The total is 1000.5", "1000", "auto", 0.0),
        ("The total is 1000.05", "1000", "number", 1.0),  # within rel_tol=1e-4
        ("0.33", "1/3", "number", 0.0),
        ("0.33333", "1/3", "number", 1.0),  # within rel_tol=1e-4
        ("So 16 - 7 = 9 eggs sell for $18.", "16 - 7 = 9 eggs; 9 * 2 = 18\n#### 18", "auto", 1.0),
        ("The Eiffel Tower.", "eiffel tower", "auto", 1.0),
        ("The Eiffel Tower.", "eiffel tower", "exact", 0.0),
        ("  eiffel tower\n", "eiffel tower", "exact", 1.0),
        ("Eiffel Tower", "Louvre", "normalised", 0.0),
        ("An apple, a day!", "apple day", "normalised", 1.0),
        ("C", "C", "exact", 1.0),
    ],
)
def test_grade(answer: str, reference: str, grader: str, quality: float) -> None:
    assert grade(answer, reference, grader) == quality


def test_number_tolerances_are_the_callers() -> None:
    assert grade("3.14", "3.14159", "number") == 0.0
    assert grade("3.14", "3.14159", "number", rel_tol=1e-3) == 1.0
    assert grade("0.0000001", "0", "number") == 1.0  # abs_tol=1e-6
    assert grade("0.001", "0", "number") == 0.0
    assert grade("0.001", "0", "number", abs_tol=0.01) == 1.0


def test_auto_picks_by_reference() -> None:
    # "A" is a choice letter, "K" is not: as text, "k" is not "a k"
    assert grade("The answer is A", "A") == 1.0
    assert grade("The answer is K", "K") == 0.0
    assert grade("k", "K") == 1.0
    assert grade("The answer is 7.", "7") == 1.0
    assert grade("seven", "7") == 0.0


def test_unknown_grader_names_it_and_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="'numbr'") as info:
        grade("1", "1", "numbr")
    assert all(name in str(info.value) for name in GRADERS)
    with pytest.raises(ConfigError, match="'regex'"):
        check_grader("regex")
    assert [check_grader(name) for name in GRADERS] == list(GRADERS)


def test_a_reference_the_grader_cannot_read_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no choice letter"):
        grade("A", "none of them", "choice")
    with pytest.raises(DataError, match="no number"):
        grade("1", "one", "number")


def test_normalise_text() -> None:
    assert normalise_text("The  quick, brown fox!") == "quick brown fox"
    assert normalise_text("¿Qué tal?") == "qué tal"
    assert normalise_text("Theatre an annex") == "theatre annex"  # only whole articles go
    assert normalise_text("...") == ""


@settings(max_examples=200, deadline=None)
@given(
    answer=st.text(max_size=60),
    reference=st.sampled_from(["B", "42", "-3.5", "3/4", "Paris", "the Eiffel tower", "#### 7"]),
    grader=st.sampled_from(["auto", "exact", "normalised"]),
)
def test_grade_is_zero_or_one_on_any_answer(answer: str, reference: str, grader: str) -> None:
    assert grade(answer, reference, grader) in (0.0, 1.0)
    assert grade(reference, reference, grader) == 1.0


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False).map(lambda x: round(x, 4)))
def test_a_number_reads_back(value: float) -> None:
    text = f"After some work, the answer is {value:,.4f}."
    got = extract_number(text)
    assert got is not None
    assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9)


def _cell(text: str) -> str:
    """RouterBench stores each text as a stringified list of strings."""
    return "".join(ast.literal_eval(text))


def test_choice_grader_agrees_with_routerbench_arc(data_dir: Path) -> None:
    """On ARC-Challenge, the letter the correct models picked, graded against every model's
    answer, reproduces RouterBench's recorded 0/1 quality."""
    csv.field_size_limit(sys.maxsize)
    with (data_dir / "routerbench" / "routerbench_0shot_subset.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_name"] == "arc-challenge"]
    models = [c[: -len("|model_response")] for c in rows[0] if c.endswith("|model_response")]
    agree = total = 0
    for row in rows[:400]:
        picked = Counter(
            extract_choice(_cell(row[f"{m}|model_response"])) for m in models if row[m] == "1.0"
        )
        picked.pop(None, None)
        if not picked:
            continue
        gold = picked.most_common(1)[0][0]
        for m in models:
            if row[m] in ("0.0", "1.0"):
                quality = grade(_cell(row[f"{m}|model_response"]), gold, "choice")
                agree += quality == float(row[m])
                total += 1
    assert total > 3000
    assert agree / total > 0.99


def test_number_grader_agrees_with_routellm_gsm8k(data_dir: Path) -> None:
    """Where RouteLLM records both models right on GSM8K, one ending "#### N" and the other in
    prose, their final numbers agree; where only one is right, they mostly differ."""
    strong, weak = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
    with (data_dir / "routellm" / "gsm8k" / "gsm8k_responses.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    same: dict[bool, list[bool]] = {True: [], False: []}
    for row in rows:
        a = extract_number(row[f"{strong}_response"])
        b = extract_number(row[f"{weak}_response"])
        both_right = row[strong] == row[weak] == "True"
        if both_right or row[strong] != row[weak]:
            agree = a is not None and b is not None and math.isclose(a, b, rel_tol=1e-4)
            same[both_right].append(agree)
    assert len(same[True]) > 500
    assert len(same[False]) > 300
    assert sum(same[True]) / len(same[True]) > 0.98
    assert sum(same[False]) / len(same[False]) < 0.1
