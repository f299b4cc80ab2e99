"""The fast token counter gives the counts of ``len(encode_ordinary(text))``, text for text."""

from __future__ import annotations

import random

import pytest

from mixllm.data import tokens
from mixllm.data.dataset import Dataset

ODD = [
    "",
    " ",
    "<|endoftext|> <|fim_prefix|>",
    "\ud800 lone surrogate \udfff",
    "🙂👨‍👩‍👧 你好世界 e\u0301",
    " " * 5000,
    "\n\r\t" * 1000,
    "x" * 44_999,
]


def test_counter_matches_encode_ordinary(routerbench: Dataset) -> None:
    encoding = tokens._encoding()
    count = tokens._counter(encoding)
    texts = [str(p) for p in routerbench.prompts[:500]] + ODD
    assert [count(t) for t in texts] == [len(encoding.encode_ordinary(t)) for t in texts]


@pytest.mark.parametrize("text", ODD)
def test_count_tokens_of_odd_text(text: str) -> None:
    encoding = tokens._encoding()
    (n,) = tokens.count_tokens([text])
    assert n == len(encoding.encode_ordinary(text))


def _paragraph_fuzz(n: int, seed: int) -> list[str]:
    """Text built from the pieces that the pre-tokenizer treats specially around line breaks."""
    rng = random.Random(seed)
    parts = [
        "\n", "\n\n", "\r\n", "\r", " ", "  ", "\t", "\x0b", "\u00a0", "\u2028", "\u3000",
        "a", "Hello", "123", "4567", ".", ",", "'s", "'RE", "(", "#", "-", "!!", "é", "中", "🙂",
        "\n\n ", " \n\n", "\n\n\n", "\n\n.", "\n\n'll", "\n\n12", "\n\n\u00e9",
    ]  # fmt: skip
    return ["".join(rng.choice(parts) for _ in range(rng.randrange(200))) for _ in range(n)]


def test_paragraph_sums_are_whole_text_counts(routerbench: Dataset) -> None:
    """Counting paragraphs once across texts gives each text's own count."""
    encoding = tokens._encoding()
    texts = [str(p) for p in routerbench.prompts] + ODD + _paragraph_fuzz(5000, seed=0)
    tokens._PARAGRAPHS.clear()
    tokens._count_cached.cache_clear()
    expected = [len(encoding.encode_ordinary(t)) for t in texts]
    assert tokens.count_tokens(texts).astype(int).tolist() == expected
    assert len(tokens._PARAGRAPHS) > 0  # the RouterBench prompts were cut into paragraphs
    tokens._count_cached.cache_clear()  # again, now from memoised paragraphs
    assert tokens.count_tokens(texts).astype(int).tolist() == expected
