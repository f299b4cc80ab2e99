"""LLM-as-a-judge: prompts for a judge LLM and the parsing of its verdicts.

A single-answer judge rates an answer from 1 to 10 (:data:`DEFAULT_JUDGE_TEMPLATE`, verdict
``[[N]]``), mapped to a quality in [0, 1] by :func:`score_to_quality`. A pairwise judge compares
the answer with a baseline's (:data:`PAIRWISE_TEMPLATE`, verdict ``[[A]]``, ``[[B]]`` or
``[[C]]`` for a tie); :func:`judge_pair` asks in both orders, so that a judge that favours one
position scores a tie. The caller supplies ``ask``, an async function that sends a text to the
judge LLM and returns its reply (and counts what it costs). A reply without a verdict is asked
again once; after that the quality is ``None`` (unknown), never 0.
"""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mixllm.errors import ConfigError

__all__ = [
    "DEFAULT_JUDGE_TEMPLATE",
    "NO_REFERENCE",
    "PAIRWISE_TEMPLATE",
    "Ask",
    "Judgement",
    "judge_answer",
    "judge_pair",
    "judge_prompt",
    "load_template",
    "pairwise_quality",
    "parse_score",
    "parse_verdict",
    "score_to_quality",
]

Ask = Callable[[str], Awaitable[str]]
"""An async function that sends a text to the judge LLM and returns its reply."""

NO_REFERENCE = "(none given)"
"""What a template shows in place of a missing reference answer."""

DEFAULT_JUDGE_TEMPLATE = """\
Act as a fair and impartial judge of the answer an AI assistant gave to the user's question \
below. Judge how helpful, relevant, accurate and deep the answer is, and how well it is \
explained. If a reference answer is given, check the assistant's answer against it and count \
every error it reveals. Neither the length of the answer nor its style should sway you. Be as \
objective as you can.

First explain your judgement in a few sentences. Then give your rating, a whole number from \
1 (worst) to 10 (best), strictly in this form: "Rating: [[N]]", for example "Rating: [[4]]".

[Question]
{prompt}

[Reference answer]
{reference}

[The assistant's answer]
{answer}
[End of the assistant's answer]
"""
"""The single-answer judge prompt (MT-Bench style): placeholders ``{prompt}``, ``{answer}``,
``{reference}``; the verdict is ``[[N]]`` with N from 1 to 10."""

PAIRWISE_TEMPLATE = """\
Act as a fair and impartial judge comparing the answers two AI assistants, A and B, gave to \
the user's question below. Choose the assistant that answers it better: weigh how helpful, \
relevant, accurate and deep each answer is. If a reference answer is given, check both answers \
against it. The order in which the answers appear, their length and the assistants' names must \
not sway you. Be as objective as you can.

First compare the two answers in a few sentences. Then give your verdict strictly in this \
form: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, "[[C]]" for a tie.

[Question]
{prompt}

[Reference answer]
{reference}

[Assistant A's answer]
{answer_a}
[End of assistant A's answer]

[Assistant B's answer]
{answer_b}
[End of assistant B's answer]
"""
"""The pairwise judge prompt: placeholders ``{prompt}``, ``{answer_a}``, ``{answer_b}``,
``{reference}``; the verdict is ``[[A]]``, ``[[B]]`` or ``[[C]]`` (a tie)."""

_SINGLE_FIELDS = frozenset({"prompt", "answer", "reference"})
_PAIR_FIELDS = frozenset({"prompt", "answer_a", "answer_b", "reference"})
_SCORE = re.compile(r"\[\[\s*(\d{1,3})\s*\]\]")
_VERDICT = re.compile(r"\[\[\s*([ABCabc])\s*\]\]")


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict on one answer.

    ``quality`` is in [0, 1], or ``None`` when the judge gave no verdict it could read;
    ``score`` the verdict: 1-10 for a single answer, for a pair the two verdicts (``"AB"``: A
    with the answer first, B with it second); ``replies`` every reply, ``attempts`` how many
    times the judge was asked.
    """

    quality: float | None
    score: int | str | None
    replies: tuple[str, ...]
    attempts: int


def _fields(template: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"judge template is malformed: {exc} (escape braces as {{{{ }}}})"
        ) from exc
    return {name for _, name, _, _ in parsed if name is not None}


def _check(template: str, allowed: frozenset[str], required: str) -> str:
    fields = _fields(template)
    unknown = sorted(fields - allowed)
    if unknown:
        raise ConfigError(
            f"judge template has unknown placeholders {unknown}; expected some of {sorted(allowed)}"
        )
    if required not in fields:
        raise ConfigError(f"judge template lacks {{{required}}}; expected {sorted(allowed)}")
    return template


def load_template(path: str | Path, *, pairwise: bool = False) -> str:
    """A judge template read from ``path``, checked for its placeholders.

    A single-answer template must have ``{answer}`` and may have ``{prompt}`` and
    ``{reference}``; a ``pairwise`` one must have ``{answer_a}`` and may have ``{answer_b}``,
    ``{prompt}`` and ``{reference}``. Anything else is a :class:`~mixllm.errors.ConfigError`.
    """
    try:
        template = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read judge template {str(path)!r}: {exc}") from exc
    if pairwise:
        return _check(template, _PAIR_FIELDS, "answer_a")
    return _check(template, _SINGLE_FIELDS, "answer")


def judge_prompt(template: str, *, prompt: str, answer: str, reference: str | None = None) -> str:
    """The text to send to a single-answer judge (a missing reference shows as "(none given)").

    >>> judge_prompt("Q: {prompt} A: {answer} R: {reference}", prompt="2+2?", answer="4")
    'Q: 2+2? A: 4 R: (none given)'
    """
    _check(template, _SINGLE_FIELDS, "answer")
    return template.format(prompt=prompt, answer=answer, reference=_reference(reference))


def _reference(reference: str | None) -> str:
    return NO_REFERENCE if reference is None or not reference.strip() else reference


def parse_score(reply: str) -> int | None:
    """The judge's rating: the last ``[[N]]`` with a whole N from 1 to 10, else ``None``.

    >>> parse_score("Fine but brief. Rating: [[7]]"), parse_score("[[ 3 ]] then [[8]]")
    (7, 8)
    >>> parse_score("[[11]]") is None, parse_score("[[8.5]]") is None
    (True, True)
    """
    scores = [int(m) for m in _SCORE.findall(reply) if 1 <= int(m) <= 10]
    return scores[-1] if scores else None


def score_to_quality(n: int) -> float:
    """A 1-10 rating as a quality in [0, 1]: ``(n - 1) / 9``.

    >>> score_to_quality(1), score_to_quality(10)
    (0.0, 1.0)
    """
    if not 1 <= n <= 10:
        raise ConfigError(f"judge score {n!r}; expected a whole number from 1 to 10")
    return (n - 1) / 9


def parse_verdict(reply: str) -> str | None:
    """A pairwise judge's verdict, the last ``[[A]]``, ``[[B]]`` or ``[[C]]``, else ``None``.

    >>> parse_verdict("B is clearer. [[B]]"), parse_verdict("no verdict") is None
    ('B', True)
    """
    verdicts = _VERDICT.findall(reply)
    return verdicts[-1].upper() if verdicts else None


def pairwise_quality(first: str | None, second: str | None) -> float | None:
    """The quality of an answer judged in both orders against a baseline.

    ``first`` is the verdict with the answer as A, ``second`` with it as B. It wins both: 1.0;
    loses both: 0.0; anything else (ties, or a judge that always picks one position): 0.5;
    ``None`` if either verdict is missing.

    >>> pairwise_quality("A", "B"), pairwise_quality("B", "A"), pairwise_quality("A", "A")
    (1.0, 0.0, 0.5)
    """
    if first is None or second is None:
        return None
    if first == "A" and second == "B":
        return 1.0
    if first == "B" and second == "A":
        return 0.0
    return 0.5


async def _ask_twice(
    ask: Ask, text: str, parse: Callable[[str], int | str | None]
) -> tuple[int | str | None, tuple[str, ...]]:
    """Ask, and ask once more if the reply has no verdict: (verdict, replies)."""
    replies: list[str] = []
    for _ in range(2):
        reply = await ask(text)
        replies.append(reply)
        verdict = parse(reply)
        if verdict is not None:
            return verdict, tuple(replies)
    return None, tuple(replies)


async def judge_answer(
    ask: Ask,
    *,
    template: str = DEFAULT_JUDGE_TEMPLATE,
    prompt: str,
    answer: str,
    reference: str | None = None,
) -> Judgement:
    """Have the judge rate ``answer`` from 1 to 10; the quality is ``(score - 1) / 9``.

    An error raised by ``ask`` propagates. A reply without a rating is asked again once; then
    the quality is ``None``.

    >>> async def judge(text: str) -> str:
    ...     return "Correct and clear. Rating: [[10]]"
    >>> asyncio.run(judge_answer(judge, prompt="2+2?", answer="4")).quality
    1.0
    """
    text = judge_prompt(template, prompt=prompt, answer=answer, reference=reference)
    score, replies = await _ask_twice(ask, text, parse_score)
    quality = score_to_quality(score) if isinstance(score, int) else None
    return Judgement(quality, score, replies, len(replies))


async def judge_pair(
    ask: Ask,
    *,
    template: str = PAIRWISE_TEMPLATE,
    prompt: str,
    answer: str,
    baseline: str,
    reference: str | None = None,
) -> Judgement:
    """Have the judge compare ``answer`` with ``baseline``, in both orders (asked concurrently).

    The quality is :func:`pairwise_quality` of the two verdicts; each order is asked again
    once when its reply has no verdict. An error raised by ``ask`` propagates (after both
    orders are done).

    >>> async def biased(text: str) -> str:
    ...     return "The first is better. [[A]]"
    >>> asyncio.run(judge_pair(biased, prompt="2+2?", answer="4", baseline="5")).quality
    0.5
    """
    _check(template, _PAIR_FIELDS, "answer_a")
    ref = _reference(reference)
    texts = [
        template.format(prompt=prompt, answer_a=a, answer_b=b, reference=ref)
        for a, b in ((answer, baseline), (baseline, answer))
    ]
    outcomes = await asyncio.gather(
        *(_ask_twice(ask, text, parse_verdict) for text in texts), return_exceptions=True
    )
    done: list[tuple[int | str | None, tuple[str, ...]]] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        done.append(outcome)
    (first, replies_1), (second, replies_2) = done
    a = first if isinstance(first, str) else None
    b = second if isinstance(second, str) else None
    quality = pairwise_quality(a, b)
    replies = replies_1 + replies_2
    return Judgement(quality, None if quality is None else f"{a}{b}", replies, len(replies))
