"""Several ``mixllm serve`` replicas on one PostgreSQL store under load, one killed and started
again: throughput, latency, feedback lag and catch-up, checked for exactness, against the same
load on one replica with SQLite.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/replicas.py --store
postgresql://postgres@127.0.0.1:5432/postgres [--redis redis://127.0.0.1:6379/1] [--replicas 3]
[--chats 2000] [--feedback 500] [--held-out 200] [--clients 12] [--kill-at 0.5]
[--data routerbench.csv] [--embedder hashing] [--seed 0] [--keep] [--out table.md]``.

The ``--store`` URL names any database of a PostgreSQL server the script may create databases
on: it creates a new one for the run (``CREATE DATABASE``, a unique name) and drops it at the
end unless ``--keep``. With ``--redis``, the replicas share in-flight counts, service times,
breakers and rate limits under keys ``mixllm:*`` of that Redis database (give it one of its
own). The router (MixLLM, ``--embedder``) is fitted on a seeded 80/20 split of ``--data``
(default: the RouterBench subset, ``$MIXLLM_DATA_DIR/routerbench/routerbench_0shot_subset.csv``,
``$MIXLLM_DATA_DIR`` defaulting to ../shared/data), which also answers the chats (``--replay``).

``--replicas`` subprocesses (``mixllm serve --replay DATA --store DB [--redis URL]``, each on a
free 127.0.0.1 port) take ``--chats`` chats from ``--clients`` client threads, spread over the
replicas as a balancer would (a client whose replica is gone retries on a live one). A seeded
random ``--feedback`` of the answers get feedback, sent to another replica than the one that
answered. After ``--kill-at`` of the chats one replica gets SIGKILL and is started again (a new
port) while the load goes on. A thread polls every replica's ``/healthz`` (``feedback_learned``)
to sample the feedback lag: from a feedback's acknowledgement until every live replica has
learned it (to within the polling period).

Checks (the script exits with status 1 and names each failed one): no chat or feedback failed;
every acknowledged feedback is in the log exactly once; once every replica reports the log's
last seq as learned, every replica routes the ``--held-out`` prompts of the test split as a
router that learned the whole log in seq order in this process (same LLM, scores to 1e-12).

Then the same load (no kill) runs on ONE replica with SQLite (``--store`` omitted, a temporary
state folder) for comparison. Everything (client, replicas, the servers) shares the machine;
absolute figures depend on it, compare the ratios.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported (here and in the replicas)

import argparse  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from mixllm import Router, load_dataset, split_random  # noqa: E402
from mixllm.serve.store import open_store  # noqa: E402
from replicas_load import (  # noqa: E402  (the sibling module: run as a script)
    CHECKPOINT,
    CONVERGE_TIMEOUT_S,
    POLL_S,
    REQUEST_TIMEOUT_S,
    Load,
    Poller,
    Replica,
    database,
    learned,
    start_replica,
    stop_replica,
    wait_chats,
)

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
DEFAULT_DATA = DATA / "routerbench" / "routerbench_0shot_subset.csv"


# -- replicas ----------------------------------------------------------------------------------
@dataclass
class Result:
    load: Load
    wall_s: float
    lags: list[float] = field(default_factory=list)
    restart: tuple[float, float] | None = None  # (start s, catch-up s after it answered)
    checkpoints: int = 0
    logged: int = 0


def run_load(args: argparse.Namespace, serve: list[str], prompts: list[str], fb: set[int],
             folder: Path, replicas: int, kill: bool, url: str | None) -> Result:  # fmt: skip
    """The load on ``replicas`` replicas (``serve``: their arguments); with ``kill``, one
    replica is killed and started again after ``--kill-at`` of the chats."""
    logs = [folder / f"replica-{r}.log" for r in range(replicas)]
    procs = [start_replica(serve, log) for log in logs]
    print(f"{replicas} replica(s) up; start s: {[round(p.start_s, 1) for p in procs]}",
          file=sys.stderr, flush=True)  # fmt: skip
    load = Load([p.root for p in procs], prompts, fb, args.seed, time.monotonic() + 1800.0)
    poller = Poller(load)
    result = Result(load, 0.0)
    try:
        poller.start()
        start = time.monotonic()
        threads = load.run(args.clients)
        if kill:
            wait_chats(load, int(args.kill_at * len(prompts)))
            victim = procs[1 % replicas]
            load.dead.add(1 % replicas)
            os.kill(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(timeout=10)
            print(f"killed a replica after {load.done} chats", file=sys.stderr, flush=True)
            procs[1 % replicas] = back = start_replica(serve, logs[1 % replicas])
            target = learned(procs[0].root)  # what a replica that stayed up holds now
            started = time.monotonic()
            while learned(back.root) < target and time.monotonic() - started < 60.0:
                time.sleep(0.02)
            result.restart = (back.start_s, time.monotonic() - started)
            load.roots[1 % replicas] = back.root
            load.dead.discard(1 % replicas)
        for t in threads:
            t.join(timeout=max(load.deadline - time.monotonic(), 1.0))
        result.wall_s = time.monotonic() - start
        if any(t.is_alive() for t in threads):
            load.errors.append("client threads still running at the deadline")
        store = open_store(url if url is not None else folder / "state" / "gateway.db")
        try:
            log = store.replay_since(0)
        finally:
            store.close()
        seq_of = {d.decision_id: s for s, d, _ in log}
        result.logged = len(log)
        last = log[-1][0] if log else 0
        deadline = time.monotonic() + CONVERGE_TIMEOUT_S
        while {learned(p.root) for p in procs} != {last} and time.monotonic() < deadline:
            time.sleep(0.05)
        poller.halt.set()
        poller.join(timeout=10)
        result.lags = poller.lags({k: v for k, v in load.acked.items() if k in seq_of}, seq_of)
        if url is not None:
            check(args, procs, log, load, folder)
    finally:
        poller.halt.set()
        for p in procs:
            stop_replica(p.proc)
    result.checkpoints = sum(len(CHECKPOINT.findall(log.read_text())) for log in logs)
    return result


FAILED: list[str] = []


def check(args: argparse.Namespace, procs: list[Replica], log: list[Any], load: Load,
          folder: Path) -> None:  # fmt: skip
    """The exactness checks; failures go to ``FAILED``."""
    if load.errors:
        FAILED.append(f"{len(load.errors)} requests failed, e.g. {load.errors[:3]}")
    ids = [d.decision_id for _, d, _ in log]
    if len(ids) != len(set(ids)):
        FAILED.append(f"{len(ids) - len(set(ids))} feedback in the log more than once")
    missing = set(load.acked) - set(ids)
    if missing:
        FAILED.append(f"{len(missing)} acknowledged feedback not in the log")
    last = log[-1][0] if log else 0
    seen = [learned(p.root) for p in procs]
    if seen != [last] * len(procs):
        FAILED.append(f"replicas learned up to {seen}, the log ends at #{last}")
        return
    reference = Router.load(args.router_dir)
    for _, decision, feedback in log:
        reference.learn_one(decision, feedback)
    worst, wrong = 0.0, 0
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
        for prompt in args.held_out_prompts:
            want = reference.route(prompt)
            for p in procs:
                ask = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
                why = client.post(f"{p.root}/v1/chat/completions", json=ask).json()["mixllm"]
                wrong += why["routed_to"] != want.llm or set(why["scores"]) != set(want.scores)
                worst = max([worst, *(abs(why["scores"][m] - s) for m, s in want.scores.items()
                                      if m in why["scores"])])  # fmt: skip
    if wrong or worst > 1e-12:
        FAILED.append(f"held-out routing differs: {wrong} answers, worst score gap {worst:.3g}")
    args.score_gap = worst


# -- report ------------------------------------------------------------------------------------
def pct(values: list[float]) -> str:
    if not values:
        return "n/a | n/a"
    p50, p99 = np.percentile(np.asarray(values) * 1e3, [50, 99])
    return f"{p50:.1f} | {p99:.1f}"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    for line in (
        Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    ):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, load {load}"


def report(args: argparse.Namespace, shared: Result, single: Result, head: list[str]) -> str:
    rows = [
        "| setup | chats | load s | chats/s | chat p50 ms | chat p99 ms | feedback acked "
        "| ack p50 ms | ack p99 ms | lag p50 ms | lag p99 ms | checkpoints |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in (
        (f"{args.replicas} replicas, PostgreSQL", shared),
        ("1 replica, SQLite", single),
    ):
        rows.append(
            f"| {name} | {r.load.done} | {r.wall_s:.1f} | {r.load.done / r.wall_s:.1f} "
            f"| {pct(r.load.chat_s)} "
            f"| {len(r.load.acked)} | {pct(r.load.ack_s)} | {pct(r.lags)} | {r.checkpoints} |"
        )
    rate = (shared.load.done / shared.wall_s) / (single.load.done / single.wall_s)
    c50 = np.median(shared.load.chat_s) / np.median(single.load.chat_s)
    a50 = np.median(shared.load.ack_s) / np.median(single.load.ack_s)
    start_s, catch_s = shared.restart or (float("nan"), float("nan"))
    lines = [
        *head, "", *rows, "",
        f"ratio replicas / SQLite: chats/s {rate:.2f}x, chat p50 {c50:.2f}x, ack p50 {a50:.2f}x",
        f"restarted replica: answered /healthz {start_s:.1f} s after its start (checkpoint "
        f"loaded, log replayed), then {catch_s:.2f} s to reach a live replica's feedback_learned",
        f"feedback lag: acknowledgement -> learned by every live replica, sampled by polling "
        f"/healthz every {POLL_S * 1e3:.0f} ms (resolution); requests sent again after a "
        f"transport error: {shared.load.retried}; feedback in the log: {shared.logged}",
        f"checks: {'all passed' if not FAILED else 'FAILED: ' + '; '.join(FAILED)} "
        f"(held-out prompts {len(args.held_out_prompts)}, worst score gap "
        f"{getattr(args, 'score_gap', float('nan')):.3g})",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store", required=True, help="postgresql://... (a database is created)")
    ap.add_argument("--redis", default=None, help="redis://... shared by the replicas")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--chats", type=int, default=2000)
    ap.add_argument("--feedback", type=int, default=500)
    ap.add_argument("--held-out", type=int, default=200)
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--kill-at", type=float, default=0.5, help="fraction of the chats")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--embedder", default="hashing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the run's database")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()
    if not 0 < args.kill_at < 1 or args.replicas < 2 or args.feedback > args.chats:
        ap.error("need 0 < --kill-at < 1, --replicas >= 2 and --feedback <= --chats")
    started = datetime.datetime.now(datetime.timezone.utc)
    host = machine()
    ds = load_dataset(args.data)
    train, test = split_random(ds, seed=args.seed)
    args.held_out_prompts = [str(p) for p in test.prompts[: args.held_out]]
    pool = sorted({str(p) for p in ds.prompts} - set(args.held_out_prompts))
    rng = random.Random(args.seed)
    prompts = [rng.choice(pool) for _ in range(args.chats)]
    with_feedback = set(rng.sample(range(args.chats), args.feedback))
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mixllm-replicas-")))
        fit_start = time.monotonic()
        args.router_dir = (
            Router("mixllm", embedder=args.embedder).fit(train).save(folder / "router")
        )
        fit_s = time.monotonic() - fit_start
        base = [str(folder / "router"), "--replay", str(args.data), "--log-level", "info"]
        url = stack.enter_context(database(args.store, args.keep))
        shared_args = [*base, "--store", url, *(["--redis", args.redis] if args.redis else [])]
        (folder / "pg").mkdir()
        shared = run_load(args, shared_args, prompts, with_feedback, folder / "pg",
                          args.replicas, True, url)  # fmt: skip
        (folder / "sqlite").mkdir()
        single_args = [*base, "--state", str(folder / "sqlite" / "state")]
        single = run_load(args, single_args, prompts, with_feedback, folder / "sqlite", 1,
                          False, None)  # fmt: skip
        if single.load.errors:
            FAILED.append(f"SQLite run: {len(single.load.errors)} requests failed")
    seconds = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    head = [
        f"Replicas benchmark, {started:%Y-%m-%d %H:%M} UTC, {host}",
        f"router: mixllm, embedder {args.embedder!r}, fitted on {args.data.name} "
        f"({len(train)} train queries, {fit_s:.0f} s); answers replayed; {args.chats} chats, "
        f"{args.feedback} with feedback, {args.clients} clients; redis "
        f"{'on' if args.redis else 'off'}; one replica SIGKILLed after {args.kill_at:g} of the "
        f"chats and started again; run time {seconds:.0f} s",
    ]
    text = report(args, shared, single, head)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
