"""LLM-as-a-judge helpers: templates, verdict parsing, retries and both-order comparisons."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from mixllm.errors import BackendError, ConfigError
from mixllm.grade import (
    DEFAULT_JUDGE_TEMPLATE,
    PAIRWISE_TEMPLATE,
    judge_answer,
    judge_pair,
    judge_prompt,
    load_template,
    pairwise_quality,
    parse_score,
    parse_verdict,
    score_to_quality,
)


class FakeJudge:
    """An async ``ask`` that answers with ``reply(text)`` and records every text it was sent."""

    def __init__(self, reply: Callable[[str], str]) -> None:
        self.reply = reply
        self.texts: list[str] = []

    async def __call__(self, text: str) -> str:
        self.texts.append(text)
        await asyncio.sleep(0)
        return self.reply(text)


def scripted(replies: Iterable[str]) -> FakeJudge:
    queue = list(replies)
    return FakeJudge(lambda _text: queue.pop(0))


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_templates_have_their_placeholders_and_ask_for_the_verdict_format() -> None:
    assert placeholders(DEFAULT_JUDGE_TEMPLATE) == {"prompt", "answer", "reference"}
    assert placeholders(PAIRWISE_TEMPLATE) == {"prompt", "answer_a", "answer_b", "reference"}
    assert "[[N]]" in DEFAULT_JUDGE_TEMPLATE
    assert "1" in DEFAULT_JUDGE_TEMPLATE and "10" in DEFAULT_JUDGE_TEMPLATE
    assert all(v in PAIRWISE_TEMPLATE for v in ("[[A]]", "[[B]]", "[[C]]"))


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Accurate and complete. Rating: [[7]]", 7),
        ("[[1]]", 1),
        ("[[10]]", 10),
        ("[[ 7 ]]", 7),
        ("I said [[3]] at first, but on reflection: [[8]]", 8),
        ("[[6]] overall; the scale tops at [[11]]", 6),
        ("[[11]]", None),
        ("[[0]]", None),
        ("[[8.0]]", None),
        ("[[-3]]", None),
        ("Rating: 7", None),
        ("[7]", None),
        ("", None),
    ],
)
def test_parse_score(reply: str, score: int | None) -> None:
    assert parse_score(reply) == score


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("A is more precise. [[A]]", "A"),
        ("Verdict: [[B]]", "B"),
        ("Equally good: [[C]]", "C"),
        ("[[ b ]]", "B"),
        ("Not [[A]] after all, [[B]]", "B"),
        ("[[D]]", None),
        ("A", None),
    ],
)
def test_parse_verdict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_score_to_quality() -> None:
    assert [score_to_quality(n) for n in (1, 4, 10)] == pytest.approx([0.0, 1 / 3, 1.0])
    for bad in (0, 11):
        with pytest.raises(ConfigError, match=str(bad)):
            score_to_quality(bad)


def test_pairwise_quality_table() -> None:
    table = {
        ("A", "B"): 1.0,
        ("B", "A"): 0.0,
        ("A", "A"): 0.5,
        ("B", "B"): 0.5,
        ("C", "C"): 0.5,
        ("A", "C"): 0.5,
        ("C", "A"): 0.5,
    }
    for (first, second), quality in table.items():
        assert pairwise_quality(first, second) == quality
    assert pairwise_quality(None, "B") is None
    assert pairwise_quality("A", None) is None


def test_judge_prompt_renders_texts_verbatim() -> None:
    text = judge_prompt(
        DEFAULT_JUDGE_TEMPLATE, prompt="Sum {x}?", answer="def f(): return {}", reference="42"
    )
    assert "Sum {x}?" in text and "def f(): return {}" in text and "42" in text
    assert "(none given)" in judge_prompt(DEFAULT_JUDGE_TEMPLATE, prompt="p", answer="a")
    assert "(none given)" in judge_prompt(
        DEFAULT_JUDGE_TEMPLATE, prompt="p", answer="a", reference=" "
    )
    with pytest.raises(ConfigError, match="'score'"):
        judge_prompt("{answer} {score}", prompt="p", answer="a")


def test_load_template(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Q: {prompt}\nA: {answer}\nRate it as [[N]]; {{braces}} are escaped.\n")
    assert load_template(good) == good.read_text()
    pair = tmp_path / "pair.txt"
    pair.write_text("{prompt} {answer_a} {answer_b} {reference}")
    assert load_template(pair, pairwise=True) == pair.read_text()
    cases = {
        "no-answer.txt": ("Q: {prompt}", r"lacks \{answer\}"),
        "unknown.txt": ("{answer} {model}", "'model'"),
        "positional.txt": ("{answer} {0}", "'0'"),
        "attribute.txt": ("{answer.__class__}", "__class__"),
        "malformed.txt": ("{answer} {", "malformed"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_template(tmp_path / name)
    with pytest.raises(ConfigError, match=r"unknown placeholders \['answer'\]"):
        load_template(good, pairwise=True)
    (tmp_path / "half.txt").write_text("{prompt} {answer_b}")
    with pytest.raises(ConfigError, match=r"lacks \{answer_a\}"):
        load_template(tmp_path / "half.txt", pairwise=True)
    with pytest.raises(ConfigError, match="cannot read judge template"):
        load_template(tmp_path / "missing.txt")


def test_judge_answer_first_reply() -> None:
    judge = scripted(["Correct, though terse. Rating: [[8]]"])
    result = asyncio.run(
        judge_answer(
            judge, template=DEFAULT_JUDGE_TEMPLATE, prompt="2+2?", answer="4", reference="4"
        )
    )
    assert result.quality == pytest.approx(7 / 9)
    assert result.score == 8
    assert result.attempts == 1
    assert result.replies == ("Correct, though terse. Rating: [[8]]",)
    assert "2+2?" in judge.texts[0] and "[The assistant's answer]\n4\n" in judge.texts[0]


def test_judge_answer_retries_once_after_an_unreadable_reply() -> None:
    judge = scripted(["I would give it an eight.", "Rating: [[8]]"])
    result = asyncio.run(judge_answer(judge, prompt="2+2?", answer="4"))
    assert (result.score, result.attempts) == (8, 2)
    assert result.quality == pytest.approx(7 / 9)
    assert judge.texts[0] == judge.texts[1]


def test_judge_answer_two_unreadable_replies_give_no_quality() -> None:
    judge = scripted(["An eight.", "Rating: [[8.5]]", "Rating: [[9]]"])
    result = asyncio.run(judge_answer(judge, prompt="2+2?", answer="4"))
    assert result.quality is None  # unknown, not 0
    assert result.score is None
    assert result.attempts == 2
    assert len(judge.texts) == 2


def test_judge_answer_lets_ask_errors_through() -> None:
    async def down(text: str) -> str:
        raise BackendError("judge unreachable", retryable=True)

    with pytest.raises(BackendError, match="judge unreachable"):
        asyncio.run(judge_answer(down, prompt="p", answer="a"))


def first_answer(text: str) -> str:
    return text.split("[Assistant A's answer]\n", 1)[1].split("\n", 1)[0]


def test_judge_pair_position_bias_cancels_out() -> None:
    judge = FakeJudge(lambda _text: "The first one reads better. [[A]]")
    result = asyncio.run(
        judge_pair(judge, prompt="Capital of France?", answer="Paris", baseline="Lyon")
    )
    assert result.quality == 0.5
    assert result.score == "AA"
    assert result.attempts == 2
    assert sorted(first_answer(t) for t in judge.texts) == ["Lyon", "Paris"]


@pytest.mark.parametrize(
    ("better", "quality", "score"), [("Paris", 1.0, "AB"), ("Lyon", 0.0, "BA")]
)
def test_judge_pair_a_consistent_judge(better: str, quality: float, score: str) -> None:
    judge = FakeJudge(lambda text: "[[A]]" if first_answer(text) == better else "[[B]]")
    result = asyncio.run(
        judge_pair(
            judge, prompt="Capital of France?", answer="Paris", baseline="Lyon", reference="Paris"
        )
    )
    assert (result.quality, result.score, result.attempts) == (quality, score, 2)
    assert all("[Reference answer]\nParis\n" in t for t in judge.texts)


def test_judge_pair_tie() -> None:
    result = asyncio.run(
        judge_pair(FakeJudge(lambda _t: "[[C]]"), prompt="p", answer="x", baseline="y")
    )
    assert (result.quality, result.score) == (0.5, "CC")


def test_judge_pair_retries_each_order_then_gives_up() -> None:
    def reply(text: str) -> str:
        return "[[A]]" if first_answer(text) == "x" else "no idea"

    judge = FakeJudge(reply)
    result = asyncio.run(judge_pair(judge, prompt="p", answer="x", baseline="y"))
    assert result.quality is None
    assert result.score is None
    assert result.attempts == 3  # one for the readable order, two for the other
    assert len(result.replies) == 3


def test_judge_pair_lets_ask_errors_through() -> None:
    async def flaky(text: str) -> str:
        if first_answer(text) == "y":
            raise BackendError("rate limited", retryable=True, status=429)
        return "[[A]]"

    with pytest.raises(BackendError, match="rate limited"):
        asyncio.run(judge_pair(flaky, prompt="p", answer="x", baseline="y"))


def test_judge_pair_checks_its_template() -> None:
    with pytest.raises(ConfigError, match="answer_a"):
        asyncio.run(
            judge_pair(scripted([]), template="{answer}", prompt="p", answer="x", baseline="y")
        )
