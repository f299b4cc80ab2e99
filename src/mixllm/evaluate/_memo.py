"""An in-memory memo in front of the evaluation's one embedder, for the length of one run.

Replaying a sweep routes the same test prompts once per λ and router; the memo embeds each
distinct text once, whatever the embedder (hashing embedders have no cache of their own).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.embed import Embedder

__all__ = ["MemoEmbedder"]


class MemoEmbedder:
    """Wraps ``inner`` (same ``name`` and ``dim``) and remembers every vector it returned."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self._vectors: dict[str, NDArray[np.float32]] = {}

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors of ``texts``; only texts not seen before go to ``inner`` (in one batch)."""
        texts = list(texts)
        new = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if new:
            self._vectors.update(zip(new, self.inner.embed(new)))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32, copy=False)
