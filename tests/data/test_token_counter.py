"""The fast token counter gives the counts of ``len(encode_ordinary(text))``, text for text."""

from __future__ import annotations

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
