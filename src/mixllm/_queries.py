"""The :class:`~mixllm.types.QueryBatch` a router predicts on: ids, prompts, embeddings and
prompt tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.data.tokens import count_tokens
from mixllm.embed import Embedder
from mixllm.errors import ConfigError
from mixllm.types import QueryBatch

__all__ = ["default_id", "query_batch"]


def query_batch(
    embedder: Embedder,
    prompts: Sequence[str],
    query_ids: Sequence[str] | None,
    *,
    prompt_tokens: NDArray[np.float64] | None = None,
) -> QueryBatch:
    """``prompts`` embedded by ``embedder``, with their ids (by default derived from the text:
    :func:`default_id`) and prompt tokens (counted where ``prompt_tokens`` is missing or NaN)."""
    ids = tuple(query_ids) if query_ids is not None else tuple(default_id(p) for p in prompts)
    if len(ids) != len(prompts):
        raise ConfigError(f"{len(ids)} query ids for {len(prompts)} prompts; expected one each")
    tokens = np.asarray(prompt_tokens, dtype=np.float64) if prompt_tokens is not None else None
    if tokens is None or np.isnan(tokens).any():
        counted = count_tokens(prompts)
        tokens = counted if tokens is None else np.where(np.isnan(tokens), counted, tokens)
    return QueryBatch(
        ids=ids,
        prompts=tuple(prompts),
        embeddings=embedder.embed(list(prompts)),
        prompt_tokens=tokens,
    )


def default_id(prompt: str) -> str:
    """A query id derived from the text, so a prompt gets the same id alone or in a batch.

    >>> default_id("hi") == default_id("hi") != default_id("ho")
    True
    """
    return "q-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]
