"""The moving parts of benchmarks/replicas.py: ``mixllm serve`` replicas as subprocesses, the
client threads that load them (chats, feedback to another replica), the poller that samples
the feedback lag, and a throwaway database for a run."""

from __future__ import annotations

import random
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REQUEST_TIMEOUT_S = 30.0  # each request bounded in time ...
START_TIMEOUT_S = 180.0  # ... each replica's start ...
CONVERGE_TIMEOUT_S = 120.0  # ... and the wait for all replicas to learn the whole log
POLL_S = 0.1  # /healthz polling period for the feedback lag
ATTEMPTS = 3  # a request that meets a dead replica is sent again, to a live one
CHECKPOINT = re.compile(r"checkpoint .*\(feedback up to #\d+\)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    root: str  # http://127.0.0.1:PORT
    start_s: float  # from the process start until /healthz answered


def start_replica(args: list[str], log: Path) -> Replica:
    """``mixllm serve ARGS --port P`` in a subprocess (output appended to ``log``), once its
    ``/healthz`` answers."""
    port = free_port()
    code = "from mixllm.cli import main; main()"
    command = [sys.executable, "-c", code, "serve", *args, "--port", str(port)]
    start = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    while True:  # bounded in time
        if proc.poll() is not None:
            sys.exit(f"a replica exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.monotonic() - start > START_TIMEOUT_S:
            stop_replica(proc)
            sys.exit(
                f"a replica did not start in {START_TIMEOUT_S:g} s:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{root}/healthz", timeout=2.0).status_code == 200:
                return Replica(proc, root, time.monotonic() - start)
        except httpx.TransportError:
            pass
        time.sleep(0.05)


def stop_replica(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def learned(root: str) -> int:
    return int(httpx.get(f"{root}/healthz", timeout=REQUEST_TIMEOUT_S).json()["feedback_learned"])


# -- load --------------------------------------------------------------------------------------
def feedback_body(n: int, seed: int) -> dict[str, Any]:
    """A seeded feedback for chat ``n``: a thumbs up/down or a measured quality and cost."""
    rng = random.Random(seed * 1_000_003 + n)
    if rng.random() < 0.3:
        return {"reward": rng.random() < 0.5}
    return {"quality": round(rng.random(), 4), "cost_usd": round(rng.uniform(1e-5, 1e-3), 7)}


@dataclass
class Load:
    """Client threads sending chats ``0..len(prompts)-1`` (each once) and feedback on those in
    ``with_feedback``, over the live replicas of ``roots``."""

    roots: list[str]
    prompts: list[str]
    with_feedback: set[int]
    seed: int
    deadline: float
    dead: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    chat_s: list[float] = field(default_factory=list)
    ack_s: list[float] = field(default_factory=list)
    acked: dict[str, float] = field(default_factory=dict)  # decision id -> ack time
    errors: list[str] = field(default_factory=list)
    retried: int = 0
    taken: int = 0
    done: int = 0

    def take(self) -> int | None:
        with self.lock:
            if self.taken >= len(self.prompts) or time.monotonic() > self.deadline:
                return None
            self.taken += 1
            return self.taken - 1

    def live(self, k: int, avoid: int | None = None) -> int:
        live = [r for r in range(len(self.roots)) if r not in self.dead]
        if avoid in live and len(live) > 1:
            live.remove(avoid)
        return live[k % len(live)]

    def post(
        self, client: httpx.Client, path: str, body: dict[str, Any], k: int, avoid: int | None
    ) -> tuple[int, httpx.Response | None, float]:
        """(replica, answer, seconds) of ``body`` posted to a live replica (another one when a
        replica dies under it)."""
        r, reply = self.live(k, avoid), None
        for attempt in range(ATTEMPTS):
            r = self.live(k + attempt, avoid)
            start = time.monotonic()
            try:
                reply = client.post(f"{self.roots[r]}/v1{path}", json=body)
                return r, reply, time.monotonic() - start
            except httpx.TransportError as exc:
                with self.lock:
                    self.retried += 1
                if attempt == ATTEMPTS - 1:
                    self.errors.append(f"{path}: {type(exc).__name__}: {exc}")
                time.sleep(0.05)
        return r, None, 0.0

    def work(self, worker: int) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            while (n := self.take()) is not None:  # bounded: each chat taken once, a deadline
                ask = {
                    "model": "mixllm",
                    "messages": [{"role": "user", "content": self.prompts[n]}],
                }
                r, reply, took = self.post(client, "/chat/completions", ask, worker + n, None)
                if reply is None or reply.status_code != 200:
                    if reply is not None:
                        self.errors.append(f"chat {reply.status_code}: {reply.text[:200]}")
                    continue
                with self.lock:
                    self.chat_s.append(took)
                    self.done += 1
                if n not in self.with_feedback:
                    continue
                decision_id = str(reply.json()["id"]).removeprefix("chatcmpl-")
                body = {"id": decision_id, **feedback_body(n, self.seed)}
                _, ack, took = self.post(client, "/feedback", body, worker + n, avoid=r)
                if ack is None or ack.status_code != 200:
                    if ack is not None:
                        self.errors.append(f"feedback {ack.status_code}: {ack.text[:200]}")
                    continue
                with self.lock:
                    self.ack_s.append(took)
                    self.acked[decision_id] = time.monotonic()

    def run(self, clients: int) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.work, args=(w,), daemon=True) for w in range(clients)
        ]
        for t in threads:
            t.start()
        return threads


class Poller(threading.Thread):
    """Samples (time, least ``feedback_learned`` over the live replicas) every ``POLL_S``."""

    def __init__(self, load: Load) -> None:
        super().__init__(daemon=True)
        self.load, self.samples, self.halt = load, list[tuple[float, int]](), threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self.halt.wait(POLL_S):  # bounded: stopped by the main thread
                try:
                    roots = [r for i, r in enumerate(self.load.roots) if i not in self.load.dead]
                    seqs = [client.get(f"{r}/healthz").json()["feedback_learned"] for r in roots]
                    self.samples.append((time.monotonic(), min(int(s) for s in seqs)))
                except (httpx.HTTPError, KeyError, ValueError):
                    continue  # a replica going away: no sample this round

    def lags(self, acked: dict[str, float], seq_of: dict[str, int]) -> list[float]:
        """Seconds from each acknowledgement until a sample shows every replica past it."""
        times = np.array([t for t, _ in self.samples])
        least = np.maximum.accumulate(np.array([s for _, s in self.samples]))
        out = []
        for decision_id, at in acked.items():
            after = np.nonzero((times >= at) & (least >= seq_of[decision_id]))[0]
            if after.size:
                out.append(float(times[after[0]] - at))
        return out


def wait_chats(load: Load, n: int) -> None:
    while load.done < n and load.taken < len(load.prompts) and time.monotonic() < load.deadline:
        time.sleep(0.02)


# -- the run -----------------------------------------------------------------------------------
@contextmanager
def database(admin_url: str, keep: bool) -> Iterator[str]:
    """A new database on the server of ``admin_url``, dropped at the end unless ``keep``."""
    import psycopg

    name = f"mixllm_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        if keep:
            print(f"kept database {name}", file=sys.stderr)
        else:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
