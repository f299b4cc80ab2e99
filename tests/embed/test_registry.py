from __future__ import annotations

from pathlib import Path

import pytest

from mixllm.embed import (
    KNOWN_SPECS,
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    SentenceEmbedder,
    StaticEmbedder,
    check_embedder_spec,
    embedder_spec,
    make_embedder,
)
from mixllm.errors import ConfigError
from tests.embed.conftest import CountingEmbedder


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("hashing", HashingEmbedder, "hashing-256"),
        ("hashing:64", HashingEmbedder, "hashing-64"),
        ("hashing:64?ngram=1-3", HashingEmbedder, "hashing-64-ngram1-3"),
        ("static", StaticEmbedder, "static-minilm-max512"),
        ("static?max_tokens=64", StaticEmbedder, "static-minilm-max64"),
        ("static?max_tokens=none", StaticEmbedder, "static-minilm"),
        ("static?max_tokens=64&keep=end", StaticEmbedder, "static-minilm-max64-end"),
        ("static?keep=start", StaticEmbedder, "static-minilm-max512"),
        ("static:/models/potion", StaticEmbedder, "static:/models/potion-max512"),
        (
            "static:C:\\models\\potion?max_tokens=32",
            StaticEmbedder,
            "static:C:\\models\\potion-max32",
        ),
        ("minilm", SentenceEmbedder, "minilm"),
        ("MiniLM", SentenceEmbedder, "minilm"),
        ("minilm?max_seq_length=128", SentenceEmbedder, "minilm-max128"),
        ("sentence:BAAI/bge-small-en-v1.5", SentenceEmbedder, "BAAI/bge-small-en-v1.5"),
        ("sentence:/m/x?max_seq_length=64", SentenceEmbedder, "/m/x-max64"),
    ],
)
def test_every_spec(spec: str, kind: type, name: str) -> None:
    bare = make_embedder(spec, cache=False)
    assert type(bare) is kind
    assert bare.name == name
    cached = make_embedder(spec)
    if kind is HashingEmbedder:
        assert type(cached) is HashingEmbedder  # cheaper than any cache
    else:
        assert isinstance(cached, CachedEmbedder)
        assert type(cached.inner) is kind
    assert cached.name == name
    for e in (bare, cached):
        assert make_embedder(embedder_spec(e), cache=False).name == name
    check_embedder_spec(spec)


EMBEDDERS = [
    HashingEmbedder(),
    HashingEmbedder(17, ngram_range=(2, 4)),
    SentenceEmbedder(),
    SentenceEmbedder("sentence-transformers/all-mpnet-base-v2", max_seq_length=99, device="cuda"),
    StaticEmbedder(),
    StaticEmbedder(max_tokens=None),
    StaticEmbedder("minishlab/potion-base-8M", max_tokens=3),
    CachedEmbedder(StaticEmbedder(max_tokens=7)),
    StaticEmbedder(max_tokens=64, keep="end"),
    StaticEmbedder(keep="end"),
]


@pytest.mark.parametrize("embedder", EMBEDDERS, ids=repr)
def test_spec_round_trips(embedder: Embedder) -> None:
    spec = embedder_spec(embedder)
    again = make_embedder(spec, cache=False)
    assert again.name == embedder.name
    assert embedder_spec(again) == spec


@pytest.mark.parametrize("spec", ["xyz", "word2vec", "", "hash", "sentences:foo", ":64"])
def test_unknown_spec_names_it_and_the_known_ones(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_embedder(spec)
    message = str(info.value)
    assert message == f"unknown embedder {spec!r}; known: {list(KNOWN_SPECS)}"
    assert "'hashing'" in message and "'minilm'" in message and "'static'" in message
    with pytest.raises(ConfigError):
        check_embedder_spec(spec)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("hashing:0", "dim must be a positive int, not '0'"),
        ("hashing:abc", "dim must be a positive int"),
        ("hashing?ngram=3", "ngram must look like '1-3'"),
        ("hashing?ngram=3-1", r"embedder spec 'hashing\?ngram=3-1': ngram_range must be"),
        ("hashing?max_tokens=3", r"bad option 'max_tokens=3'.*'hashing' takes: \['ngram=...'\]"),
        ("static?max_tokens=-1", "max_tokens must be a positive int"),
        ("static?max_tokens", "bad option 'max_tokens'"),
        ("static?keep=middle", "keep='middle'; expected 'start' or 'end'"),
        ("static?max_tokens=none&keep=end", "keep='end' needs max_tokens"),
        ("minilm:other", "'minilm' takes no argument"),
        ("sentence", "names no model"),
        ("sentence:", "names no model"),
        ("sentence:x?max_seq_length=big", "max_seq_length must be a positive int"),
    ],
)
def test_bad_arguments_and_options(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_embedder(spec)
    with pytest.raises(ConfigError, match=match):
        check_embedder_spec(spec)


def test_environ_sets_the_cache_folders(tmp_path: Path) -> None:
    env = {"MIXLLM_CACHE_DIR": str(tmp_path)}
    e = make_embedder("static", environ=env)
    assert isinstance(e, CachedEmbedder)
    assert e.db_path.parent == tmp_path / "embeddings"
    assert isinstance(e.inner, StaticEmbedder)
    assert e.inner.environ == env


def test_embedder_without_spec_cannot_be_saved_by_spec() -> None:
    with pytest.raises(ConfigError, match=r"'counting' .*has no spec"):
        embedder_spec(CountingEmbedder())


def test_making_an_embedder_loads_nothing(cache_dir: Path) -> None:
    for spec in ("static", "minilm", "sentence:/no/such/model", "static:/no/such/model"):
        make_embedder(spec)
    assert not cache_dir.exists()
