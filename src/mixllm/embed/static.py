"""Static (model2vec) embeddings: a token-vector lookup and a mean, under 1 ms per query on a CPU.

With no model given, :class:`StaticEmbedder` distils one from the bundled all-MiniLM-L6-v2 on
first use (about 15 s, once per machine) and keeps it in the user cache folder, from which later
runs load it in a fraction of a second.
"""

from __future__ import annotations

import json
import logging
import os
import re
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
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        cache_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if model is not None and not model.strip():
            raise ConfigError("StaticEmbedder model must be a non-empty path or name, got ''")
        if max_tokens is not None and (isinstance(max_tokens, bool) or max_tokens < 1):
            raise ConfigError(f"max_tokens must be >= 1 or None, got {max_tokens!r}")
        self.model = model
        self.max_tokens = max_tokens
        self.cache_dir = cache_dir
        self.environ = environ
        self._model: StaticModel | None = None
        self._encoder: _MeanEncoder | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """``static-minilm`` or ``static:<model>``, then ``-max<n>`` if ``max_tokens`` is set."""
        base = _DISTILLED_NAME if self.model is None else f"static:{self.model}"
        return base if self.max_tokens is None else f"{base}-max{self.max_tokens}"

    @property
    def spec(self) -> str:
        """The :func:`~mixllm.embed.make_embedder` spec that re-creates this embedder."""
        base = "static" if self.model is None else f"static:{self.model}"
        if self.max_tokens == DEFAULT_MAX_TOKENS:
            return base
        return f"{base}?max_tokens={'none' if self.max_tokens is None else self.max_tokens}"

    @property
    def dim(self) -> int:
        """Embedding width (256 for the distilled default; loads a given model to find it)."""
        if self.model is None:
            return DISTILLED_DIM
        return int(self._load().dim)

    def __repr__(self) -> str:
        return f"StaticEmbedder(model={self.model!r}, max_tokens={self.max_tokens})"

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` matrix of unit rows."""
        batch = as_text_list(texts)
        model = self._load()
        if not batch:
            return np.zeros((0, int(model.dim)), dtype=np.float32)
        if self._encoder is not None:
            return self._encoder.encode(batch)
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
                self._encoder = _MeanEncoder.for_model(model, self.max_tokens)
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


class _MeanEncoder:
    """model2vec's ``StaticModel.encode`` for a plain model (no token mapping or weights), giving
    the same vectors bit for bit in a fraction of the time.

    ``encode`` spends most of a single query outside the tokenizer: a progress bar object,
    re-configuring the shared tokenizer's truncation on every call, and a float16 mean that
    numpy casts element by element. Here the tokenizer is a private copy, truncated once, and
    the table is kept in float32 (exact for float16), whose sum in the same order is the same.
    """

    def __init__(
        self, tokenizer: Any, table: NDArray[np.float32], *, out_dtype: np.dtype[Any],
        unk_id: int | None, cut_chars: int | None, max_tokens: int | None = None,
    ) -> None:  # fmt: skip
        self.tokenizer = tokenizer
        self.table = table
        self.out_dtype = out_dtype
        self.unk_id = unk_id
        self.cut_chars = cut_chars
        self.max_tokens = max_tokens
        self.ascii = _AsciiWordPiece.for_tokenizer(tokenizer)

    @classmethod
    def for_model(cls, model: StaticModel, max_tokens: int | None) -> _MeanEncoder | None:
        """The encoder for ``model``, or ``None`` where only model2vec's own path is exact."""
        dtype = np.dtype(model.embedding.dtype)
        plain = model.token_mapping is None and model.weights is None
        if not plain or dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
            return None
        tokenizer = type(model.tokenizer).from_str(model.tokenizer.to_str())  # a private copy
        if max_tokens is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(max_tokens)
        # model2vec first cuts the text to max_tokens × the vocabulary's median token length.
        cut = None if max_tokens is None else max_tokens * int(model.median_token_length)
        table = np.ascontiguousarray(model.embedding, dtype=np.float32)
        return cls(
            tokenizer, table, out_dtype=dtype, unk_id=model.unk_token_id, cut_chars=cut,
            max_tokens=max_tokens,
        )  # fmt: skip

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        """``normalize_rows(StaticModel.encode(texts, max_length=max_tokens, normalize=True))``:
        float32 unit rows (a text without tokens gets the constant unit row)."""
        cut, unk, table, fast = self.cut_chars, self.unk_id, self.table, self.ascii
        if cut is not None:
            texts = [t[:cut] for t in texts]
        token_ids: list[list[int] | None] = [None] * len(texts)
        if fast is not None:
            limit = self.max_tokens
            token_ids = [fast.ids(t, limit) if t.isascii() else None for t in texts]
        rest = [i for i, ids in enumerate(token_ids) if ids is None]
        if rest:
            batch = texts if len(rest) == len(texts) else [texts[i] for i in rest]
            encodings = self.tokenizer.encode_batch_fast(batch, add_special_tokens=False)
            for i, encoding in zip(rest, encodings, strict=True):
                token_ids[i] = encoding.ids
        means = np.zeros((len(texts), table.shape[1]), dtype=np.float32)
        for i, ids in enumerate(token_ids):
            assert ids is not None
            if unk is not None and unk in ids:
                ids = [t for t in ids if t != unk]
            if ids:
                means[i] = table[ids].sum(axis=0) / len(ids)
        # model2vec rounds the mean to the table's dtype and normalises it in float32, rounding
        # again; normalize_rows then normalises once more. The same steps, in fewer calls (the
        # norm as numpy.linalg.norm computes it).
        out = means.astype(self.out_dtype).astype(np.float32)
        out /= np.sqrt(np.add.reduce(out * out, axis=1, keepdims=True)) + 1e-32
        out = out.astype(self.out_dtype).astype(np.float32)
        norms = np.sqrt(np.add.reduce(out * out, axis=1))
        empty = ~(norms > 0.0)
        if empty.any():
            norms[empty] = 1.0
            out /= norms[:, None]
            out[empty] = np.float32(1.0 / np.sqrt(out.shape[1]))
        else:
            out /= norms[:, None]
        return out


class _AsciiWordPiece:
    """A BERT tokenizer's ids for ASCII text, without the tokenizer: the same ids, ~10x faster.

    Hugging Face's tokenizer spends ~0.27 µs per character on an ASCII prompt (normalising with
    offsets, pre-tokenizing, WordPiece), ~0.1 ms for the 384 characters that 64 tokens read and
    ~0.6 ms for a whole prompt. For ASCII text a ``BertNormalizer`` acts on each character alone
    (drop controls, map whitespace, lowercase; NFD and accent stripping change nothing) and a
    ``BertPreTokenizer`` splits on whitespace and isolates each punctuation character. Both are
    read off the tokenizer itself, one ASCII character at a time, into a byte translation table
    and a regular expression; WordPiece runs per word, so each word's ids are memoised (bounded)
    from the tokenizer's own model. Words are read only until ``max_tokens`` ids are found.

    Texts holding an added token (``[UNK]``, ``[CLS]``, ...; matched before normalisation) and
    non-ASCII texts go to the tokenizer. Other normalisers, pre-tokenizers or models: no fast path.
    """

    MAX_WORDS = 1 << 16
    """Memoised words; the memo is emptied when it grows past this."""

    def __init__(
        self, model: Any, translate: bytes, delete: bytes, split: re.Pattern[bytes],
        raw_added: tuple[bytes, ...], normalized_added: tuple[bytes, ...],
    ) -> None:  # fmt: skip
        self.model = model
        self.translate = translate
        self.delete = delete
        self.findall = split.findall
        self.raw_added = raw_added
        self.normalized_added = normalized_added
        self.words: dict[bytes, list[int]] = {}

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> _AsciiWordPiece | None:
        """The fast path for ``tokenizer``, or ``None`` where its pipeline is not the BERT one."""
        config = json.loads(tokenizer.to_str())
        kinds = [
            (config.get(k) or {}).get("type") for k in ("normalizer", "pre_tokenizer", "model")
        ]
        if kinds != ["BertNormalizer", "BertPreTokenizer", "WordPiece"]:
            return None
        normalize, pre_tokenize = tokenizer.normalizer.normalize_str, tokenizer.pre_tokenizer
        table, delete = bytearray(range(256)), bytearray()
        word, punct = bytearray(), bytearray()
        for code in range(128):
            out = normalize(chr(code))
            if not out:
                delete.append(code)
                continue
            if len(out) != 1 or not out.isascii():
                return None
            table[code] = ord(out)
            pieces = len(pre_tokenize.pre_tokenize_str(f"a{out}a"))
            if pieces == 1:
                word.append(ord(out))
            elif pieces == 3:
                punct.append(ord(out))
            elif pieces != 2:  # 2: whitespace, dropped
                return None
        if ord("a") not in word:
            return None
        word_class, punct_class = (re.escape(bytes(sorted(set(c)))) for c in (word, punct))
        split = re.compile(
            b"[" + word_class + b"]+" + (b"|[" + punct_class + b"]" if punct else b"")
        )
        raw_added: list[bytes] = []
        normalized_added: list[bytes] = []
        for added in tokenizer.get_added_tokens_decoder().values():
            content = added.content.encode("utf-8")
            (normalized_added if added.normalized else raw_added).append(content)
        # An added token is matched in the raw text; a normalised one also in the normalised text.
        normalized_added += [normalize(a.decode()).encode("utf-8") for a in normalized_added]
        return cls(
            tokenizer.model, bytes(table), bytes(delete), split,
            tuple(raw_added), tuple(a for a in normalized_added if a),
        )  # fmt: skip

    def ids(self, text: str, limit: int | None) -> list[int] | None:
        """First ``limit`` ids (``None``: all) of ASCII ``text``; ``None``: ask the tokenizer."""
        raw = text.encode("ascii")
        for added in self.raw_added:
            if added in raw:
                return None
        normalized = raw.translate(self.translate, self.delete)
        for added in self.normalized_added:
            if added in normalized:
                return None
        words, out = self.words, []
        for piece in self.findall(normalized):
            word = words.get(piece)
            if word is None:
                word = [t.id for t in self.model.tokenize(piece.decode("ascii"))]
                if len(words) >= self.MAX_WORDS:
                    words.clear()
                words[piece] = word
            out += word
            if limit is not None and len(out) >= limit:
                del out[limit:]
                break
        return out


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
