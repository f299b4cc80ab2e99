"""The store over time: retention and purge (keeping the feedback a restart replays), which key
owns a decision, conversations (sessions), the heartbeat write, resetting a key's spend."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mixllm.errors import ConfigError, PersistError
from mixllm.serve import store as store_module
from mixllm.serve.store import Store, open_store
from mixllm.types import Decision, Feedback
from tests import pg_service
from tests.pg_service import read_rows

# the fixtures: a PostgreSQL server for the session, a new database or SQLite file per test
pg_server, pg_database, store_url = (
    pg_service.pg_server,
    pg_service.pg_database,
    pg_service.store_url,
)

DAY = 86400.0


def decision(decision_id: str, llm: str = "small") -> Decision:
    return Decision(f"q-{decision_id}", llm, 1.0, scores={llm: 1.0}, decision_id=decision_id)


class Clock:
    """A settable Unix time."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock(1_700_000_000.0)


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[Store]:
    with open_store(store_url, retention_s=DAY, clock=clock) as opened:
        yield opened


def stored_ids(url: str) -> tuple[list[str], list[int]]:
    """The decision ids and feedback seqs in the database, read on a connection of its own."""
    ids = [str(r[0]) for r in read_rows(url, "SELECT decision_id FROM decisions ORDER BY rowid")]
    seqs = [int(str(r[0])) for r in read_rows(url, "SELECT seq FROM feedback ORDER BY seq")]
    return ids, seqs


# -- retention -----------------------------------------------------------------------------
def test_a_decision_past_retention_is_not_found(store: Store, clock: Clock) -> None:
    store.record_decision(decision("d1"))
    assert store.get_decision("d1") is not None
    clock.t += DAY - 1
    assert store.get_decision("d1") is not None
    clock.t += 2
    assert store.get_decision("d1") is None
    assert store.get_decision("d1", now=clock.t - 10) is not None  # an explicit now wins
    assert store.counts()["decisions"] == 1  # hidden, not yet purged


def test_purge_keeps_the_feedback_the_checkpoints_lack(
    store_url: str, store: Store, clock: Clock
) -> None:
    t0 = clock.t
    for i in range(6):
        store.record_decision(decision(f"d{i}"), now=t0 + i)
    seqs = [store.record_feedback(f"d{i}", Feedback(quality=0.5)) for i in range(4)]
    assert seqs == [1, 2, 3, 4]
    store.record_checkpoint("ckpt-a", 2)
    store.record_checkpoint("ckpt-b", 3)  # the older of the newest two holds up to #2
    store.record_decision(decision("recent"), now=t0 + 1.5 * DAY)
    assert store.purge(now=t0 + 1.2 * DAY) == 4  # d0, d1 (feedback #1, #2), d4, d5
    ids, kept = stored_ids(store_url)
    assert ids == ["d2", "d3", "recent"] and kept == [3, 4]
    assert store.counts() == {"decisions": 3, "feedback": 2, "checkpoints": 2}
    assert store.purged_seq() == 2
    # what a restart from either checkpoint replays is all there, past retention or not
    assert [(s, d.decision_id) for s, d, _ in store.replay_since(2)] == [(3, "d2"), (4, "d3")]
    assert store.get_decision("d2", now=t0 + 1.2 * DAY) is None
    assert store.purge(now=t0 + 1.2 * DAY) == 0  # nothing more until a checkpoint
    store.record_checkpoint("ckpt-c", 4)
    assert store.purge(now=t0 + 1.2 * DAY) == 1  # d2: both newest checkpoints hold #3
    assert stored_ids(store_url) == (["d3", "recent"], [4])
    assert store.purged_seq() == 3
    assert store.purge(now=t0 + 3 * DAY) == 1  # "recent" (no feedback); d3 still waits
    assert store.counts()["decisions"] == 1


def test_purge_runs_at_open_and_every_so_many_decisions(
    store_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(store_url, clock=clock) as store:  # no retention: kept
        for i in range(3):
            store.record_decision(decision(f"old{i}"))
        assert store.purge() == 0
    clock.t += 2 * DAY
    with open_store(store_url, retention_s=DAY, clock=clock) as store:
        assert store.counts()["decisions"] == 0  # purged at open
        monkeypatch.setattr(store_module, "PURGE_EVERY", 4)
        for i in range(3):
            store.record_decision(decision(f"a{i}"))
        clock.t += 2 * DAY
        for i in range(3):
            store.record_decision(decision(f"b{i}"))
        # the 4th recorded purged a0..a2; b0..b2 are new
        assert stored_ids(store_url)[0] == ["b0", "b1", "b2"]


def test_without_retention_nothing_is_purged(tmp_path: Path, clock: Clock) -> None:
    with Store(tmp_path / "store.db", clock=clock) as store:
        store.record_decision(decision("d1"), now=0.0)
        assert store.purge() == 0
        assert store.get_decision("d1") is not None


# -- who owns a decision; conversations ----------------------------------------------------
def test_only_the_deciding_key_sees_its_decision(store: Store) -> None:
    store.record_decision(decision("d1"), key_id="alice")
    store.record_decision(decision("d2"))  # open gateway: no key
    assert store.get_decision("d1", key_id="alice") is not None
    assert store.get_decision("d1", key_id="bob") is None
    assert store.get_decision("d1", key_id="") is None
    assert store.get_decision("d1") is not None  # no key given: not checked
    assert store.get_decision("d2", key_id="") is not None
    assert store.get_decision("d2", key_id="alice") is None


def test_session_llm_is_the_latest_answer_of_that_key(store: Store, clock: Clock) -> None:
    t = clock.t
    assert store.session_llm("s1", key_id="alice") is None
    store.record_decision(decision("d1", "small"), key_id="alice", session_id="s1", now=t)
    assert store.session_llm("s1", key_id="alice") == "small"
    store.record_decision(decision("d2", "big"), key_id="alice", session_id="s1", now=t + 5)
    assert store.session_llm("s1", key_id="alice") == "big"
    store.set_answer("d2", answered_by="medium", cost_usd=0.01)  # after a fallback
    assert store.session_llm("s1", key_id="alice") == "medium"
    store.record_decision(decision("d3", "tiny"), key_id="bob", session_id="s1", now=t + 9)
    store.record_decision(decision("d4", "tiny"), key_id="alice", session_id="s2", now=t + 9)
    store.record_decision(decision("d5", "tiny"), key_id="alice", now=t + 9)
    assert store.session_llm("s1", key_id="alice") == "medium"
    assert store.session_llm("s1", key_id="bob") == "tiny"
    # the same instant: the one recorded last
    store.record_decision(decision("d6", "huge"), key_id="alice", session_id="s1", now=t + 5)
    assert store.session_llm("s1", key_id="alice") == "huge"
    assert store.session_llm("s1", key_id="alice", now=t + DAY + 6) is None  # past retention
    assert store.session_llm("s1", key_id="bob", now=t + DAY + 6) == "tiny"


# -- heartbeat and spend -------------------------------------------------------------------
def test_heartbeat_writes(store_url: str, store: Store, clock: Clock) -> None:
    def written() -> float:  # another connection sees it: committed
        return float(str(read_rows(store_url, "SELECT heartbeat_at FROM status")[0][0]))

    store.heartbeat(now=123.0)
    assert written() == 123.0
    store.heartbeat()
    assert written() == clock.t


def test_heartbeat_fails_when_the_store_cannot_be_written(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Store(path, busy_timeout_s=0.0)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(PersistError, match="locked"):
            store.heartbeat()
        other.execute("ROLLBACK")
        store.heartbeat()
    finally:
        other.close()
    store.close()
    with pytest.raises(PersistError, match="closed"):
        store.heartbeat()


def test_reset_spend(store: Store) -> None:
    assert store.add_spend("k", 1.5, limit_usd=2.0)
    assert not store.add_spend("k", 1.0, limit_usd=2.0)
    assert store.reset_spend("k") == 1.5
    assert store.spent("k") == 0.0
    assert store.add_spend("k", 1.0, limit_usd=2.0)
    assert store.reset_spend("never-spent") == 0.0
    assert store.spent("k") == 1.0


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.record_decision(decision("d1"), session_id=""), "session_id=''"),
        (lambda s: s.record_decision(decision("d1"), session_id=7), "session_id=7"),
        (lambda s: s.get_decision("d1", key_id=3), "key_id=3"),
        (lambda s: s.get_decision("d1", now=math.inf), "now=inf"),
        (lambda s: s.session_llm("", key_id="a"), "session_id=''"),
        (lambda s: s.session_llm("s", key_id=None), "key_id=None"),
        (lambda s: s.heartbeat(now=math.nan), "now=nan"),
        (lambda s: s.purge(now="soon"), "now='soon'"),
        (lambda s: s.reset_spend(""), "key_id=''"),
    ],
)
def test_bad_input_is_a_config_error(
    store: Store, call: Callable[[Store], object], match: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        call(store)
    assert store.counts()["decisions"] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retention_s": 0}, "retention_s=0"),
        ({"retention_s": -1.0}, "retention_s=-1.0"),
        ({"retention_s": math.nan}, "retention_s=nan"),
        ({"clock": 5.0}, "clock=5.0"),
    ],
)
def test_bad_store_options(tmp_path: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        Store(tmp_path / "store.db", **kwargs)  # type: ignore[arg-type]


def test_a_clock_that_is_not_a_time_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "store.db", clock=lambda: math.nan) as store:
        with pytest.raises(ConfigError, match=re.escape("clock()=nan")):
            store.record_decision(decision("d1"))
        assert store.counts()["decisions"] == 0
