"""Graders: an answer and its reference → a quality in [0, 1], by rule (no LLM).

``choice`` reads the letter a reply picks (``"The answer is (C)."``), ``number`` the final number
of a reply (``"#### 42"``, ``"\\boxed{42}"``, ``"$1,234.50"``), ``exact`` compares stripped
texts, ``normalised`` compares texts lowercased without punctuation and articles, and ``code``
runs the reference's tests after the reply's code (:mod:`mixllm.grade.sandbox`). ``auto`` picks
one from the reference.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata

from mixllm.errors import ConfigError, DataError
from mixllm.grade.sandbox import extract_code, run_code_tests

__all__ = [
    "GRADERS",
    "check_grader",
    "extract_choice",
    "extract_number",
    "grade",
    "normalise_text",
]

GRADERS = ("auto", "choice", "number", "exact", "normalised", "code")
"""The grader names :func:`grade` understands."""

_LETTERS = "ABCDEFGHIJ"
# "answer is (C)", "Answer: c", "correct option is **B**", "final answer: \boxed{D}"
_STATED = re.compile(
    r"\b(?:answer|choice|option)s?\b[^A-Za-z0-9\n]{0,4}(?:(?:is|would\s+be|=)\b)?"
    r"[^A-Za-z0-9\n]{0,4}(?:(?:option|choice|letter)\s+)?[(\[{*\s]*(?:\\boxed\{|\\text\{)?"
    r"([A-Ja-j])(?![A-Za-z0-9])(.?)",
    re.IGNORECASE,
)
# "C) Paris", "(B) 4", "A.", "D: ...", or the letter alone at the start of the reply
_LEADING = re.compile(r"^[\s*(\[]*([A-J])(?:[)\].:]|\s*$)")
_PARENTHESISED = re.compile(r"\(([A-J])\)")
_BARE = re.compile(r"(?<![A-Za-z0-9'])([A-J])(?![A-Za-z0-9'])(\s+(?!(?:or|and|nor|vs)\b)[a-z])?")

_NUMBER = re.compile(
    r"(?<![\w.])(?P<neg>[-−])?\$?\s?"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d+))?"
    r"(?:/(?P<den>\d+(?:\.\d+)?)(?![\d/]))?"
)
_ANSWER_NUMBER = re.compile(r"\banswer\b[^\n\d−-]{0,40}", re.IGNORECASE)
_FRAC = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def check_grader(name: str) -> str:
    """``name`` if it is a known grader, else :class:`~mixllm.errors.ConfigError`.

    >>> check_grader("number")
    'number'
    """
    if name not in GRADERS:
        raise ConfigError(f"unknown grader {name!r}; expected one of {list(GRADERS)}")
    return name


def extract_choice(text: str) -> str | None:
    """The letter (A-J, upper case) a reply picks, or ``None`` if it picks none.

    The last stated answer wins ("the answer is X", "Answer: X", "option X"); otherwise a reply
    that opens with a letter ("C) Paris", "B"); otherwise the only letter given alone.

    >>> extract_choice("The answer is (C)."), extract_choice("C) Paris")
    ('C', 'C')
    >>> extract_choice("Answer: c"), extract_choice("**B**")
    ('C', 'B')
    >>> extract_choice("Not A but maybe B... the answer is D."), extract_choice("B")
    ('D', 'B')
    >>> extract_choice("I have no idea") is None
    True
    """
    stated = None
    for match in _STATED.finditer(text):
        letter, after = match.group(1), match.group(2)
        # a lower-case letter followed by a word is an article ("the answer is a trick")
        if letter.islower() and after not in ("", ")", "]", "}", "*", ".", ",", ":", ";", "\n"):
            continue
        stated = letter.upper()
    if stated is not None:
        return stated
    leading = _LEADING.match(text)
    if leading:
        return leading.group(1)
    stripped = text.strip().strip("*().[]:").strip()
    if len(stripped) == 1 and stripped.upper() in _LETTERS:
        return stripped.upper()
    found = set(_PARENTHESISED.findall(text))
    if len(found) == 1:
        return str(found.pop())
    # a lone capital letter, not the pronoun "I" or the article "A" before a word
    bare = {m.group(1) for m in _BARE.finditer(text) if not (m.group(1) in "AI" and m.group(2))}
    bare.discard("I")
    return bare.pop() if len(bare) == 1 else None


def _number_value(match: re.Match[str]) -> float:
    value = float(match.group("num").replace(",", ""))
    if match.group("exp"):
        value *= 10.0 ** int(match.group("exp"))
    if match.group("den"):
        den = float(match.group("den"))
        value = value / den if den else math.nan
    return -value if match.group("neg") else value


def _numbers(text: str) -> list[float]:
    return [_number_value(m) for m in _NUMBER.finditer(text)]


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return text[i:]


def _unlatex(text: str) -> str:
    text = _FRAC.sub(r"\1/\2", text).replace("{,}", ",")
    for token in ("\\!", "\\,", "\\%", "\\$", "\\left", "\\right"):
        text = text.replace(token, "")
    return text


def extract_number(text: str) -> float | None:
    """The final number of a reply, or ``None`` if it holds none.

    Looked for in order: after the last ``####`` (GSM8K), in the last ``\\boxed{...}``, after
    the last "answer", then the last number of the text. Thousands separators, a ``$`` sign,
    a leading minus, exponents and fractions such as ``3/4`` are understood.

    >>> extract_number("6 * 7 = 42\\n#### 42"), extract_number("so $\\\\boxed{\\\\frac{3}{4}}$")
    (42.0, 0.75)
    >>> extract_number("It costs $1,234.50."), extract_number("the answer is -3.5, not 2")
    (1234.5, -3.5)
    >>> extract_number("no digits here") is None
    True
    """
    if "####" in text:
        found = _numbers(text[text.rfind("####") + 4 :])
        if found:
            return found[0]
    boxed = _last_boxed(text)
    if boxed is not None:
        found = _numbers(_unlatex(boxed))
        if found:
            return found[-1]
    for match in reversed(list(_ANSWER_NUMBER.finditer(text))):
        found = _numbers(_unlatex(text[match.end() : match.end() + 80].split("\n")[0]))
        if found:
            return found[0]
    found = _numbers(_unlatex(text))
    return found[-1] if found else None


def _as_number(text: str) -> float | None:
    """A reference that is a number and nothing else (``"42"``, ``"-1,234.5"``, ``"3/4"``)."""
    match = _NUMBER.fullmatch(text.strip().rstrip("%").strip())
    return _number_value(match) if match else None


def normalise_text(text: str) -> str:
    """Lower case, without punctuation and the articles a/an/the, single spaces.

    >>> normalise_text("  The Eiffel-Tower, in Paris! ")
    'eiffeltower in paris'
    """
    text = "".join(
        c
        for c in text.lower()
        if c not in _PUNCTUATION and not unicodedata.category(c).startswith("P")
    )
    return " ".join(_ARTICLES.sub(" ", text).split())


def _auto(reference: str) -> str:
    ref = reference.strip()
    if len(ref) == 1 and ref.upper() in _LETTERS:
        return "choice"
    if _as_number(ref) is not None:
        return "number"
    if "####" in ref and _as_number(ref[ref.rfind("####") + 4 :]) is not None:
        return "number"  # a GSM8K solution: working, then "#### <answer>"
    return "normalised"


def grade(
    answer: str,
    reference: str,
    grader: str = "auto",
    *,
    rel_tol: float = 1e-4,
    abs_tol: float = 1e-6,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
) -> float:
    """The quality of ``answer`` against ``reference``: 1.0 right, 0.0 wrong.

    Parameters
    ----------
    answer, reference
        The LLM's reply and the reference answer (for ``code``: Python test code, asserts).
    grader
        One of :data:`GRADERS`. ``auto`` uses ``choice`` when the reference is one letter A-J,
        ``number`` when it is a number (or a GSM8K solution ending in ``#### <number>``), else
        ``normalised``.
    rel_tol, abs_tol
        Tolerances of ``number`` (as in :func:`math.isclose`).
    timeout_s, memory_mb
        Limits of ``code``'s sandboxed run (:func:`~mixllm.grade.run_code_tests`).

    >>> grade("The answer is (B).", "B"), grade("So x = 3.50", "3.5"), grade("Paris.", "paris")
    (1.0, 1.0, 1.0)
    >>> grade("42", "41", "number")
    0.0
    """
    kind = check_grader(grader)
    if kind == "auto":
        kind = _auto(reference)
    if kind == "exact":
        return float(answer.strip() == reference.strip())
    if kind == "normalised":
        return float(normalise_text(answer) == normalise_text(reference))
    if kind == "choice":
        expected = extract_choice(reference)
        if expected is None:
            raise DataError(f"reference {reference[:80]!r} names no choice letter A-J")
        return float(extract_choice(answer) == expected)
    if kind == "number":
        target = _as_number(reference)
        target = extract_number(reference) if target is None else target
        if target is None:
            raise DataError(f"reference {reference[:80]!r} holds no number")
        got = extract_number(answer)
        return float(
            got is not None and math.isclose(got, target, rel_tol=rel_tol, abs_tol=abs_tol)
        )
    run = run_code_tests(extract_code(answer), reference, timeout_s=timeout_s, memory_mb=memory_mb)
    return float(run.passed)
