"""Static (model2vec) embeddings: a token-vector lookup and a mean, under 1 ms per query on a CPU.

With no model given, :class:`StaticEmbedder` distils one from the bundled all-MiniLM-L6-v2 on
first use (about 15 s, once per machine) and keeps it in the user cache folder, from which later
runs load it in a fraction of a second.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mixllm.embed._mean import _MeanEncoder
from mixllm.embed._util import (
    as_text_list,
    cache_root,
    missing_extra,
    normalize_rows,
    quiet_hf_loading,
)
from mixllm.embed.sentence import minilm_path
from mixllm.errors import ConfigError

if TYPE_CHECKING:
    from model2vec import StaticModel

__all__ = ["DEFAULT_MAX_TOKENS", "DISTILLED_DIM", "StaticEmbedder", "distilled_model_dir"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512
"""Tokens read per text by default: all of 90 % of RouterBench prompts (p90 = 492).

Cutting to 64 tokens is 4x faster (0.13 vs 0.60 ms per query) but few-shot prompts put the
question last, so the head alone carries only the task: per-LLM quality AUC of a kNN on the
vectors fell from 0.644 (full) to 0.603 (64 or 128 tokens), below the 0.637 of the task label
alone (benchmarks/embed_speed.py). Half a millisecond is nothing next to an LLM call, and
cached vectors cost nothing at all; 512 still bounds the work for a very long prompt.
The router's default, :data:`mixllm.embed.DEFAULT_EMBEDDER`, reads the last 64 tokens
(``keep="end"``), which see the question: it routed RouterBench as well as 512 tokens.
"""

DISTILLED_DIM = 256
"""Width (PCA dimensions) of the static model distilled from MiniLM."""

_DISTILLED_NAME = "static-minilm"


def distilled_model_dir(
    cache_dir: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Path:
    """Where the distilled MiniLM static model lives (it may not exist yet).

    ``cache_dir`` is the folder that holds the model folder; by default ``models/`` in the mixllm
    cache folder (``$MIXLLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/mixllm`` or ``~/.cache/mixllm``).

    >>> distilled_model_dir(Path("/tmp/models")).as_posix()
    '/tmp/models/static-minilm-d256'
    """
    folder = cache_root(environ) / "models" if cache_dir is None else Path(cache_dir)
    return folder / f"{_DISTILLED_NAME}-d{DISTILLED_DIM}"


class StaticEmbedder:
    """Sentence vectors as the SIF-weighted mean of static token vectors (model2vec).

    Parameters
    ----------
    model:
        A model2vec model folder or Hugging Face name (already downloaded); ``None`` for a model
        distilled from the bundled all-MiniLM-L6-v2 (256 dimensions, built once and cached).
    max_tokens:
        Read at most this many tokens of each text; ``None`` reads it all. Truncation changes the
        vectors, so it is part of :attr:`name` and :attr:`spec`.
    keep:
        Which tokens ``max_tokens`` keeps: ``"start"`` (model2vec's own truncation) or ``"end"``,
        the last ones (cut to ``max_tokens`` × the vocabulary's median token length characters
        from the end, then the last ``max_tokens`` tokens). Prompts that open with a long system
        prompt or few-shot examples put the question at the end.
    cache_dir:
        Folder that keeps the distilled model; default ``models/`` under ``$MIXLLM_CACHE_DIR``
        (else ``$XDG_CACHE_HOME/mixllm`` or ``~/.cache/mixllm``). Unused when ``model`` is given.
    environ:
        Environment to read ``MIXLLM_CACHE_DIR`` from; default :data:`os.environ`.

    Examples
    --------
    >>> e = StaticEmbedder()
    >>> e.name, e.spec, e.dim
    ('static-minilm-max512', 'static', 256)
    >>> StaticEmbedder("models/potion", max_tokens=None).spec
    'static:models/potion?max_tokens=none'
    >>> tail = StaticEmbedder(max_tokens=64, keep="end")
    >>> tail.name, tail.spec
    ('static-minilm-max64-end', 'static?max_tokens=64&keep=end')
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        keep: str = "start",
        cache_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if model is not None and not model.strip():
            raise ConfigError("StaticEmbedder model must be a non-empty path or name, got ''")
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 1):
            raise ConfigError(f"max_tokens must be >= 1 or None, got {max_tokens!r}")
        if keep not in ("start", "end"):
            raise ConfigError(f"keep={keep!r}; expected 'start' or 'end'")
        if keep == "end" and max_tokens is None:
            raise ConfigError("keep='end' needs max_tokens (without it every token is read)")
        self.model = model
        self.max_tokens = max_tokens
        self.keep = keep
        self.cache_dir = cache_dir
        self.environ = environ
        self._model: StaticModel | None = None
        self._encoder: _MeanEncoder | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``static-minilm`` or ``static:<model>``, then ``-max<n>`` if ``max_tokens`` is set
        and ``-end`` if it keeps the last tokens."""
        base = _DISTILLED_NAME if self.model is None else f"static:{self.model}"
        if self.max_tokens is None:
            return base
        return f"{base}-max{self.max_tokens}" + ("-end" if self.keep == "end" else "")

    @property
    def spec(self) -> str:
        """The :func:`~mixllm.embed.make_embedder` spec that re-creates this embedder."""
        base = "static" if self.model is None else f"static:{self.model}"
        options = []
        if self.max_tokens != DEFAULT_MAX_TOKENS:
            options.append(f"max_tokens={'none' if self.max_tokens is None else self.max_tokens}")
        if self.keep != "start":
            options.append(f"keep={self.keep}")
        return base + ("?" + "&".join(options) if options else "")

    @property
    def dim(self) -> int:
        """Embedding width (256 for the distilled default; loads a given model to find it)."""
        if self.model is None:
            return DISTILLED_DIM
        return int(self._load().dim)

    def __repr__(self) -> str:
        keep = "" if self.keep == "start" else f", keep={self.keep!r}"
        return f"StaticEmbedder(model={self.model!r}, max_tokens={self.max_tokens}{keep})"

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` matrix of unit rows."""
        batch = as_text_list(texts)
        model = self._load()
        if not batch:
            return np.zeros((0, int(model.dim)), dtype=np.float32)
        if self._encoder is not None:
            return self._encoder.encode(batch)
        if self.keep == "end":  # model2vec truncates at the start: hand it the last characters
            cut = int(self.max_tokens or 0) * int(model.median_token_length)
            batch = [t[-cut:] if cut else t for t in batch]
        vectors = model.encode(
            batch,
            max_length=self.max_tokens,
            normalize=True,
            show_progress_bar=False,
            use_multiprocessing=False,
        )
        return normalize_rows(np.asarray(vectors))

    def _load(self) -> StaticModel:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                model = self._build()
                self._encoder = _MeanEncoder.for_model(model, self.max_tokens, keep=self.keep)
                self._model = model
        return self._model

    def _build(self) -> StaticModel:
        try:
            from model2vec import StaticModel
        except ImportError as exc:
            raise missing_extra("StaticEmbedder", exc) from exc
        if self.model is not None:
            try:
                return StaticModel.from_pretrained(self.model, force_download=False)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"cannot load model2vec model {self.model!r} "
                    f"(a local folder, or a name already in the Hugging Face cache): {exc}"
                ) from exc
        target = distilled_model_dir(self.cache_dir, environ=self.environ)
        if not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with _exclusive(target.parent / f".{target.name}.lock"):
                if not (target / "config.json").is_file():  # another process may have made it
                    _distill_into(target)
        started = time.perf_counter()
        model = StaticModel.from_pretrained(target, force_download=False)
        logger.debug("loaded %s in %.2f s", target, time.perf_counter() - started)
        return model


def _canonical_signs(vectors: NDArray[Any]) -> NDArray[Any]:
    """Flip each column so that its entry of largest magnitude is positive.

    PCA components are defined up to sign, and LAPACK builds disagree on it; without this, a
    model distilled on another machine could mirror some axes and no longer match a saved router.

    >>> _canonical_signs(np.array([[1.0, 2.0], [-3.0, 1.0]])).tolist()
    [[-1.0, 2.0], [3.0, 1.0]]
    """
    rows = np.abs(vectors).argmax(axis=0)
    signs = np.sign(vectors[rows, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1
    flipped: NDArray[Any] = vectors * signs.astype(vectors.dtype)
    return flipped


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an inter-process lock so that concurrent processes distil once, not once each.

    POSIX ``flock`` (released by the OS if the process dies); where it does not exist there is no
    lock, and the atomic rename in :func:`_distill_into` still keeps the cache whole.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _distill_into(target: Path) -> None:
    """Distil MiniLM into a static model and move it to ``target`` in one atomic rename.

    Processes that distil at the same time (no file lock on this system) each write a private
    temporary folder; the first rename wins and the others discard their copy, so ``target`` is
    never seen half-written.
    """
    try:
        from model2vec.distill import distill
    except ImportError as exc:
        raise missing_extra("StaticEmbedder distillation", exc) from exc
    source = minilm_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("distilling a static embedder from %s into %s (once, ~15 s)", source, target)
    started = time.perf_counter()
    with quiet_hf_loading():
        model = distill(model_name=source, pca_dims=DISTILLED_DIM, device="cpu")
    model.embedding = _canonical_signs(model.embedding)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError as exc:
            if not (target / "config.json").is_file():
                raise ConfigError(
                    f"cannot store the distilled model at {target} ({exc}); "
                    "delete that folder or set MIXLLM_CACHE_DIR to another place"
                ) from exc
            logger.debug("another process distilled %s first; using theirs", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("distilled %s in %.1f s", target, time.perf_counter() - started)
