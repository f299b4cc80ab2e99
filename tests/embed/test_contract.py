"""Every embedder honours the :class:`~mixllm.embed.Embedder` contract (style.md rule 11).

Real-model cases are marked slow; they still run in CI and use only a handful of texts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mixllm.embed import (
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    SentenceEmbedder,
    StaticEmbedder,
    make_embedder,
)

TEXTS = [
    "What is the capital of France?",
    "Write a Python function that reverses a linked list.",
    "",
    "   ",
    "Ünïcödé — 日本語のテキスト 🙂",
    "The quick brown fox jumps over the lazy dog. " * 80,
    "What is the capital of France?",
]

Factory = Callable[[pytest.TempPathFactory, Path], Embedder]

FACTORIES: dict[str, Factory] = {
    "hashing": lambda tmp, models: HashingEmbedder(),
    "hashing-32-ngram13": lambda tmp, models: HashingEmbedder(32, ngram_range=(1, 3)),
    "cached-hashing": lambda tmp, models: CachedEmbedder(
        HashingEmbedder(64), cache_dir=tmp.mktemp("cache")
    ),
    "cached-hashing-no-memory": lambda tmp, models: CachedEmbedder(
        HashingEmbedder(64), cache_dir=tmp.mktemp("cache"), memory_items=0
    ),
    "static": lambda tmp, models: StaticEmbedder(cache_dir=models, max_tokens=None),
    "static-max16": lambda tmp, models: StaticEmbedder(cache_dir=models, max_tokens=16),
    "minilm": lambda tmp, models: SentenceEmbedder(),
    "cached-minilm": lambda tmp, models: CachedEmbedder(
        SentenceEmbedder(), cache_dir=tmp.mktemp("cache")
    ),
}
SLOW = {"static", "static-max16", "minilm", "cached-minilm"}
CASES = [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [], id=n) for n in FACTORIES]


@pytest.fixture(scope="module", params=CASES)
def embedder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    name: str = request.param
    # Only static cases pay for the (session-wide, one-time) distillation.
    models = request.getfixturevalue("static_models_dir") if "static" in name else Path()
    return FACTORIES[name](tmp_path_factory, models)


def test_follows_protocol(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder.name, str) and embedder.name
    assert isinstance(embedder.dim, int) and embedder.dim > 0


def test_shape_dtype_and_unit_rows(embedder: Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), embedder.dim)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_same_text_same_vector(embedder: Embedder) -> None:
    first = embedder.embed(TEXTS)
    # rows 0 and 6 of one batch: a model's kernels may round them apart in the last bits
    np.testing.assert_allclose(first[0], first[-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embedder.embed(TEXTS), first, atol=1e-6)


def test_batch_equals_one_by_one(embedder: Embedder) -> None:
    batch = embedder.embed(TEXTS)
    single = np.vstack([embedder.embed([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, single, atol=1e-5)


def test_empty_input(embedder: Embedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, embedder.dim)
    assert out.dtype == np.float32


def test_a_bare_string_is_refused(embedder: Embedder) -> None:
    with pytest.raises(TypeError, match="not one str"):
        embedder.embed("hello")  # type: ignore[arg-type]


def test_related_texts_are_closer(embedder: Embedder) -> None:
    cat, kitten, market = embedder.embed(
        ["the cat sat on the mat", "a cat sat on a mat", "stock markets fell sharply today"]
    )
    assert cat @ kitten > cat @ market


def test_spec_round_trips(embedder: Embedder) -> None:
    spec: str = getattr(embedder, "spec")  # noqa: B009  (not part of the protocol)
    again = make_embedder(spec, cache=False)
    assert again.name == embedder.name
    assert make_embedder(spec).name == embedder.name


def test_fresh_instance_gives_same_vectors(embedder: Embedder) -> None:
    if isinstance(embedder, StaticEmbedder):  # same distilled model folder, new instance
        fresh: Embedder = StaticEmbedder(
            cache_dir=embedder.cache_dir, max_tokens=embedder.max_tokens
        )
    else:
        fresh = make_embedder(getattr(embedder, "spec"), cache=False)  # noqa: B009
    np.testing.assert_allclose(fresh.embed(TEXTS[:3]), embedder.embed(TEXTS[:3]), atol=1e-6)
