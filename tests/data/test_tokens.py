from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import numpy as np
import pytest

from mixllm.data import tokens
from mixllm.data.dataset import Dataset
from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError


@pytest.fixture
def fresh_encoding() -> Iterator[None]:
    """Forget the cached encoding before and after the test."""
    tokens._encoding.cache_clear()
    yield
    tokens._encoding.cache_clear()


def test_counts_cl100k_tokens() -> None:
    counts = count_tokens(["hello world", "", "hello world", "<|endoftext|>"])
    assert counts.dtype == np.float64
    assert counts.tolist() == [2.0, 0.0, 2.0, 7.0]


def test_long_texts_are_counted_in_chunks() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 5000  # 225k characters
    (n,) = count_tokens([text])
    assert n == pytest.approx(10 * 5000, rel=1e-3)


def test_counts_every_routerbench_prompt(routerbench: Dataset) -> None:
    prompts = [f"{p} #{i}" for i, p in enumerate(routerbench.prompts)]  # defeat the dedup
    counts = count_tokens(prompts)  # (its speed is measured in benchmarks/decision_time.py)
    assert counts.shape == (len(prompts),) and (counts == np.round(counts)).all()
    assert np.median(counts) > 300


def test_falls_back_to_tiktoken(monkeypatch: pytest.MonkeyPatch, fresh_encoding: None) -> None:
    class Fake:
        def encode_ordinary(self, text: str) -> list[int]:
            return list(range(len(text.split())))

    fake = types.ModuleType("tiktoken")
    fake.get_encoding = lambda name: Fake()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bpe_openai", None)
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    assert count_tokens(["one two three"]).tolist() == [3.0]


def test_no_tokenizer_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, fresh_encoding: None
) -> None:
    monkeypatch.setitem(sys.modules, "bpe_openai", None)
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    with pytest.raises(ConfigError, match=r"pip install 'mixllm\[data\]'"):
        count_tokens(["hi"])
