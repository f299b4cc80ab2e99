"""The SQLite store's own behaviour: its migrations (PRAGMA user_version), WAL mode, a file that
is not a database, a missing folder, a closed store. (Behaviour shared with PostgreSQL is tested
on both backends in test_store.py.)"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mixllm.errors import PersistError
from mixllm.serve import store as store_module
from mixllm.serve.store import MIGRATIONS, Store


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


# -- migrations -----------------------------------------------------------------------------------
def test_fresh_database_has_every_migration(tmp_path: Path) -> None:
    Store(tmp_path / "store.db").close()
    assert user_version(tmp_path / "store.db") == len(MIGRATIONS)


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    conn.close()
    newer, known = len(MIGRATIONS) + 3, len(MIGRATIONS)
    with pytest.raises(PersistError, match=f"version {newer} is newer .*version {known}"):
        Store(path)


def test_reopen_applies_only_new_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    # The applied migrations must not run again (they would fail), the new one must.
    broken = tuple("CREATE TABLE decisions (x);" for _ in MIGRATIONS)
    monkeypatch.setattr(store_module, "MIGRATIONS", (*broken, "CREATE TABLE extra (x);"))
    with Store(path) as store:
        assert store.counts()["decisions"] == 0
    assert user_version(path) == len(MIGRATIONS) + 1
    with Store(path):  # and it is not re-run either
        pass


def test_failed_migration_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "store.db"
    Store(path).close()
    bad = "CREATE TABLE half (x); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(store_module, "MIGRATIONS", (*MIGRATIONS, bad))
    with pytest.raises(PersistError, match="no_such_table"):
        Store(path)
    assert user_version(path) == len(MIGRATIONS)
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert "half" not in tables


def test_file_mode_is_wal(tmp_path: Path) -> None:
    Store(tmp_path / "store.db").close()
    conn = sqlite3.connect(tmp_path / "store.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PersistError, match=r"junk\.db"):
        Store(path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PersistError, match="nowhere"):
        Store(tmp_path / "nowhere" / "store.db")


def test_closed_store_raises(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(PersistError, match="closed"):
        store.counts()
