"""What the gateway starts from: its store, checked, and the router of the newest checkpoint
that loads, with the feedback stored after that checkpoint learned again.

A store that is missing or empty while checkpoints exist, or a damaged one, is refused rather
than started over: that would silently reset every key's spend and the router's learning. The
messages say how to go on.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from mixllm.errors import PersistError
from mixllm.router import Router
from mixllm.serve._sqlite import StoreDamagedError
from mixllm.serve.store import Store

__all__ = ["STORE_FILE", "last_seq", "open_state", "restore_router"]

logger = logging.getLogger(__name__)

#: The store's file name in the state folder, beside ``checkpoints/ckpt-<ns>``.
STORE_FILE = "gateway.db"
_DAMAGED_PREFIX = "damaged-"


def last_seq(store: Store) -> int:
    """The last feedback seq the router restored by :func:`restore_router` holds: that of the
    newest feedback stored, or the newest checkpoint's if it claims more. (The checkpoint's
    alone would make the next checkpoint claim less than it holds, and the restart after it
    learn that feedback twice once the router has forgotten those decisions.)"""
    last = store.last_checkpoint()
    return max(0 if last is None else last[1], store.last_feedback_seq())


def restore_router(router_dir: str | Path, store: Store) -> Router:
    """The router to serve: the newest checkpoint recorded in ``store`` that loads (else
    ``router_dir`` if the store has no checkpoint), with the feedback stored after it learned
    again.

    A checkpoint that is missing, does not load, or is older than the feedback retention
    deleted is passed over with a WARNING; one that does not load is renamed
    ``damaged-ckpt-…`` (so that pruning old checkpoints keeps the one in use). Raises
    :class:`~mixllm.errors.PersistError` when none can be used and the store holds learning
    that ``router_dir`` lacks.
    """
    recorded = store.checkpoints()
    purged = store.purged_seq()
    passed_over: list[str] = []
    for text, seq in recorded:
        path = Path(text)
        router, why = _load_checkpoint(path, seq, purged)
        if router is None:
            passed_over.append(f"{path} ({why})")
            continue
        if passed_over:
            logger.warning(
                "restoring from the older checkpoint %s (feedback up to #%d): the newer %s "
                "cannot be used",
                path, seq, "; ".join(passed_over),
            )  # fmt: skip
        return _replay(router, path, seq, store)
    if recorded and (store.last_feedback_seq() > 0 or purged > 0):
        raise PersistError(
            f"no checkpoint of store {store.path!r} can be used: {'; '.join(passed_over)}. "
            f"Starting from {str(router_dir)!r} would lose what the feedback taught the router. "
            "Put a good copy of one of those checkpoints back; or move the store and the "
            "checkpoints folder aside to start afresh, losing that learning and the spend"
        )
    if recorded:
        logger.warning(
            "no checkpoint can be used (%s); the store has no feedback: starting from %s",
            "; ".join(passed_over), router_dir,
        )  # fmt: skip
    return _replay(Router.load(router_dir, embedding_cache=False), Path(router_dir), 0, store)


def _load_checkpoint(path: Path, seq: int, purged: int) -> tuple[Router | None, str]:
    """The checkpoint's router, or ``None`` and why it cannot be used."""
    if seq < purged:
        return None, f"holds feedback up to #{seq}, but retention deleted feedback up to #{purged}"
    if not path.is_dir():
        return None, "missing"
    try:
        return Router.load(path, embedding_cache=False), ""
    except Exception as exc:  # any failure of a damaged folder: the next one may load
        why = f"does not load: {type(exc).__name__}: {exc}"
    aside = path.with_name(_DAMAGED_PREFIX + path.name)
    try:
        path.rename(aside)
    except OSError as exc:
        logger.warning("cannot rename the damaged checkpoint %s aside (%s)", path, exc)
    else:
        why += f"; renamed {aside.name}"
    return None, why


def _replay(router: Router, path: Path, seq: int, store: Store) -> Router:
    replayed = 0
    for _, decision, feedback in store.replay_since(seq):
        replayed += router.learn_one(decision, feedback)
    logger.info("restored %s and learned %d feedback stored after it", path, replayed)
    return router


def open_state(
    router_dir: str | Path,
    state_dir: str | Path,
    *,
    retention_s: float | None = None,
    store_file: str | Path | None = None,
) -> tuple[Store, Router]:
    """The store in ``state_dir`` (created with the folder if both are new; ``store_file``
    instead of ``state_dir/gateway.db`` when given) and the router to serve
    (:func:`restore_router`); close the store when done.

    Refuses, with :class:`~mixllm.errors.PersistError`, a store that is missing or empty
    while ``state_dir/checkpoints`` holds checkpoints (starting would silently reset the
    spend and the learning), and a damaged one (:class:`StoreDamagedError`); the message says
    how to go on.
    """
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    db = state / STORE_FILE if store_file is None else Path(store_file)
    on_disk = _checkpoint_folders(state)
    empty = _emptiness(db)
    if empty is not None and on_disk:
        raise PersistError(
            f"store {str(db)!r} {empty} while {len(on_disk)} checkpoint(s) exist in "
            f"{str(state / 'checkpoints')!r}: starting would silently reset every key's spend "
            f"and the router's learning. Put the store file back if you have it; or "
            f"{_ways_out(state, router_dir, on_disk)}"
        )
    if empty == "is missing":
        logger.info("no store in %s: starting a new one, and the router from %s", state, router_dir)
    elif empty is not None:
        logger.warning("store %s %s and there are no checkpoints: starting afresh", db, empty)
    try:
        store = Store(db, retention_s=retention_s)
    except StoreDamagedError as exc:
        if on_disk:
            ways = _ways_out(state, router_dir, on_disk)
        else:
            ways = f"start afresh from {str(router_dir)!r} (every key's spend is reset)"
        raise StoreDamagedError(
            f"store {str(db)!r} is damaged ({exc.detail}): the gateway will not start on it. "
            f"Move it aside (with {STORE_FILE}-wal and {STORE_FILE}-shm if present) to keep "
            f"it for inspection; then {ways}",
            path=str(db),
            detail=exc.detail,
        ) from None
    try:
        return store, restore_router(router_dir, store)
    except BaseException:
        store.close()
        raise


def _checkpoint_folders(state: Path) -> list[Path]:
    """The checkpoint folders in ``state/checkpoints``, oldest first."""
    folder = state / "checkpoints"
    return sorted(p for p in folder.glob("ckpt-*") if p.is_dir()) if folder.is_dir() else []


def _emptiness(db: Path) -> str | None:
    """How the store file is empty (``"is missing"``, ...), or ``None`` if it has tables or
    cannot be read (then :class:`Store` says what is wrong with it)."""
    if not db.exists():
        return "is missing"
    wal = db.with_name(db.name + "-wal")
    if db.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        return "is empty (0 bytes)"
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'")
            tables = int(row.fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return "has no tables" if tables == 0 else None


def _ways_out(state: Path, router_dir: str | Path, on_disk: list[Path]) -> str:
    """How to start again without the store: from the newest checkpoint, or afresh."""
    old = state / "checkpoints.old"
    return (
        f"to keep the learning up to the newest checkpoint, move {str(state / 'checkpoints')!r} "
        f"aside (say to {str(old)!r}) and serve that checkpoint as the router: "
        f"'mixllm serve {old / on_disk[-1].name} --state {state}' (the spend and feedback "
        f"stored since that checkpoint are lost); or move the checkpoints aside and serve "
        f"{str(router_dir)!r} to start afresh"
    )
