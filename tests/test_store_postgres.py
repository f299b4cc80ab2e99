"""The gateway's store on PostgreSQL: open_store's URLs, migrations, several Store objects (as
several replicas) on one database, feedback notifications, checkpoints in the database, the
checkpoint writer lock, and a server that goes away and comes back. The store behaviour shared
with SQLite is tested on both backends in tests/serve/test_store.py and test_retention.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mixllm.errors import ConfigError, PersistError
from mixllm.serve import _postgres
from mixllm.serve.store import KEEP_CHECKPOINTS, Store, open_store
from mixllm.types import Decision, Feedback
from tests import pg_service
from tests.pg_service import PostgresServer

# the fixtures: a PostgreSQL server for the session, a new database or SQLite file per test
pg_server, pg_database, store_url = (
    pg_service.pg_server,
    pg_service.pg_database,
    pg_service.store_url,
)

DAY = 86400.0


def decision(decision_id: str) -> Decision:
    return Decision(
        f"q-{decision_id}", "small", 1.0, scores={"small": 1.0}, decision_id=decision_id
    )


def run_in_threads(n_threads: int, task: Callable[[int], list[Any]]) -> list[Any]:
    barrier = threading.Barrier(n_threads)

    def start(i: int) -> list[Any]:
        barrier.wait(timeout=30)
        return task(i)

    with ThreadPoolExecutor(n_threads) as pool:
        return [x for chunk in pool.map(start, range(n_threads)) for x in chunk]


@pytest.fixture
def two(pg_database: str) -> Iterator[tuple[Store, Store]]:
    """Two Store objects on one new database, as two replicas would have."""
    with open_store(pg_database) as one, open_store(pg_database) as other:
        yield one, other


# -- open_store -----------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["{path}", "sqlite:///{path}", "sqlite:///:memory:", "sqlite://"])
def test_open_store_opens_sqlite(tmp_path: Path, form: str) -> None:
    url = form.format(path=tmp_path / "store.db")
    with open_store(url) as store:
        assert type(store) is Store
        store.record_decision(decision("d1"))
        assert store.record_feedback("d1", Feedback(quality=0.5)) == 1
    assert (tmp_path / "store.db").exists() == (":memory:" not in url and url != "sqlite://")


def test_open_store_opens_postgres(pg_database: str) -> None:
    for url in (pg_database, pg_database.replace("postgresql://", "postgres://")):
        with open_store(url, retention_s=DAY) as store:
            assert isinstance(store, Store)
            assert store.dialect == "postgresql" and store.retention_s == DAY
            assert store.counts() == {"decisions": 0, "feedback": 0, "checkpoints": 0}


def test_open_store_refuses_other_urls() -> None:
    with pytest.raises(ConfigError, match=r"'mysql://app@db/x'; expected a file path .*postgres"):
        open_store("mysql://app:hunter2@db/x")
    with pytest.raises(ConfigError, match="url=''"):
        open_store("")


def test_messages_never_show_the_password(pg_database: str) -> None:
    url = pg_database.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    with open_store(url) as store:
        assert "hunter2" not in store.path and store.path.endswith(url.rsplit("/", 1)[1])
    with pytest.raises(PersistError, match="nosuchdb") as info:
        open_store(url.rsplit("/", 1)[0] + "/nosuchdb")
    assert "hunter2" not in str(info.value)


# -- migrations -----------------------------------------------------------------------------------
def schema_version(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
    assert row is not None
    return int(row[0])


def test_migrations_from_empty_and_not_again(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(pg_database).close()
    assert schema_version(pg_database) == len(_postgres.PG_MIGRATIONS)
    # Applied migrations do not run again (they would fail); a new one does, once.
    broken = tuple("CREATE TABLE decisions (x INTEGER);" for _ in _postgres.PG_MIGRATIONS)
    monkeypatch.setattr(_postgres, "PG_MIGRATIONS", (*broken, "CREATE TABLE extra (x INTEGER);"))
    open_store(pg_database).close()
    open_store(pg_database).close()
    assert schema_version(pg_database) == len(broken) + 1


def test_failed_and_newer_migrations(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(pg_database).close()
    known = len(_postgres.PG_MIGRATIONS)
    bad = "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(_postgres, "PG_MIGRATIONS", (*_postgres.PG_MIGRATIONS, bad))
    with pytest.raises(PersistError, match="no_such_table"):
        open_store(pg_database)
    assert schema_version(pg_database) == known
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
        conn.execute("UPDATE schema_version SET version = %s", (known + 3,))
    monkeypatch.undo()
    with pytest.raises(PersistError, match=f"version {known + 3} is newer .*version {known}"):
        open_store(pg_database)


def test_replicas_migrate_one_database_at_once(pg_database: str) -> None:
    stores = run_in_threads(4, lambda i: [open_store(pg_database)])
    for store in stores:
        store.close()
    assert schema_version(pg_database) == len(_postgres.PG_MIGRATIONS)


# -- several replicas (the spend limit across replicas: tests/serve/test_store.py) ---------------
def test_feedback_seqs_are_gap_free_and_in_commit_order(two: tuple[Store, Store]) -> None:
    n = 40
    for i in range(n):
        two[0].record_decision(decision(f"d{i}"))
    stop = threading.Event()
    seen: list[list[int]] = []

    def watch() -> None:  # every read sees a prefix 1..k: no smaller seq ever appears later
        for _ in range(10_000):
            seen.append([seq for seq, _, _ in two[1].feedback_since(0)])
            if stop.is_set():
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        seqs = run_in_threads(
            4,
            lambda t: [
                two[t % 2].record_feedback(f"d{i}", Feedback(quality=0.5)) for i in range(t, n, 4)
            ],
        )
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert sorted(seqs) == list(range(1, n + 1))
    assert seen and all(s == list(range(1, len(s) + 1)) for s in seen)
    assert [seq for seq, _, _ in two[0].feedback_since(0)] == list(range(1, n + 1))


def test_first_feedback_wins_across_replicas(two: tuple[Store, Store]) -> None:
    two[0].record_decision(decision("d1"))
    results = run_in_threads(
        6, lambda i: [two[i % 2].record_feedback("d1", Feedback(quality=i / 10))]
    )
    assert results.count(None) == 5
    two[0].record_decision(decision("d2"))
    assert two[1].record_feedback("d2", Feedback(reward=True)) == 2  # no seq was spent


# -- waiting for feedback -------------------------------------------------------------------------
def test_wait_feedback_wakes_on_another_replicas_feedback(
    two: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, other = two
    monkeypatch.setattr(_postgres, "_POLL_S", 60.0)  # only the notification can wake it in time
    assert one.wait_feedback(0, 0.05) is False
    other.record_decision(decision("d1"))
    timer = threading.Timer(0.2, lambda: other.record_feedback("d1", Feedback(quality=1.0)))
    timer.start()
    try:
        assert one.wait_feedback(0, 20.0) is True
    finally:
        timer.join()
    assert one.wait_feedback(0, 0.0) is True  # already there: no wait
    assert one.wait_feedback(1, 0.05) is False


def test_wait_feedback_on_sqlite_polls(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as one, Store(tmp_path / "s.db") as other:
        other.record_decision(decision("d1"))
        timer = threading.Timer(0.1, lambda: other.record_feedback("d1", Feedback(quality=1.0)))
        timer.start()
        try:
            assert one.wait_feedback(0, 20.0) is True
        finally:
            timer.join()
        assert one.wait_feedback(1, 0.05) is False
        with pytest.raises(ConfigError, match="after_seq=-1"):
            one.wait_feedback(-1, 1.0)
        with pytest.raises(ConfigError, match="timeout_s=nan"):
            one.wait_feedback(0, float("nan"))


# -- checkpoints ----------------------------------------------------------------------------------
def test_checkpoint_data_round_trip_keeps_the_newest(two: tuple[Store, Store]) -> None:
    one, other = two
    assert one.last_checkpoint_data() is None
    blobs = [bytes(range(256)) * 40, b"\x00second", b"third\xff"]
    seqs = [one.record_checkpoint_data(blob, i * 10) for i, blob in enumerate(blobs)]
    assert seqs == [1, 2, 3]
    assert other.last_checkpoint_data() == (b"third\xff", 20)
    with psycopg.connect(one.url) as conn:  # type: ignore[attr-defined]
        rows = conn.execute("SELECT seq FROM checkpoint_data ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == seqs[-KEEP_CHECKPOINTS:]
    with pytest.raises(ConfigError, match="expected bytes"):
        one.record_checkpoint_data("text", 1)  # type: ignore[arg-type]


def test_checkpoint_lock_has_one_holder(two: tuple[Store, Store]) -> None:
    one, other = two
    with one.checkpoint_lock() as first, other.checkpoint_lock() as second:
        assert (first, second) == (True, False)
    with other.checkpoint_lock() as again:
        assert again is True


def test_checkpoint_lock_on_sqlite(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store, store.checkpoint_lock() as held:
        assert held is True


# -- both backends: pacing, shadow calls, export rows, purge with checkpoints in the database ---
def test_pacing_spend(store_url: str) -> None:
    with open_store(store_url) as store:
        assert store.reserve_pacing("gateway", "2026-12-05", 0.75, limit_usd=1.0) == 0.75
        assert store.reserve_pacing("gateway", "2026-12-05", 0.5, limit_usd=1.0) is None
        assert store.settle_pacing("gateway", "2026-12-05", 0.75, 0.25, lam=2.5) == 0.25
        store.settle_pacing("gateway", "2026-12-06", 0.0, 0.125, lam=None)
        assert store.pacing_spent("gateway", "2026-12-05") == 0.25
        assert store.pacing_spent("gateway", "2026-12-06") == 0.125
        assert store.pacing_lam("gateway") == 2.5 and store.pacing_lam("key:x") is None


def test_shadow_calls_and_export_rows(store_url: str) -> None:
    with open_store(store_url) as store:
        store.record_decision(decision("d1"), now=1.0)
        store.set_answer("d1", answered_by="small", cost_usd=0.001, output_tokens=12.0)
        assert store.reserve_shadow_spend("2026-12-05", 0.02, limit_usd=0.03)
        assert not store.reserve_shadow_spend("2026-12-05", 0.02, limit_usd=0.03)
        store.settle_shadow_spend("2026-12-05", 0.02, 0.0125)
        assert store.shadow_spent("2026-12-05") == 0.0125
        shadow = Decision("q-d1", "big", 1.0, scores={"big": 1.0}, decision_id="s1")
        seq = store.record_shadow(
            shadow, shadow_of="d1", outcome="learned", cost_usd=0.0125,
            feedback=Feedback(quality=0.25), latency_s=1.5, now=2.0,
        )  # fmt: skip
        assert seq == 1 and store.wait_feedback(0, 0.0)
        served = Decision("q-d1", "small", 1.0, scores={"small": 1.0}, decision_id="s2")
        store.record_shadow(
            served, shadow_of="d1", outcome="served", cost_usd=0.0, feedback=Feedback(quality=1.0),
            now=3.0,
        )  # fmt: skip
        assert store.answer_of("s1") == (0.0125, None) and store.answer_of("d1") == (0.001, 12.0)
        rows = store.outcome_rows()
        assert [(r["decision_id"], r["shadow"], r["quality"]) for r in rows] == [
            ("d1", 0, None), ("s1", 1, 0.25), ("s2", 1, 1.0)
        ]  # fmt: skip
        store.record_feedback("d1", Feedback(reward=True))  # the client's word wins
        rows = store.outcome_rows(since=1.5)
        assert [(r["decision_id"], r["llm"], r["latency_s"]) for r in rows] == [("s1", "big", 1.5)]


def test_ids_with_nul_characters_find_their_rows(store_url: str) -> None:
    """PostgreSQL's text cannot hold NUL (it is stored as U+FFFD there): lookups still work."""
    with open_store(store_url) as store:
        store.record_decision(decision("d\x00"), key_id="k\x00", session_id="s\x00", prompt="a\x00")
        assert store.get_decision("d\x00", key_id="k\x00") is not None
        assert store.get_decision("d\x00", key_id="k") is None
        assert store.session_llm("s\x00", key_id="k\x00") == "small"
        assert store.record_feedback("d\x00", Feedback(quality=0.5)) == 1
        assert store.add_spend("k\x00", 1.0) and store.spent("k\x00") == 1.0


def test_purge_keeps_the_feedback_the_stored_checkpoints_lack(store_url: str) -> None:
    with open_store(store_url, retention_s=DAY) as store:
        for i in range(4):
            store.record_decision(decision(f"d{i}"), now=float(i))
            store.record_feedback(f"d{i}", Feedback(quality=0.5), now=float(i))
        assert store.purge(now=2 * DAY) == 0  # no checkpoint yet: all feedback is needed
        store.record_checkpoint_data(b"one", 1)
        store.record_checkpoint_data(b"two", 3)  # the older of the newest two holds up to #1
        assert store.purge(now=2 * DAY) == 1 and store.purged_seq() == 1
        assert [seq for seq, _, _ in store.replay_since(1)] == [2, 3, 4]
        store.record_checkpoint_data(b"three", 4)
        assert store.purge(now=2 * DAY) == 2 and store.purged_seq() == 3
        assert store.last_checkpoint_data() == (b"three", 4)


# -- the server goes away -------------------------------------------------------------------------
def test_server_restart(pg_server: PostgresServer, pg_database: str) -> None:
    with open_store(pg_database) as store:
        store.record_decision(decision("d1"))
        assert store.add_spend("k", 1.0)
        pg_server.stop()
        try:
            with pytest.raises(PersistError, match="Connection refused"):
                store.counts()
            with pytest.raises(PersistError, match="Connection refused"):
                store.add_spend("k", 1.0, limit_usd=10.0)  # a limit holds only in the database
            assert store.add_spend("k", 0.5)  # no limit: kept, written when the server is back
            assert store.deferred == 1
            with pytest.raises(PersistError, match="Connection refused"), store.checkpoint_lock():
                pass
            with pytest.raises(PersistError, match="Connection refused"):
                store.wait_feedback(0, 5.0)
        finally:
            pg_server.start()
        assert store.spent("k") == 1.5  # the failed write changed nothing; the kept one came
        assert store.deferred == 0
        assert store.record_feedback("d1", Feedback(quality=0.5)) == 1
        assert store.wait_feedback(0, 1.0) is True
        assert store.counts() == {"decisions": 1, "feedback": 1, "checkpoints": 0}
