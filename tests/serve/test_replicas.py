"""Three ``mixllm serve`` replicas on one PostgreSQL store (a real server started by the tests).

Clients spread their chats and feedback over the replicas while one replica is killed with
SIGKILL and started again. Afterwards every acknowledged feedback is in the log exactly once,
and the three replicas route held-out prompts exactly as one router that learned the whole log
in order (scores to 1e-12). A key's spending limit, hit through all three at once, holds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm import Router
from mixllm.data import write_longform
from mixllm.serve.store import open_store
from mixllm.types import LLM
from tests import pg_service, redis_service

from .conftest import serve_process
from .test_durability import LLMS, PROMPTS, _dataset, _feedback, _response_id

N_REPLICAS = 3
N_WORKERS = 6
MAX_PER_WORKER = 40  # every client loop is bounded in count ...
REQUEST_TIMEOUT_S = 10.0  # ... and each request in time
KILL_AFTER = 30  # acknowledged feedback before the kill
WANT_FEEDBACK = 90  # acknowledged feedback in all, the restarted replica included
LOAD_TIMEOUT_S = 60.0
pg_server, postgres_url = pg_service.pg_server, pg_service.postgres_url
redis_server, redis_url = redis_service.redis_server, redis_service.redis_url
HELD_OUT = [f"a held-out question {i} about {t}" for i, t in enumerate(("cats", "rust") * 10)]
SPEND_LIMIT_USD = 0.003


def replica_files(root: Path, config: str) -> dict[str, Path]:
    """A router fitted on the durability tests' priced data, that data (for --replay) and a
    config file with ``config``, in ``root``."""
    data = _dataset().with_prices({m: LLM(m, p_in, p_out) for m, (p_in, p_out, _) in LLMS.items()})
    Router("mixllm", embedder="hashing").fit(data).save(root / "router")
    write_longform(data, root / "data.jsonl")
    (root / "mixllm.toml").write_text(config)
    return {"router": root / "router", "data": root / "data.jsonl", "config": root / "mixllm.toml"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The replicas' files, with a spending key in the config."""
    return replica_files(
        tmp_path_factory.mktemp("replicas"),
        "[server]\ncheckpoint_every = 10\ndeadline_s = 10.0\n"
        '[[keys]]\nname = "app"\nsecret_env = "APP_KEY"\n'
        '[[keys]]\nname = "capped"\nsecret_env = "CAPPED_KEY"\n'
        f"spend_limit_usd = {SPEND_LIMIT_USD}\n",
    )


@contextmanager
def _replica(
    files: dict[str, Path], url: str, log: Path, redis: str | None = None
) -> Iterator[tuple[Any, str]]:
    args = [
        str(files["router"]), "--replay", str(files["data"]), "--config", str(files["config"]),
        "--store", url, *(["--redis", redis] if redis else []),
    ]  # fmt: skip
    prelude = "import os; os.environ.update(APP_KEY='sk-app', CAPPED_KEY='sk-capped');"
    with serve_process(args, log, prelude=prelude, start_timeout_s=60.0) as (proc, root):
        yield proc, f"{root}/v1"


class _Clients:
    """Client threads, each on its own replica (as a balancer spreads them); a client whose
    replica is gone moves to the next live one, as a balancer retries."""

    def __init__(self, bases: list[str]) -> None:
        self.bases = bases
        self.dead: set[int] = set()
        self.lock = threading.Lock()
        self.sent: dict[str, dict[str, Any]] = {}
        self.acked: dict[str, str] = {}
        self.unexpected: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.work, args=(w,), daemon=True) for w in range(N_WORKERS)
        ]

    def replica(self, worker: int, k: int) -> int:
        live = [r for r in range(len(self.bases)) if r not in self.dead]
        return live[(worker + k) % len(live)]

    def work(self, worker: int) -> None:
        auth = {"Authorization": "Bearer sk-app"}
        for k in range(MAX_PER_WORKER):
            if self.stop.is_set() or len(self.acked) >= WANT_FEEDBACK:
                return
            n = worker * MAX_PER_WORKER + k
            ask = {
                "model": "mixllm",
                "messages": [{"role": "user", "content": PROMPTS[(7 * n) % len(PROMPTS)]}],
            }
            r = self.replica(worker, k)
            try:
                with httpx.Client(base_url=self.bases[r], timeout=REQUEST_TIMEOUT_S) as client:
                    reply = client.post("/chat/completions", json=ask, headers=auth)
                    if reply.status_code != 200:
                        self.unexpected.append(f"chat {reply.status_code}: {reply.text}")
                        return
                    decision_id = _response_id(reply)
                    body = {"id": decision_id, **_feedback(n)}
                    with self.lock:
                        self.sent[decision_id] = body
                    # the feedback goes to another replica than the answer
                    other = self.replica(worker, k + 1)
                    ack = httpx.post(
                        f"{self.bases[other]}/feedback", json=body, headers=auth,
                        timeout=REQUEST_TIMEOUT_S,
                    )  # fmt: skip
            except httpx.TransportError:
                continue  # a replica killed under us: the next request goes to a live one
            if ack.status_code != 200:
                self.unexpected.append(f"feedback {ack.status_code}: {ack.text}")
                return
            with self.lock:
                self.acked[decision_id] = ack.json()["status"]


def _route(base: str, prompt: str) -> dict[str, Any]:
    ask = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
    reply = httpx.post(
        f"{base}/chat/completions", json=ask, headers={"Authorization": "Bearer sk-app"},
        timeout=REQUEST_TIMEOUT_S,
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    why: dict[str, Any] = reply.json()["mixllm"]
    return why


def _learned(base: str) -> int:
    root = base.removesuffix("/v1")
    return int(httpx.get(f"{root}/healthz", timeout=REQUEST_TIMEOUT_S).json()["feedback_learned"])


def test_three_replicas_learn_every_feedback_once_and_route_alike(
    served: dict[str, Path], postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    url = pg_service.fresh_database(postgres_url)
    logs = [tmp_path / f"replica-{r}.log" for r in range(N_REPLICAS)]
    with ExitStack() as stack:
        redis = redis_url.rsplit("/", 1)[0] + "/1"  # a database of its own on the test server
        replicas = [stack.enter_context(_replica(served, url, log, redis)) for log in logs]
        clients = _Clients([base for _, base in replicas])
        for t in clients.threads:
            t.start()
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while len(clients.acked) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        victim, _ = replicas[1]
        clients.dead.add(1)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        # started again (a new port, as a balancer would re-register it)
        _, base = stack.enter_context(_replica(served, url, logs[1], redis))
        clients.bases[1] = base
        clients.dead.discard(1)
        for t in clients.threads:
            t.join(timeout=LOAD_TIMEOUT_S)
        clients.stop.set()
        assert not clients.unexpected, clients.unexpected
        assert not any(t.is_alive() for t in clients.threads)
        assert victim.returncode == -signal.SIGKILL
        assert len(clients.acked) >= KILL_AFTER + 10, f"only {len(clients.acked)} acknowledged"

        store = open_store(url)
        try:
            log = store.replay_since(0)
            ids = [decision.decision_id for _, decision, _ in log]
            assert len(ids) == len(set(ids))  # each feedback once in the log
            acked = {i.removeprefix("chatcmpl-") for i in clients.acked}
            assert acked <= set(ids)  # every acknowledged feedback is in it
            reference = Router.load(served["router"])
            for _, decision, feedback in log:
                reference.learn_one(decision, feedback)
            last = log[-1][0]
        finally:
            store.close()

        bases = clients.bases
        deadline = time.monotonic() + 30.0
        while {_learned(b) for b in bases} != {last} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [_learned(b) for b in bases] == [last] * N_REPLICAS
        for prompt in HELD_OUT:
            want = reference.route(prompt)
            for base in bases:
                why = _route(base, prompt)
                assert why["routed_to"] == want.llm
                assert why["scores"] == pytest.approx(want.scores, rel=0, abs=1e-12)
    assert sum("checkpoint in the shared store" in log.read_text() for log in logs) >= 1
    print(
        f"\nfeedback sent {len(clients.sent)}, acknowledged {len(clients.acked)}, in the log "
        f"{len(ids)}; {len(HELD_OUT)} held-out prompts routed alike on {N_REPLICAS} replicas"
    )


def test_a_keys_spending_limit_holds_across_the_replicas(
    served: dict[str, Path], postgres_url: str, tmp_path: Path
) -> None:
    url = pg_service.fresh_database(postgres_url)
    charged: list[float] = []
    refused: list[int] = []
    unexpected: list[str] = []
    lock = threading.Lock()

    def spend(base: str, worker: int) -> None:
        for k in range(25):  # bounded: far more than the limit allows
            ask = {
                "model": "mixllm",
                "messages": [{"role": "user", "content": PROMPTS[(worker * 25 + k) % 60]}],
            }
            reply = httpx.post(
                f"{base}/chat/completions", json=ask, timeout=REQUEST_TIMEOUT_S,
                headers={"Authorization": "Bearer sk-capped"},
            )  # fmt: skip
            with lock:
                if reply.status_code == 200:
                    charged.append(float(reply.json()["mixllm"]["charged_usd"]))
                elif reply.status_code == 429:
                    refused.append(k)
                else:
                    unexpected.append(f"{reply.status_code}: {reply.text}")

    with ExitStack() as stack:
        logs = [tmp_path / f"replica-{r}.log" for r in range(N_REPLICAS)]
        bases = [stack.enter_context(_replica(served, url, log))[1] for log in logs]
        threads = [
            threading.Thread(target=spend, args=(bases[w % N_REPLICAS], w), daemon=True)
            for w in range(2 * N_REPLICAS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=LOAD_TIMEOUT_S)
        assert not any(t.is_alive() for t in threads)
    assert not unexpected, unexpected
    assert refused, (
        f"the limit was never reached ({sum(charged)} USD charged): the test proves nothing"
    )
    assert len(charged) >= 5  # many answers fitted under the limit
    assert sum(charged) <= SPEND_LIMIT_USD + 1e-12
    store = open_store(url)
    try:
        assert store.spent("capped") <= SPEND_LIMIT_USD + 1e-12
        assert store.spent("capped") == pytest.approx(sum(charged), rel=1e-9, abs=1e-15)
    finally:
        store.close()
    print(f"\n{len(charged)} answers charged {sum(charged):.6f} USD, {len(refused)} refused")


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("sqlite://", r"store 'sqlite://'; expected sqlite:///FILE"),
        (
            "mysql://db/mixllm",
            r"store url='mysql://db/mixllm'; expected a file path .* postgresql://",
        ),
    ],
)
def test_a_store_the_gateway_cannot_keep_its_state_in_is_refused(
    served: dict[str, Path], tmp_path: Path, store: str, message: str
) -> None:
    from mixllm.errors import ConfigError
    from mixllm.serve.run import build_app

    with pytest.raises(ConfigError, match=message):
        build_app(served["router"], environ={}, state_dir=tmp_path / "state", store=store)
