"""Durability: under concurrent load, ``kill -9`` of ``mixllm serve`` and a restart lose no
acknowledged feedback and no checkpointed learning.

The real CLI runs as a subprocess on a small router fitted here, answering from replay data;
client threads route requests and send feedback on every answer while the server is killed.
The store is then read directly, and the restarted server is compared with a reference router
rebuilt in this process from the original router and exactly the stored feedback.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mixllm import Router
from mixllm.data import Dataset, Outcome, write_longform
from mixllm.serve import FakeBackend, Gateway, Settings, Store
from mixllm.serve.restore import restore_router
from mixllm.types import Feedback

from .conftest import serve_process

TOPICS = ("cats", "tax law", "rust", "poems")
LLMS = {  # name: (price in, price out per Mtok, quality by topic)
    "small": (0.2, 0.6, (0.9, 0.2, 0.4, 0.7)),
    "medium": (1.0, 3.0, (0.8, 0.6, 0.7, 0.6)),
    "large": (5.0, 15.0, (0.9, 0.9, 0.9, 0.8)),
}
N_PROMPTS = 60
PROMPTS = [f"question {i} about {TOPICS[i % 4]}" for i in range(N_PROMPTS)]
CHECKPOINT_EVERY = 10
N_WORKERS = 4
KILL_AFTER = 35  # acknowledged feedback before the kill
MAX_PER_WORKER = 60  # every client loop is bounded in count ...
REQUEST_TIMEOUT_S = 10.0  # ... and each request in time
START_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 30.0


# -- the router folder, its replay data and config ---------------------------------------------
def _dataset() -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    for i, prompt in enumerate(PROMPTS):
        p_tok = 10 + i % 7
        for llm, (p_in, p_out, by_topic) in LLMS.items():
            o_tok = 20 + (i * 3) % 11
            quality = float(rng.random() < by_topic[i % 4])
            cost = (p_tok * p_in + o_tok * p_out) / 1e6
            rows.append(
                Outcome(f"q{i}", prompt, llm, quality, cost, prompt_tokens=p_tok,
                        output_tokens=o_tok, task=TOPICS[i % 4], response=f"{llm} answers {i}.")
            )  # fmt: skip
    return Dataset.from_outcomes(rows, name="durable")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fitted router folder, its data as JSONL (for --replay) and a config file."""
    root = tmp_path_factory.mktemp("durable")
    data = _dataset()
    Router("mixllm", embedder="hashing").fit(data).save(root / "router")
    write_longform(data, root / "data.jsonl")
    config = root / "mixllm.toml"
    config.write_text(f"[server]\ncheckpoint_every = {CHECKPOINT_EVERY}\ndeadline_s = 10.0\n")
    return {"router": root / "router", "data": root / "data.jsonl", "config": config}


@contextmanager
def _server(files: dict[str, Path], state: Path, log: Path) -> Iterator[tuple[Any, str]]:
    """``mixllm serve`` with the replay data and config in a subprocess; yields it and its
    base URL once /healthz answers."""
    args = [
        str(files["router"]), "--replay", str(files["data"]), "--config", str(files["config"]),
        "--state", str(state),
    ]  # fmt: skip
    with serve_process(args, log, start_timeout_s=START_TIMEOUT_S) as (proc, root):
        yield proc, f"{root}/v1"


def _feedback(k: int) -> dict[str, Any]:
    """A different feedback for each k: a thumbs up/down, or a measured quality and cost."""
    if k % 3 == 0:
        return {"reward": k % 2 == 0}
    return {"quality": round((k * 0.137) % 1.0, 3), "cost_usd": 1e-5 * (1 + k % 5)}


def _as_feedback(sent: dict[str, Any]) -> Feedback:
    return Feedback(sent.get("quality"), sent.get("cost_usd"), sent.get("reward"))


class _Load:
    """Client threads: route a request, send feedback on its answer, and keep count."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.lock = threading.Lock()
        self.answered: list[str] = []  # decision ids of 200 answers
        self.sent: dict[str, dict[str, Any]] = {}  # feedback sent, acknowledged or not
        self.acked: dict[str, str] = {}  # decision id -> status of a 200 acknowledgement
        self.unexpected: list[str] = []
        self.stop = threading.Event()
        self.killed = threading.Event()
        self.threads = [
            threading.Thread(target=self.work, args=(w,), daemon=True) for w in range(N_WORKERS)
        ]

    def work(self, worker: int) -> None:
        with httpx.Client(base_url=self.base, timeout=REQUEST_TIMEOUT_S) as client:
            for k in range(MAX_PER_WORKER):
                if self.stop.is_set():
                    return
                n = worker * MAX_PER_WORKER + k
                ask = {
                    "model": "mixllm",
                    "messages": [{"role": "user", "content": PROMPTS[(7 * n) % N_PROMPTS]}],
                    "stream": n % 4 == 1,
                }
                try:
                    reply = client.post("/chat/completions", json=ask)
                    if reply.status_code != 200:
                        self.unexpected.append(f"chat {reply.status_code}: {reply.text}")
                        return
                    decision_id = _response_id(reply)
                    with self.lock:
                        self.answered.append(decision_id)
                        self.sent[decision_id] = body = {"id": decision_id, **_feedback(n)}
                    ack = client.post("/feedback", json=body)
                except httpx.TransportError as exc:
                    if not self.killed.is_set():  # else: the server is gone, as it should be
                        self.unexpected.append(f"before the kill: {exc!r}")
                    return
                if ack.status_code != 200:
                    self.unexpected.append(f"feedback {ack.status_code}: {ack.text}")
                    return
                with self.lock:
                    self.acked[decision_id] = ack.json()["status"]


def _response_id(reply: httpx.Response) -> str:
    """The ``chatcmpl-…`` id of a chat answer, whole or streamed."""
    if reply.headers["content-type"].startswith("text/event-stream"):
        first = next(ln for ln in reply.text.splitlines() if ln.startswith("data:"))
        return str(json.loads(first[5:])["id"])
    return str(reply.json()["id"])


def _decision_id(response_id: str) -> str:
    return response_id.removeprefix("chatcmpl-")


def _reference(router_dir: Path, store: Store, up_to: int | None = None) -> Router:
    """The original router with the stored feedback (up to seq ``up_to``) learned in order."""
    router = Router.load(router_dir)
    for seq, decision_id, feedback in store.feedback_since(0):
        if up_to is not None and seq > up_to:
            break
        decision = store.get_decision(decision_id)
        assert decision is not None
        assert router.learn_one(decision, feedback)
    return router


def _predictions(router: Router) -> np.ndarray:
    pred = router.predict(PROMPTS)
    return np.concatenate([pred.quality, pred.cost_usd], axis=1)


# -- kill -9 under load, then restart ----------------------------------------------------------
def test_kill_9_under_load_loses_no_acknowledged_feedback_nor_checkpointed_learning(
    served: dict[str, Path], tmp_path: Path
) -> None:
    state, log = tmp_path / "state", tmp_path / "server.log"
    started = time.monotonic()
    with _server(served, state, log) as (proc, base):
        load = _Load(base)
        watch = Store(state / "gateway.db")  # a second process may read the live store
        for t in load.threads:
            t.start()
        # kill once KILL_AFTER feedback are acknowledged and some are stored after the last
        # checkpoint (so that the restart has feedback to learn again)
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while time.monotonic() < deadline and not load.unexpected:
            last = watch.last_checkpoint()
            later = len(watch.feedback_since(last[1])) if last else 0
            if len(load.acked) >= KILL_AFTER and later >= 3:
                break
            time.sleep(0.005)
        load.killed.set()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.monotonic() - started
        load.stop.set()
        for t in load.threads:
            t.join(timeout=2 * REQUEST_TIMEOUT_S)
        watch.close()
    assert not load.unexpected, load.unexpected
    assert proc.returncode == -signal.SIGKILL
    assert not any(t.is_alive() for t in load.threads)
    assert len(load.acked) >= KILL_AFTER, f"only {len(load.acked)} acknowledged in time"
    assert set(load.acked.values()) == {"applied"}  # each decision got one feedback

    # the store, read directly: every acknowledged feedback is there, as it was sent
    store = Store(state / "gateway.db")
    try:
        stored = store.feedback_since(0)
        stored_ids = [decision_id for _, decision_id, _ in stored]
        acked = {_decision_id(i) for i in load.acked}
        sent = {_decision_id(i): body for i, body in load.sent.items()}
        assert acked <= set(stored_ids) <= set(sent)
        assert len(acked) <= len(stored) <= len(acked) + N_WORKERS  # at most one in flight each
        assert len(set(stored_ids)) == len(stored_ids)
        for _, decision_id, feedback in stored:
            assert feedback == _as_feedback(sent[decision_id])
        answered = [_decision_id(i) for i in load.answered]
        assert all(store.get_decision(d) is not None for d in answered)
        # the last checkpoint holds exactly the feedback up to its seq
        checkpoint = store.last_checkpoint()
        assert checkpoint is not None
        ckpt_path, ckpt_seq = Path(checkpoint[0]), checkpoint[1]
        assert ckpt_path.is_dir() and ckpt_seq >= CHECKPOINT_EVERY
        replayed = [s for s in stored if s[0] > ckpt_seq]
        assert len(replayed) >= 3
        at_checkpoint = _reference(served["router"], store, up_to=ckpt_seq)
        np.testing.assert_allclose(
            _predictions(Router.load(ckpt_path)), _predictions(at_checkpoint), rtol=0, atol=1e-9
        )
        # restoring = the checkpoint + the feedback after it = all the stored feedback
        reference = _reference(served["router"], store)
        expected = _predictions(reference)
        restored = restore_router(served["router"], store)
        np.testing.assert_allclose(_predictions(restored), expected, rtol=0, atol=1e-9)
        original = _predictions(Router.load(served["router"]))
        assert np.abs(expected - original).max() > 1e-6  # the feedback taught something
        assert np.abs(expected - _predictions(at_checkpoint)).max() > 1e-9  # and the replay
        counts = store.counts()
    finally:
        store.close()

    # the restarted server routes with that router, and knows what it was told
    with _server(served, state, log) as (proc, base):
        root = base.removesuffix("/v1")
        health = httpx.get(f"{root}/healthz", timeout=REQUEST_TIMEOUT_S).json()
        assert health["store"] == counts
        with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as client:
            for prompt in PROMPTS[:8]:
                ask = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
                why = client.post("/chat/completions", json=ask).json()["mixllm"]
                want = reference.route(prompt)
                assert why["llm"] == want.llm
                assert why["scores"] == pytest.approx(want.scores, rel=0, abs=1e-9)
                assert why["predicted_quality"] == pytest.approx(
                    want.predicted_quality[want.llm], rel=0, abs=1e-9
                )
            # the same feedback again: a duplicate, whether it was acknowledged or only stored
            again = {
                i: client.post("/feedback", json=load.sent[i]).json()["status"]
                for i in load.sent
                if _decision_id(i) in set(stored_ids)
            }
            assert set(again.values()) == {"duplicate"} and len(again) == len(stored)
            # feedback that never got stored (or never sent) on answered decisions: applied now
            late = [i for i in load.answered if _decision_id(i) not in set(stored_ids)]
            for i in late:
                body = load.sent.get(i, {"id": i, "reward": True})
                assert client.post("/feedback", json=body).json()["status"] == "applied"
    # SIGTERM: drained, checkpointed, closed; uvicorn then re-raises the signal
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()

    with Store(state / "gateway.db") as store:
        final = store.feedback_since(0)
        last = store.last_checkpoint()
        assert len(final) == len(stored) + len(late)
        assert last is not None and last[1] == final[-1][0]  # the shutdown checkpoint has all
        np.testing.assert_allclose(
            _predictions(Router.load(last[0])),
            _predictions(_reference(served["router"], store)),
            rtol=0,
            atol=1e-9,
        )
    elapsed = time.monotonic() - started
    print(
        f"\nrequests answered {len(load.answered)}, feedback sent {len(load.sent)}, "
        f"acknowledged {len(load.acked)}, stored {len(stored)}, in the checkpoint {ckpt_seq}, "
        f"replayed {len(replayed)}, sent again after the restart {len(again)} (duplicates) + "
        f"{len(late)} (applied); killed at {killed_at:.1f} s, total {elapsed:.1f} s"
    )
    assert elapsed < 60


def test_the_server_is_ready_to_route_when_it_starts(
    served: dict[str, Path], tmp_path: Path
) -> None:
    """The tokenizer and embedder are loaded before the app serves: else the first request
    loads them (seconds), holding up the requests behind it while /healthz says all is well."""
    from mixllm.data import tokens
    from mixllm.serve.run import build_app

    tokens._encoding.cache_clear()
    app = build_app(
        served["router"], environ={}, config=served["config"], replay=str(served["data"]),
        state_dir=tmp_path / "state",
    )  # fmt: skip
    try:
        assert tokens._encoding.cache_info().currsize == 1
    finally:
        app.state.gateway.store.close()


# -- a checkpoint taken after a restart -------------------------------------------------------
def test_a_checkpoint_after_a_restart_records_the_feedback_it_holds(tmp_path: Path) -> None:
    """After a crash the restored router holds the feedback stored after the last checkpoint;
    the next checkpoint must say so, or the restart after it learns that feedback twice."""
    data = _dataset()
    fitted = tmp_path / "router"
    Router("mixllm", embedder="hashing").fit(data).save(fitted)
    store, state = Store(tmp_path / "gateway.db"), tmp_path / "state"
    backends = {m: FakeBackend(m) for m in LLMS}
    settings = Settings(checkpoint_every=1000)

    def gateway(router: Router) -> Gateway:
        return Gateway(router, backends, store, settings, state_dir=state)

    def decide(gw: Gateway, prompt: str) -> str:
        decision = gw.router.route(prompt)
        store.record_decision(decision)
        return decision.decision_id

    gw = gateway(Router.load(fitted))
    ids = [decide(gw, p) for p in PROMPTS[:3]]
    assert gw.learning.feedback(ids[0], Feedback(quality=0.0, cost_usd=0.01)) == "applied"
    gw.learning.checkpoint()
    assert gw.learning.feedback(ids[1], Feedback(quality=1.0)) == "applied"
    assert gw.learning.feedback(ids[2], Feedback(reward=False)) == "applied"
    # crash: no checkpoint. Restart, route a few, stop.
    gw = gateway(restore_router(fitted, store))
    for p in PROMPTS[3:6]:
        decide(gw, p)
    gw.learning.checkpoint()
    last = store.last_checkpoint()
    assert last is not None and last[1] == 3
    again = restore_router(fitted, store)
    np.testing.assert_allclose(
        _predictions(again), _predictions(_reference(fitted, store)), rtol=0, atol=1e-9
    )
    store.close()
