from __future__ import annotations

import numpy as np
import pytest

from mixllm.embed import HashingEmbedder
from mixllm.errors import ConfigError


def test_name_spec_and_dim() -> None:
    e = HashingEmbedder()
    assert (e.name, e.spec, e.dim) == ("hashing-256", "hashing:256", 256)
    e = HashingEmbedder(64, ngram_range=(1, 3))
    assert (e.name, e.spec, e.dim) == ("hashing-64-ngram1-3", "hashing:64?ngram=1-3", 64)


@pytest.mark.parametrize("dim", [0, -3, 2.5, True])
def test_rejects_bad_dim(dim: object) -> None:
    with pytest.raises(ConfigError, match="dim"):
        HashingEmbedder(dim)  # type: ignore[arg-type]


@pytest.mark.parametrize("ngram_range", [(0, 1), (2, 1)])
def test_rejects_bad_ngram_range(ngram_range: tuple[int, int]) -> None:
    with pytest.raises(ConfigError, match="ngram_range"):
        HashingEmbedder(ngram_range=ngram_range)


def test_lowercases_and_counts_single_letter_words() -> None:
    e = HashingEmbedder(128)
    a, b, c = e.embed(["Vitamin C", "vitamin c", "vitamin d"])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)


def test_texts_without_words_share_one_unit_vector() -> None:
    out = HashingEmbedder(16).embed(["", "  ", "!?"])
    np.testing.assert_array_equal(out, np.full((3, 16), 0.25, dtype=np.float32))


def test_bigrams_make_word_order_count() -> None:
    unigrams = HashingEmbedder(1024, ngram_range=(1, 1))
    bigrams = HashingEmbedder(1024)
    texts = ["dog bites man", "man bites dog"]
    u = unigrams.embed(texts)
    b = bigrams.embed(texts)
    assert u[0] @ u[1] == pytest.approx(1.0)
    assert b[0] @ b[1] < 0.9


def test_same_vectors_in_another_process() -> None:
    import subprocess
    import sys

    code = (
        "from mixllm.embed import HashingEmbedder; import sys; "
        "sys.stdout.write(HashingEmbedder(8).embed(['route me please']).tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = HashingEmbedder(8).embed(["route me please"]).tobytes().hex()
    assert out.stdout == here
