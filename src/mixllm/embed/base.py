"""The :class:`Embedder` protocol every embedder follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to a float32 matrix of shape (len(texts), dim), one L2-normalised row per text.

    ``name`` identifies the model (it keys the on-disk cache and is saved with a router);
    ``dim`` is the embedding width. Loading a model happens on first use, never in ``__init__``.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]: ...
