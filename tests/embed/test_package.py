"""The package API: what it exports and what importing it costs."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import mixllm.embed


def test_exports() -> None:
    expected = {
        "CachedEmbedder",
        "Embedder",
        "HashingEmbedder",
        "SentenceEmbedder",
        "StaticEmbedder",
        "make_embedder",
        "embedder_spec",
        "check_embedder_spec",
        "KNOWN_SPECS",
        "DomainProjection",
        "finetune_encoder",
    }
    assert expected <= set(mixllm.embed.__all__)
    assert mixllm.embed.__doc__
    for name in mixllm.embed.__all__:
        assert getattr(mixllm.embed, name).__doc__, f"{name} has no docstring"


def test_import_loads_no_model_library() -> None:
    code = (
        "import sys, mixllm.embed; "
        "from mixllm.embed import make_embedder; "
        "e = make_embedder('static'); m = make_embedder('minilm'); e.name, e.spec, e.dim; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'model2vec', 'transformers') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "module",
    [
        "_domains",
        "_util",
        "base",
        "cache",
        "finetune",
        "hashing",
        "registry",
        "sentence",
        "static",
        "tagged",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    mod = importlib.import_module(f"mixllm.embed.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
