"""Embedders: texts → float32 matrices of unit rows (layer L1).

Every embedder follows the :class:`Embedder` protocol (``name``, ``dim``, ``embed``) and loads
its model on first use. Pick one by spec with :func:`make_embedder`:

- ``static``: model2vec distilled once from MiniLM, reading a prompt's first 512 tokens;
  :data:`DEFAULT_EMBEDDER`, the router's default, is ``static?max_tokens=64&keep=end``, the
  same model reading the last 64 tokens (where a few-shot or system prompt keeps its question).
- ``minilm`` / ``sentence:<model>``: a sentence-transformers model (MiniLM is bundled).
- ``hashing[:<dim>]``: hashed word n-grams, instant and dependency-light, for tests.

:class:`CachedEmbedder` keeps computed vectors in memory and in a SQLite file under
``$MIXLLM_CACHE_DIR`` (default ``~/.cache/mixllm``). Importing this package loads neither torch
nor sentence-transformers nor model2vec.

Tag-enhanced embedding (MixLLM §3.1): :class:`DomainProjection` learns, in numpy, a head on
fixed embeddings that gathers each query domain (task label or KMeans cluster) and separates the
domains; :func:`finetune_encoder` trains the same objective into a sentence-transformers model.

>>> e = make_embedder("hashing:16")
>>> e.embed(["hello world"]).shape
(1, 16)
"""

from __future__ import annotations

from mixllm.embed.base import Embedder
from mixllm.embed.cache import CachedEmbedder
from mixllm.embed.finetune import finetune_encoder
from mixllm.embed.hashing import HashingEmbedder
from mixllm.embed.registry import (
    DEFAULT_EMBEDDER,
    KNOWN_SPECS,
    check_embedder_spec,
    embedder_spec,
    make_embedder,
)
from mixllm.embed.sentence import SentenceEmbedder
from mixllm.embed.static import StaticEmbedder
from mixllm.embed.tagged import DomainProjection

__all__ = [
    "DEFAULT_EMBEDDER",
    "KNOWN_SPECS",
    "CachedEmbedder",
    "DomainProjection",
    "Embedder",
    "HashingEmbedder",
    "SentenceEmbedder",
    "StaticEmbedder",
    "check_embedder_spec",
    "embedder_spec",
    "finetune_encoder",
    "make_embedder",
]
