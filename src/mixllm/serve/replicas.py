"""Several gateway replicas on one shared store (PostgreSQL): where each starts from, and how
the router state they learn stays the same on all of them.

The feedback table is an append-only log: a feedback is acknowledged once its row has
committed, and every replica applies the whole log in sequence order, whichever replica
received each feedback (:class:`~mixllm.serve.learning.Learning` follows it). Writes are
serialised in the database, so sequence order is commit order and a replica never meets a
smaller sequence number after a larger one. Replicas that start from the same router and apply
the same log in the same order hold the same router, bit for bit.

Checkpoints live in the database too (:func:`pack_router`: the router folder as one tar
archive) with the log position they include; one replica at a time writes them (an advisory
lock). A replica that starts (:func:`open_shared_state`) loads the newest checkpoint and applies
the log after it.
"""

from __future__ import annotations

import io
import logging
import tarfile
import tempfile
import weakref
from pathlib import Path

from mixllm.errors import PersistError
from mixllm.router import Router
from mixllm.serve.store import Store, open_store

__all__ = ["open_shared_state", "pack_router", "restored_seq", "unpack_router"]

logger = logging.getLogger(__name__)

_FILES = ("manifest.json", "arrays.npz")
_RESTORED: weakref.WeakKeyDictionary[Router, int] = weakref.WeakKeyDictionary()


def pack_router(router: Router) -> bytes:
    """``router`` saved (:meth:`Router.save <mixllm.router.Router.save>`) as a tar archive of
    its folder's files."""
    with tempfile.TemporaryDirectory(prefix="mixllm-ckpt-") as tmp:
        folder = router.save(Path(tmp) / "router")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name in _FILES:
                tar.add(folder / name, arcname=name)
    return buffer.getvalue()


def unpack_router(data: bytes) -> Router:
    """The router of an archive written by :func:`pack_router`. Only its two regular files
    are read (no path in the archive is trusted); the router's own checks (format version,
    checksum) follow."""
    with tempfile.TemporaryDirectory(prefix="mixllm-ckpt-") as tmp:
        folder = Path(tmp)
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                for name in _FILES:
                    member = tar.getmember(name)
                    source = tar.extractfile(member) if member.isreg() else None
                    if source is None:
                        raise PersistError(f"checkpoint archive: {name} is not a regular file")
                    (folder / name).write_bytes(source.read())
        except (tarfile.TarError, KeyError) as exc:
            raise PersistError(f"checkpoint archive is damaged: {exc}") from None
        return Router.load(folder, embedding_cache=False)


def restored_seq(router: Router) -> int | None:
    """The last log position ``router`` holds, when it was restored by
    :func:`open_shared_state` (``None`` otherwise)."""
    return _RESTORED.get(router)


def open_shared_state(
    router_dir: str | Path, url: str, *, retention_s: float | None = None
) -> tuple[Store, Router]:
    """The shared store at ``url`` and the router to serve: the newest checkpoint in it that
    loads (else ``router_dir``), with the feedback logged after it applied in order; close the
    store when done."""
    store = open_store(url, retention_s=retention_s)
    try:
        router, seq, source = _newest(store, router_dir)
        replayed = 0
        for position, decision, feedback in store.replay_since(seq):
            replayed += router.learn_one(decision, feedback)
            seq = position
        _RESTORED[router] = seq
        logger.info(
            "restored %s and learned %d logged feedback after it (log at #%d)",
            source, replayed, seq,
        )  # fmt: skip
        return store, router
    except BaseException:
        store.close()
        raise


def _newest(store: Store, router_dir: str | Path) -> tuple[Router, int, str]:
    """The newest checkpoint's router and log position, else ``router_dir``'s at 0."""
    last = store.last_checkpoint_data()
    if last is not None:
        data, seq = last
        purged = store.purged_seq()
        if seq >= purged:
            try:
                return unpack_router(data), seq, f"the checkpoint at #{seq}"
            except Exception as exc:  # a damaged checkpoint: say so, and fall back
                logger.warning("the checkpoint at #%d does not load: %s", seq, exc)
        if store.last_feedback_seq() > 0 or purged > 0:
            raise PersistError(
                f"the newest checkpoint in {store.path!r} cannot be used, and starting from "
                f"{str(router_dir)!r} would lose what the logged feedback taught the router"
            )
    return Router.load(router_dir, embedding_cache=False), 0, str(router_dir)
