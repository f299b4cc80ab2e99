"""The gateway's state at start: a missing, empty, damaged or foreign store is refused (or,
without checkpoints, started afresh, saying so); a damaged newest checkpoint gives way to the
older one plus the feedback stored after it. Damage met by a read is a PersistError."""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mixllm import Router
from mixllm.errors import PersistError
from mixllm.serve.restore import STORE_FILE, last_seq, open_state, restore_router
from mixllm.serve.store import Store, StoreDamagedError
from mixllm.types import Feedback

PROMPTS = [f"question {i} about {('cats', 'tax law', 'rust', 'poems')[i % 4]}" for i in range(40)]


@dataclass
class State:
    """A state folder after learning: checkpoints ``old`` and ``new`` and the store."""

    folder: Path
    old: Path
    new: Path
    old_seq: int
    new_seq: int
    last_seq: int
    ids: list[str]  # of every decision, in order

    @property
    def db(self) -> Path:
        return self.folder / STORE_FILE


def _feedback(i: int) -> Feedback:
    return Feedback(reward=i % 2 == 0) if i % 3 == 0 else Feedback(quality=(0.137 * i) % 1.0)


def make_state(fitted_dir: Path, folder: Path, *, spare: int = 0) -> State:
    """Route and learn from 3 prompts, checkpoint, 3 more, checkpoint, 2 more (feedback a
    restart must replay), then ``spare`` decisions without feedback; the store is closed."""
    router = Router.load(fitted_dir)
    ckpts = folder / "checkpoints"
    marks: list[tuple[Path, int]] = []
    ids: list[str] = []
    folder.mkdir(parents=True, exist_ok=True)
    with Store(folder / STORE_FILE) as store:
        store.add_spend("key-a", 0.25)
        seq = 0
        for i, prompt in enumerate(PROMPTS[:8]):
            decision = router.route(prompt)
            store.record_decision(decision, key_id="key-a", now=1000.0 + i)
            ids.append(decision.decision_id)
            seq = store.record_feedback(decision.decision_id, _feedback(i)) or 0
            assert router.learn_one(decision, _feedback(i))
            if i in (2, 5):
                path = ckpts / f"ckpt-{i:04d}"
                router.save(path)
                store.record_checkpoint(str(path), seq)
                marks.append((path, seq))
        for prompt in PROMPTS[8 : 8 + spare]:
            decision = router.route(prompt)
            store.record_decision(decision, key_id="key-a", now=2000.0)
            ids.append(decision.decision_id)
    (old, old_seq), (new, new_seq) = marks
    return State(folder, old, new, old_seq, new_seq, seq, ids)


def predictions(router: Router) -> np.ndarray:
    pred = router.predict(PROMPTS)
    return np.concatenate([pred.quality, pred.cost_usd], axis=1)


def reference(fitted_dir: Path, db: Path) -> np.ndarray:
    """The fitted router with every stored feedback learned in order."""
    router = Router.load(fitted_dir)
    with Store(db) as store:
        for _, decision, feedback in store.replay_since(0):
            assert router.learn_one(decision, feedback)
    return predictions(router)


def overwrite_tail(path: Path, n_bytes: int = 8192, *, seed: int = 0) -> None:
    """Random bytes over the last ``n_bytes`` of ``path``."""
    size = path.stat().st_size
    assert size > 4 * n_bytes, f"{path} has {size} bytes; expected more to damage its tail"
    with path.open("r+b") as f:
        f.seek(size - n_bytes)
        f.write(np.random.default_rng(seed).bytes(n_bytes))


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


# -- a missing or empty store -----------------------------------------------------------------
def _empty_file(db: Path) -> None:
    db.write_bytes(b"")


def _no_tables(db: Path) -> None:
    db.unlink()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("DROP TABLE t")
    conn.close()
    assert db.stat().st_size > 0


@pytest.mark.parametrize(
    ("damage", "said"),
    [(_empty_file, "is empty (0 bytes)"), (Path.unlink, "is missing"), (_no_tables, "no tables")],
    ids=["zero-bytes", "missing", "no-tables"],
)
def test_an_empty_store_beside_checkpoints_is_refused(
    fitted_dir: Path, tmp_path: Path, damage: object, said: str
) -> None:
    state = make_state(fitted_dir, tmp_path / "state")
    damage(state.db)  # type: ignore[operator]
    before = state.db.read_bytes() if state.db.exists() else None
    for _ in range(2):  # refused again: the first refusal changed nothing
        with pytest.raises(PersistError) as info:
            open_state(fitted_dir, state.folder)
        message = str(info.value)
        assert str(state.db) in message and said in message
        assert "2 checkpoint(s)" in message and "reset" in message
        assert "Put the store file back" in message and state.new.name in message
        assert (state.db.read_bytes() if state.db.exists() else None) == before


def test_an_empty_store_without_checkpoints_starts_afresh_and_says_so(
    fitted_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / STORE_FILE).write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="mixllm.serve.restore"):
        store, router = open_state(fitted_dir, folder)
    try:
        assert store.counts() == {"decisions": 0, "feedback": 0, "checkpoints": 0}
        assert_same(predictions(router), predictions(Router.load(fitted_dir)))
    finally:
        store.close()
    (record,) = [r for r in caplog.records if "afresh" in r.getMessage()]
    assert record.levelno == logging.WARNING and "is empty (0 bytes)" in record.getMessage()
    caplog.clear()
    (folder / STORE_FILE).unlink()
    with caplog.at_level(logging.INFO, logger="mixllm.serve.restore"):
        store, _ = open_state(fitted_dir, tmp_path / "new-state")
    store.close()
    assert any("no store in" in r.getMessage() for r in caplog.records)


# -- a damaged store --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_over_the_tail_are_refused_at_open(
    fitted_dir: Path, tmp_path: Path, seed: int
) -> None:
    state = make_state(fitted_dir, tmp_path / "state", spare=40)
    overwrite_tail(state.db, seed=seed)
    with pytest.raises(StoreDamagedError) as info:
        open_state(fitted_dir, state.folder)
    message = str(info.value)
    assert str(state.db) in message and "is damaged" in message and "Move it aside" in message
    assert state.new.name in message and "checkpoints.old" in message
    assert info.value.detail
    with pytest.raises(StoreDamagedError, match="Move it aside"):
        Store(state.db)


def test_damage_met_by_a_read_is_a_persist_error(fitted_dir: Path, tmp_path: Path) -> None:
    """Damage done while the store is open: the reads that meet it raise StoreDamagedError
    (a 503 in the gateway), never a raw sqlite3 error."""
    state = make_state(fitted_dir, tmp_path / "state", spare=40)
    with Store(state.db) as reader, Store(state.db) as writer:
        ids = state.ids
        overwrite_tail(state.db)
        writer.add_spend("key-b", 1.0)  # a write by another connection: the reader's cache goes
        errors: list[Exception] = []
        for i in range(len(ids) + 1):
            try:
                if i < len(ids):
                    reader.get_decision(ids[i])
                else:
                    reader.replay_since(0)
            except Exception as exc:
                errors.append(exc)
    assert errors, "no read met the damage"
    assert all(isinstance(e, StoreDamagedError) for e in errors), errors
    assert str(state.db) in str(errors[0]) and "Move it aside" in str(errors[0])


@pytest.mark.parametrize(
    "content",
    [b"this is not sqlite" * 400, np.random.default_rng(3).bytes(64 * 1024)],
    ids=["text", "random"],
)
def test_a_file_that_is_not_a_database_is_refused(
    fitted_dir: Path, tmp_path: Path, content: bytes
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / STORE_FILE).write_bytes(content)
    with pytest.raises(StoreDamagedError, match="not a database") as info:
        open_state(fitted_dir, folder)
    assert "start afresh from" in str(info.value)
    assert (folder / STORE_FILE).read_bytes() == content


# -- a damaged checkpoint ---------------------------------------------------------------------
def _flip_arrays(path: Path) -> None:
    (arrays,) = [p for p in path.iterdir() if p.name != "manifest.json"]
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arrays.write_bytes(bytes(data))


def _garble_manifest(path: Path) -> None:
    (path / "manifest.json").write_text("{ not json")


def _delete(path: Path) -> None:
    for file in path.iterdir():
        file.unlink()
    path.rmdir()


@pytest.mark.parametrize(
    ("damage", "why"),
    [(_flip_arrays, "checksum"), (_garble_manifest, "not valid JSON"), (_delete, "missing")],
    ids=["arrays", "manifest", "deleted"],
)
def test_a_damaged_newest_checkpoint_gives_way_to_the_older_one(
    fitted_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object, why: str
) -> None:
    state = make_state(fitted_dir, tmp_path / "state")
    damage(state.new)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="mixllm.serve.restore"):
        store, router = open_state(fitted_dir, state.folder)
    try:
        # the older checkpoint plus the feedback after it: all the feedback stored
        older = Router.load(state.old)
        for _, decision, feedback in store.replay_since(state.old_seq):
            assert older.learn_one(decision, feedback)
        assert_same(predictions(router), predictions(older))
        assert last_seq(store) == state.last_seq
        assert store.spent("key-a") == 0.25
    finally:
        store.close()
    assert_same(predictions(router), reference(fitted_dir, state.db))
    assert np.abs(predictions(router) - predictions(Router.load(state.old))).max() > 1e-9
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert str(state.old) in text and str(state.new) in text and why in text
    if damage is not _delete:  # set aside, so that pruning keeps the checkpoint in use
        assert not state.new.exists()
        assert (state.new.parent / f"damaged-{state.new.name}").is_dir()
    store, again = open_state(fitted_dir, state.folder)  # and the next start does the same
    store.close()
    assert_same(predictions(again), predictions(router))


def test_no_usable_checkpoint_with_feedback_is_refused(fitted_dir: Path, tmp_path: Path) -> None:
    state = make_state(fitted_dir, tmp_path / "state")
    _flip_arrays(state.new)
    _garble_manifest(state.old)
    with pytest.raises(PersistError, match="no checkpoint of store") as info:
        open_state(fitted_dir, state.folder)
    message = str(info.value)
    assert state.new.name in message and state.old.name in message
    assert "checksum" in message and "not valid JSON" in message
    assert "would lose what the feedback taught" in message


def test_without_checkpoints_all_the_feedback_is_learned_again(
    fitted_dir: Path, tmp_path: Path
) -> None:
    state = make_state(fitted_dir, tmp_path / "state")
    with sqlite3.connect(state.db) as conn:  # as if no checkpoint had ever been taken
        conn.execute("DELETE FROM checkpoints")
    conn.close()
    with Store(state.db) as store:
        restored = restore_router(fitted_dir, store)
    assert_same(predictions(restored), reference(fitted_dir, state.db))


def test_a_checkpoint_older_than_the_retention_purge_is_passed_over(
    fitted_dir: Path, tmp_path: Path
) -> None:
    """Retention deleted feedback the older checkpoint lacks: it cannot be brought up to date,
    so with the newest one damaged the start is refused rather than silently forgetful."""
    state = make_state(fitted_dir, tmp_path / "state")
    with Store(state.db) as store:
        store.record_checkpoint(str(state.new), state.last_seq)  # the newest two hold all
    with Store(state.db, retention_s=10.0, clock=lambda: 5000.0) as store:  # purged at open
        # d0..d5 are gone with their feedback; d6, d7 wait for the replay after a restart
        assert store.counts() == {"decisions": 2, "feedback": 2, "checkpoints": 3}
        assert store.purged_seq() == state.new_seq
    _flip_arrays(state.new)
    with pytest.raises(PersistError, match="retention deleted feedback up to #6"):
        open_state(fitted_dir, state.folder)


def test_build_app_refuses_an_empty_store_beside_checkpoints(
    fitted_dir: Path, tmp_path: Path
) -> None:
    from mixllm.serve.run import build_app

    state = make_state(fitted_dir, tmp_path / "state")
    state.db.write_bytes(b"")
    with pytest.raises(PersistError, match="is empty"):
        build_app(fitted_dir, environ={}, state_dir=state.folder)
    assert os.path.getsize(state.db) == 0
