"""A hashed bag of word n-grams: the fast, deterministic, dependency-light embedder for tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mixllm.embed._util import as_text_list, normalize_rows
from mixllm.errors import ConfigError

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer

__all__ = ["HashingEmbedder"]

DEFAULT_NGRAM_RANGE = (1, 2)


class HashingEmbedder:
    """Word uni- and bi-grams hashed into ``dim`` signed buckets, then L2-normalised.

    Needs only scikit-learn, loads nothing and gives the same vector for the same text in every
    process (MurmurHash3 with a fixed seed). Texts that share words get close vectors, which is
    all the routing tests need; it is no substitute for a trained encoder.

    Parameters
    ----------
    dim:
        Number of hash buckets, the embedding width.
    ngram_range:
        Smallest and largest word n-gram (lowercased; single letters count as words).

    Examples
    --------
    >>> e = HashingEmbedder(64)
    >>> e.name, e.spec
    ('hashing-64', 'hashing:64')
    >>> v = e.embed(["red apple pie", "red apple tart", "quantum photon"])
    >>> v.shape, v.dtype.name
    ((3, 64), 'float32')
    >>> bool(v[0] @ v[1] > v[0] @ v[2])
    True
    """

    def __init__(self, dim: int = 256, *, ngram_range: tuple[int, int] = DEFAULT_NGRAM_RANGE):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"hashing dim must be a positive int, got {dim!r}")
        lo, hi = ngram_range
        if not 1 <= lo <= hi:
            raise ConfigError(
                f"ngram_range must be (lo, hi) with 1 <= lo <= hi, got {ngram_range!r}"
            )
        self._dim = dim
        self.ngram_range = (int(lo), int(hi))
        self._vectorizer: HashingVectorizer | None = None

    @property
    def name(self) -> str:
        """``hashing-<dim>``, plus ``-ngram<lo>-<hi>`` when not the default range."""
        if self.ngram_range == DEFAULT_NGRAM_RANGE:
            return f"hashing-{self._dim}"
        return f"hashing-{self._dim}-ngram{self.ngram_range[0]}-{self.ngram_range[1]}"

    @property
    def dim(self) -> int:
        """Embedding width (the number of hash buckets)."""
        return self._dim

    @property
    def spec(self) -> str:
        """The :func:`~mixllm.embed.make_embedder` spec that re-creates this embedder."""
        if self.ngram_range == DEFAULT_NGRAM_RANGE:
            return f"hashing:{self._dim}"
        return f"hashing:{self._dim}?ngram={self.ngram_range[0]}-{self.ngram_range[1]}"

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self._dim}, ngram_range={self.ngram_range})"

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` matrix of unit rows."""
        batch = as_text_list(texts)
        if not batch:
            return np.zeros((0, self._dim), dtype=np.float32)
        counts = self._get_vectorizer().transform(batch)
        return normalize_rows(counts.toarray())

    def _get_vectorizer(self) -> HashingVectorizer:
        if self._vectorizer is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            self._vectorizer = HashingVectorizer(
                n_features=self._dim,
                ngram_range=self.ngram_range,
                token_pattern=r"(?u)\b\w+\b",
                lowercase=True,
                alternate_sign=True,
                norm=None,
                dtype=np.float32,
            )
        return self._vectorizer
