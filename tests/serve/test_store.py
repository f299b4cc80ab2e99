"""The gateway's store: round trips, idempotent feedback, durability, locking, migrations (the
behaviour shared by both backends is tested on SQLite and on PostgreSQL)."""

from __future__ import annotations

import math
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixllm.errors import ConfigError, UnknownDecisionError
from mixllm.serve.store import Store, open_store
from mixllm.types import Decision, Feedback
from tests import pg_service

# the fixtures: a PostgreSQL server for the session, a new database or SQLite file per test
pg_server, pg_database, store_url = (
    pg_service.pg_server,
    pg_service.pg_database,
    pg_service.store_url,
)


def make_decision(decision_id: str = "d1", **changes: Any) -> Decision:
    fields: dict[str, Any] = {
        "query_id": "q1",
        "llm": "small",
        "lam": 2.5,
        "scores": {"small": 0.25, "big": -1.5},
        "predicted_quality": {"small": 0.5, "big": 0.875},
        "predicted_cost_usd": {"small": 1e-6, "big": 3.25e-4},
        "predicted_wait_s": {"small": 0.0, "big": 1.5},
        "embedding": np.array([0.1, -2.0, 3.5e-8, 7.0], dtype=np.float32),
        "decision_id": decision_id,
        "prompt_tokens": 42.0,
    }
    return Decision(**{**fields, **changes})


def assert_same_decision(got: Decision | None, want: Decision) -> None:
    assert got is not None
    assert got == want  # compares every field except the embedding
    assert list(got.scores) == list(want.scores)  # key order too
    if want.embedding is None:
        assert got.embedding is None
    else:
        assert got.embedding is not None
        assert got.embedding.dtype == np.float32
        assert got.embedding.shape == want.embedding.shape
        np.testing.assert_array_equal(got.embedding, want.embedding)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.db") as opened:
        yield opened


# -- decisions ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "decision",
    [
        make_decision(),
        make_decision(embedding=None),
        make_decision(prompt_tokens=math.nan, predicted_wait_s={}),
        make_decision(llm="模型-ü", scores={"模型-ü": 1.0, "🤖 bot": 0.5}, query_id="q-é"),
        make_decision(embedding=np.arange(384, dtype=np.float32) / 7),
    ],
    ids=["embedding", "no-embedding", "nan-tokens", "unicode", "dim-384"],
)
def test_decision_round_trip(store: Store, decision: Decision) -> None:
    store.record_decision(decision, key_id="key-a", request_model="auto", now=123.5)
    got = store.get_decision(decision.decision_id)
    assert_same_decision(got, decision)
    assert got is not None
    assert math.isnan(got.prompt_tokens) == math.isnan(decision.prompt_tokens)
    if got.embedding is not None:
        got.embedding[0] = 9.0  # a fresh writable array, not a view of the stored bytes


def test_unknown_decision_is_none(store: Store) -> None:
    assert store.get_decision("nope") is None


def test_duplicate_decision_id_is_rejected(store: Store) -> None:
    store.record_decision(make_decision("d1"))
    with pytest.raises(ConfigError, match="'d1' is already stored"):
        store.record_decision(make_decision("d1", llm="big"))
    got = store.get_decision("d1")
    assert got is not None and got.llm == "small"


def test_set_answer(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store(path) as store:
        store.record_decision(make_decision("d1"))
        store.set_answer("d1", answered_by="big", cost_usd=0.002)
        with pytest.raises(UnknownDecisionError, match="'nope'"):
            store.set_answer("nope", answered_by="big", cost_usd=None)
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT answered_by, cost_usd FROM decisions").fetchone()
    finally:
        conn.close()
    assert row == ("big", 0.002)


# -- feedback -------------------------------------------------------------------------------------
def test_feedback_is_idempotent_first_wins(store: Store) -> None:
    store.record_decision(make_decision("d1"))
    first = store.record_feedback("d1", Feedback(quality=0.75, cost_usd=0.01), now=10.0)
    assert first == 1
    assert store.record_feedback("d1", Feedback(reward=False), now=11.0) is None
    assert store.feedback_since(0) == [(1, "d1", Feedback(quality=0.75, cost_usd=0.01))]
    assert store.counts() == {"decisions": 1, "feedback": 1, "checkpoints": 0}


def test_feedback_reward_round_trip(store: Store) -> None:
    for i, reward in enumerate([True, False, np.bool_(True)]):
        store.record_decision(make_decision(f"d{i}"))
        store.record_feedback(f"d{i}", Feedback(reward=reward))  # type: ignore[arg-type]
    got = [fb.reward for _, _, fb in store.feedback_since(0)]
    assert got == [True, False, True]
    assert all(type(r) is bool for r in got)


def test_feedback_for_unknown_decision(store: Store) -> None:
    with pytest.raises(UnknownDecisionError, match="'ghost'"):
        store.record_feedback("ghost", Feedback(quality=0.5))
    assert store.counts()["feedback"] == 0


# -- durability -----------------------------------------------------------------------------------
def test_everything_survives_reopen(store_url: str) -> None:
    decisions = [make_decision(f"d{i}", lam=float(i)) for i in range(6)]
    with open_store(store_url) as store:
        for d in decisions:
            store.record_decision(d)
        seqs = [store.record_feedback(d.decision_id, Feedback(quality=0.1 * i)) for i, d in
                enumerate(decisions)]  # fmt: skip
        store.record_checkpoint("ckpt/1", feedback_seq=seqs[2] or 0)
        store.add_spend("key-a", 1.25)
    with open_store(store_url) as store:
        for d in decisions:
            assert_same_decision(store.get_decision(d.decision_id), d)
        assert store.last_checkpoint() == ("ckpt/1", seqs[2])
        later = store.feedback_since(seqs[2] or 0)
        assert [(s, did) for s, did, _ in later] == [(seqs[i], f"d{i}") for i in (3, 4, 5)]
        assert [fb.quality for _, _, fb in later] == [0.1 * i for i in (3, 4, 5)]
        assert store.spent("key-a") == 1.25
        assert store.counts() == {"decisions": 6, "feedback": 6, "checkpoints": 1}


def test_last_checkpoint_is_the_latest(store: Store) -> None:
    assert store.last_checkpoint() is None
    assert store.record_checkpoint("a", 0) == 1
    assert store.record_checkpoint("b", 7) == 2
    assert store.last_checkpoint() == ("b", 7)


_CRASH_SCRIPT = """
import os, signal, sys
from mixllm.serve.store import Store
from mixllm.types import Decision, Feedback

store = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    store.record_decision(Decision("q", "small", 1.0, decision_id=f"d{i}"))
    seq = store.record_feedback(f"d{i}", Feedback(quality=0.5))
    print(seq, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no clean exit
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_acknowledged_feedback_survives_kill(tmp_path: Path) -> None:
    path, n = tmp_path / "store.db", 150
    result = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, str(path), str(n)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -9, result.stderr
    acknowledged = [int(line) for line in result.stdout.split()]
    assert len(acknowledged) == n
    with Store(path) as store:
        stored = [seq for seq, _, _ in store.feedback_since(0)]
        assert set(acknowledged) <= set(stored)
        assert store.counts()["decisions"] == n


# -- concurrency ----------------------------------------------------------------------------------
def run_in_threads(n_threads: int, task: Callable[[int], list[Any]]) -> list[Any]:
    barrier = threading.Barrier(n_threads)

    def start(i: int) -> list[Any]:
        barrier.wait()
        return task(i)

    with ThreadPoolExecutor(n_threads) as pool:
        return [x for chunk in pool.map(start, range(n_threads)) for x in chunk]


def test_concurrent_spend_never_passes_the_limit(store_url: str) -> None:
    # Two Store objects on one database: the limit holds across connections (replicas), not
    # only the lock.
    with open_store(store_url) as one, open_store(store_url) as two:
        stores = [one, two]
        results = run_in_threads(
            8, lambda i: [stores[i % 2].add_spend("k", 0.01, limit_usd=2.0) for _ in range(50)]
        )
        assert results.count(True) == 200
        assert one.spent("k") == pytest.approx(2.0, abs=1e-9)
        assert one.spent("k") <= 2.0 + 1e-9
        assert not one.add_spend("k", 0.01, limit_usd=2.0)
        assert one.add_spend("k", 0.01)  # no limit


def test_reservations_read_the_budget_and_hold_in_one_transaction(store_url: str) -> None:
    """Each holds up to 0.03 USD, less when that is all the limit leaves, nothing below 0.005:
    concurrent reservations on two connections end exactly at the limit, never past it."""

    def amount(left: float | None) -> float | None:
        assert left is not None
        return None if left < 0.005 else min(0.03, left)

    with open_store(store_url) as one, open_store(store_url) as two:
        stores = [one, two]
        held = run_in_threads(
            8,
            lambda i: [stores[i % 2].reserve_spend("k", amount, limit_usd=1.0) for _ in range(10)],
        )
        got = [h for h in held if h is not None]
        assert sum(got) == pytest.approx(1.0, abs=1e-9) and one.spent("k") <= 1.0 + 1e-9
        assert one.spent("k") == pytest.approx(sum(got), abs=1e-9)
        assert held.count(None) == 80 - len(got) > 0
        assert two.reserve_spend("free", lambda left: 5.0) == 5.0  # no limit: left is None


def test_concurrent_feedback_is_recorded_once(store: Store) -> None:
    store.record_decision(make_decision("d1"))
    results = run_in_threads(8, lambda i: [store.record_feedback("d1", Feedback(quality=i / 10))])
    assert results.count(None) == 7
    (seq,) = [r for r in results if r is not None]
    ((stored_seq, _, feedback),) = store.feedback_since(0)
    assert stored_seq == seq
    assert feedback.quality in {i / 10 for i in range(8)}


def test_spend_per_key(store: Store) -> None:
    assert store.spent("a") == 0.0
    assert store.add_spend("a", 1.0, limit_usd=1.0)
    assert not store.add_spend("a", 0.5, limit_usd=1.0)
    assert store.spent("a") == 1.0
    assert store.add_spend("b", 0.5, limit_usd=1.0)
    assert store.spent("b") == 0.5


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.record_decision(make_decision("")), "decision_id=''"),
        (lambda s: s.record_decision(make_decision(llm="")), "llm=''"),
        (lambda s: s.record_decision(make_decision(lam=math.inf)), "lam=inf"),
        (lambda s: s.record_decision(make_decision(prompt_tokens=-1.0)), "prompt_tokens=-1.0"),
        (lambda s: s.record_decision(make_decision(scores={"a": "x"})), "scores="),
        (lambda s: s.record_decision(make_decision(embedding=np.ones((2, 3)))), "(2, 3)"),
        (lambda s: s.record_decision(make_decision(), now=math.nan), "now=nan"),
        (lambda s: s.record_decision("d1"), "decision='d1'"),
        (lambda s: s.record_feedback("", Feedback(quality=0.5)), "decision_id=''"),
        (lambda s: s.record_feedback("d1", {"quality": 0.5}), "feedback="),
        (lambda s: s.set_answer("d1", answered_by="", cost_usd=None), "answered_by=''"),
        (lambda s: s.set_answer("d1", answered_by="a", cost_usd=-1.0), "cost_usd=-1.0"),
        (lambda s: s.get_decision(""), "decision_id=''"),
        (lambda s: s.feedback_since(-1), "seq=-1"),
        (lambda s: s.record_checkpoint("", 0), "path=''"),
        (lambda s: s.record_checkpoint("c", -2), "feedback_seq=-2"),
        (lambda s: s.add_spend("k", -0.01), "usd=-0.01"),
        (lambda s: s.add_spend("k", math.nan), "usd=nan"),
        (lambda s: s.add_spend("k", math.inf), "usd=inf"),
        (lambda s: s.add_spend("k", True), "usd=True"),
        (lambda s: s.add_spend("k", 1.0, limit_usd=-5.0), "limit_usd=-5.0"),
        (lambda s: s.add_spend("", 1.0), "key_id=''"),
        (lambda s: s.spent(""), "key_id=''"),
    ],
)
def test_bad_input_is_a_config_error(
    sqlite_store: Store, call: Callable[[Store], object], match: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        call(sqlite_store)
    assert sqlite_store.counts() == {"decisions": 0, "feedback": 0, "checkpoints": 0}
    assert sqlite_store.spent("k") == 0.0


def test_bad_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="path=''"):
        Store("")


def test_in_memory_store() -> None:
    with Store(":memory:") as store:
        store.record_decision(make_decision("d1"))
        assert store.record_feedback("d1", Feedback(quality=1.0)) == 1
