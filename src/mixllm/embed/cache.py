"""An embedding cache in front of any embedder: an in-memory LRU over one SQLite file on disk."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mixllm.embed._util import as_text_list, cache_root
from mixllm.embed.base import Embedder
from mixllm.errors import ConfigError

__all__ = ["CachedEmbedder", "embeddings_cache_dir"]

_DB_NAME = "embeddings-v1.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID"
)
_LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...), below SQLite's variable limit
_BUSY_TIMEOUT_S = 60.0


def embeddings_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The default folder of the embedding cache: ``embeddings/`` in the mixllm cache folder.

    >>> embeddings_cache_dir({"MIXLLM_CACHE_DIR": "/tmp/mx"}).as_posix()
    '/tmp/mx/embeddings'
    """
    return cache_root(environ) / "embeddings"


class CachedEmbedder:
    """Remembers every vector ``inner`` computes, in memory and in a SQLite file.

    Vectors are keyed by ``(inner.name, sha256(text))``, so embedders with different names never
    share entries. A batch is looked up in memory, then on disk, and only the texts found in
    neither go to ``inner`` in one call; their vectors are written in one transaction. SQLite in
    WAL mode with a busy timeout lets several processes read and write the same file at once.
    The connection opens on first use and closes with :meth:`close`, on leaving a ``with``
    block, or when the embedder is garbage-collected.

    Parameters
    ----------
    inner:
        The embedder whose vectors are cached; ``name`` and ``dim`` are its own.
    cache_dir:
        Folder of the SQLite file; default ``embeddings/`` under ``$MIXLLM_CACHE_DIR`` (else
        ``$XDG_CACHE_HOME/mixllm`` or ``~/.cache/mixllm``).
    memory_items:
        Vectors kept in memory (least recently used dropped first); 0 turns the layer off.
    environ:
        Environment to read ``MIXLLM_CACHE_DIR`` from; default :data:`os.environ`.

    Examples
    --------
    >>> import tempfile
    >>> from mixllm.embed import HashingEmbedder
    >>> tmp = tempfile.TemporaryDirectory()
    >>> e = CachedEmbedder(HashingEmbedder(32), cache_dir=Path(tmp.name))
    >>> e.name, e.dim
    ('hashing-32', 32)
    >>> bool((e.embed(["hi there"]) == HashingEmbedder(32).embed(["hi there"])).all())
    True
    >>> e.stats["inner_texts"], e.embed(["hi there"]).shape, e.stats["memory_hits"]
    (1, (1, 32), 1)
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        inner: Embedder,
        *,
        cache_dir: Path | None = None,
        memory_items: int = 100_000,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if memory_items < 0:
            raise ConfigError(f"memory_items must be >= 0, got {memory_items!r}")
        self.inner = inner
        self.cache_dir = cache_dir
        self.memory_items = memory_items
        self.environ = environ
        self.stats = {"memory_hits": 0, "disk_hits": 0, "inner_texts": 0}
        self._memory: OrderedDict[bytes, NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()  # guards the memory layer and stats
        self._db_lock = threading.Lock()  # guards the connection
        self._db: sqlite3.Connection | None = None
        self._db_pid = 0
        self._db_closer: weakref.finalize[[], CachedEmbedder] | None = None

    @property
    def name(self) -> str:
        """The inner embedder's name."""
        return self.inner.name

    @property
    def dim(self) -> int:
        """The inner embedder's width."""
        return self.inner.dim

    @property
    def spec(self) -> str:
        """The inner embedder's spec (``make_embedder`` wraps it in a cache again).

        Raises :class:`AttributeError` when the inner embedder has none, so that
        ``getattr(e, "spec", default)`` and :func:`~mixllm.embed.embedder_spec` see no spec.
        """
        spec = getattr(self.inner, "spec", None)
        if not isinstance(spec, str):
            raise AttributeError(f"embedder {self.inner.name!r} has no spec to re-create it from")
        return spec

    @property
    def db_path(self) -> Path:
        """The SQLite file (created on first use)."""
        folder = embeddings_cache_dir(self.environ) if self.cache_dir is None else self.cache_dir
        return Path(folder) / _DB_NAME

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, cache_dir={self.cache_dir!r})"

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts``, computing only the ones seen neither in memory nor on disk."""
        batch = as_text_list(texts)
        digests = [hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest() for text in batch]
        found = self._from_memory(digests)
        n_unique = len(set(digests))
        if len(found) < n_unique:
            self._fill_from_disk(digests, found)
        if len(found) < n_unique:
            self._fill_from_inner(batch, digests, found)
        dim = self.dim if not found else next(iter(found.values())).shape[0]
        out = np.empty((len(batch), dim), dtype=np.float32)
        for i, digest in enumerate(digests):
            out[i] = found[digest]
        return out

    def close(self) -> None:
        """Close the SQLite connection (it reopens on the next disk lookup)."""
        with self._db_lock:
            if self._db_closer is not None:
                self._db_closer()
            self._db = self._db_closer = None

    def __enter__(self) -> CachedEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def clear_memory(self) -> None:
        """Forget the in-memory layer (the disk file stays)."""
        with self._lock:
            self._memory.clear()

    def _from_memory(self, digests: list[bytes]) -> dict[bytes, NDArray[np.float32]]:
        found: dict[bytes, NDArray[np.float32]] = {}
        if not self.memory_items:
            return found
        memory = self._memory
        with self._lock:
            for digest in digests:
                vec = memory.get(digest)
                if vec is not None:
                    memory.move_to_end(digest)
                    found[digest] = vec
            self.stats["memory_hits"] += sum(1 for d in digests if d in found)
        return found

    def _count(self, stat: str, n: int) -> None:
        with self._lock:
            self.stats[stat] += n

    def _remember(self, new: Mapping[bytes, NDArray[np.float32]]) -> None:
        if not self.memory_items:
            return
        with self._lock:
            self._memory.update(new)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def _key(self, digest: bytes) -> str:
        return f"{self.name}:{digest.hex()}"

    def _fill_from_disk(
        self, digests: list[bytes], found: dict[bytes, NDArray[np.float32]]
    ) -> None:
        wanted = {self._key(d): d for d in dict.fromkeys(digests) if d not in found}
        dim = self.dim
        hits: dict[bytes, NDArray[np.float32]] = {}
        keys = list(wanted)
        with self._connect() as db:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, vec FROM vectors WHERE key IN ({marks})"
                for key, blob in db.execute(query, chunk):
                    if len(blob) == 4 * dim:  # else stale or damaged: recompute and overwrite
                        hits[wanted[key]] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        self._count("disk_hits", sum(1 for d in digests if d in hits))
        found.update(hits)
        self._remember(hits)

    def _fill_from_inner(
        self, batch: list[str], digests: list[bytes], found: dict[bytes, NDArray[np.float32]]
    ) -> None:
        missing = {d: text for d, text in zip(digests, batch, strict=True) if d not in found}
        vectors = np.asarray(self.inner.embed(list(missing.values())), dtype=np.float32)
        if vectors.shape != (len(missing), self.dim):
            raise ConfigError(
                f"embedder {self.name!r} returned shape {vectors.shape} for {len(missing)} texts; "
                f"expected ({len(missing)}, {self.dim})"
            )
        new = {d: vectors[i].copy() for i, d in enumerate(missing)}
        self._count("inner_texts", len(new))
        rows = [(self._key(d), v.astype("<f4").tobytes()) for d, v in new.items()]
        with self._connect() as db, db:
            db.executemany("INSERT OR REPLACE INTO vectors (key, vec) VALUES (?, ?)", rows)
        found.update(new)
        self._remember(new)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This instance's connection, one at a time, reopened in a forked child."""
        with self._db_lock:
            if self._db is None or self._db_pid != os.getpid():
                path = self.db_path
                path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
                self._db_closer = weakref.finalize(self, db.close)
                db.execute("PRAGMA journal_mode=WAL")  # persistent: later openers find it set
                db.execute("PRAGMA synchronous=NORMAL")  # no fsync per commit; safe under WAL
                db.execute(_SCHEMA)
                db.commit()
                self._db, self._db_pid = db, os.getpid()
            yield self._db
