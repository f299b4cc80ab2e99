"""What shadow traffic costs the clients: their latency with shadow shares 0.05, 0.2 and 1.0
against 0 (off), on the same gateway in the same run.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/shadow_latency.py [--n 300]
[--concurrency 1,8] [--latency-ms 20] [--shares 0.05,0.2,1.0] [--rounds 1]``.

One process: a MixLLM router (default embedder) fitted on the RouterBench subset (seeded 80/20
split; ``$MIXLLM_DATA_DIR``, default ../shared/data) is served by ``create_app`` on uvicorn
(127.0.0.1, in a thread), with a :class:`~mixllm.serve.ReplayBackend` per LLM and the
:class:`~mixllm.serve.replay.RecordedJudge`, each waiting ``--latency-ms`` before it answers;
the store is a file (``synchronous=FULL``). The client (httpx, main thread) sends the held-out
prompts with ``c`` requests in flight, non-streamed (time to the whole answer) and streamed
(time to ``[DONE]``). Each round is one block of ``--n`` requests per share, in the order off,
0.05, 0.2, 1.0, 1.0, 0.2, 0.05, off (the same gateway, its ``[shadow]`` share switched and the
shadow calls of a block finished before the next one starts), so a drift in the machine's speed
falls on every share alike. With share 1.0 every answer is followed by a shadow call (or, when
the LLM that answered is the most uncertain, a grade of the served answer) and one or two judge
calls (at most ``max_in_flight`` = 4 at once: the rest are dropped and counted); they share the
event loop, the thread pool and the store with the clients' requests. The table gives p50 and
p99 at each share and their ratio to off.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import asyncio  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data"
os.environ.setdefault("MIXLLM_DATA_DIR", str(DATA))

from mixllm import Router  # noqa: E402
from mixllm.data import load_dataset, split_random  # noqa: E402
from mixllm.serve import ReplayBackend, Settings, Store, create_app  # noqa: E402
from mixllm.serve.metrics import metric_total as _metric  # noqa: E402
from mixllm.serve.replay import RecordedJudge  # noqa: E402
from mixllm.serve.run import serve_in_thread  # noqa: E402
from mixllm.serve.settings import ShadowSettings  # noqa: E402

REQUEST_TIMEOUT_S = 60.0


async def _one(client: httpx.AsyncClient, url: str, prompt: str, stream: bool) -> float:
    """Seconds to the whole answer (a stream: to ``[DONE]``), the answer checked."""
    body = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    start = time.perf_counter()
    if not stream:
        resp = await client.post(url, json=body)
        if resp.status_code != 200 or not resp.json()["choices"][0]["message"]["content"]:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        return time.perf_counter() - start
    done = False
    async with client.stream("POST", url, json=body) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}")
        async for line in resp.aiter_lines():
            done = done or line.strip() == "data: [DONE]"
    if not done:
        raise RuntimeError("a stream ended without [DONE]")
    return time.perf_counter() - start


async def _block(url: str, prompts: list[str], concurrency: int, stream: bool) -> list[float]:
    limits = httpx.Limits(max_connections=concurrency, keepalive_expiry=1.0)
    todo = iter(prompts)
    out: list[float] = []
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:

        async def worker() -> None:
            for prompt in todo:  # shared: each prompt is sent once
                out.append(await _one(client, url, prompt, stream))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def _wait_idle(gw: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while gw.shadow.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300, help="requests per block")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--shares", default="0.05,0.2,1.0", help="shadow shares besides off")
    ap.add_argument("--rounds", type=int, default=1, help="each: off, shares, shares reversed, off")
    ap.add_argument("--store-dir", type=Path, default=None, help="folder of the store (a tmp)")
    args = ap.parse_args()
    ds = load_dataset("routerbench")
    train, test = split_random(ds, seed=0)
    router = Router("mixllm", lam=100.0).fit(train)
    delay = args.latency_ms / 1000
    backends: dict[str, Any] = {m: ReplayBackend(m, ds, latency_s=delay) for m in router.llms}
    backends["recorded-judge"] = RecordedJudge(ds, latency_s=delay)
    on = ShadowSettings(share=1.0, budget_usd_per_day=1e6, judge="recorded-judge")
    shares = [0.0] + [float(x) for x in args.shares.split(",")]
    order = (shares + shares[::-1]) * args.rounds
    prompts = [str(p) for p in test.prompts]
    rows = []
    with tempfile.TemporaryDirectory(dir=args.store_dir) as tmp:
        store = Store(Path(tmp) / "gateway.db")
        settings = Settings(deadline_s=60.0, checkpoint_every=10**6, shadow=on)
        app = create_app(router, backends, store, settings, state_dir=Path(tmp) / "state")
        gw = app.state.gateway
        with serve_in_thread(app) as base:
            url = f"{base}/chat/completions"
            for stream in (False, True):
                for c in (int(x) for x in args.concurrency.split(",")):
                    times: dict[float, list[float]] = {share: [] for share in shares}
                    for b, share in enumerate(order):
                        gw.shadow.settings = replace(on, share=share)
                        start = (b * args.n) % max(len(prompts) - args.n, 1)
                        part = prompts[start : start + args.n]
                        times[share] += asyncio.run(_block(url, part, c, stream))
                        _wait_idle(gw)
                    rows.append((stream, c, times))
            metrics = httpx.get(f"{base.removesuffix('/v1')}/metrics").text
        store.close()
    print(f"\nreplay and judge latency {args.latency_ms:g} ms; {args.n} requests per block, "
          f"{len(order)} blocks ({', '.join(f'{x:g}' for x in order)})\n")  # fmt: skip
    head = ["answer", "in flight", "p50 off (ms)"] + [f"p50 {x:g}" for x in shares[1:]]
    head += ["p99 off (ms)"] + [f"p99 {x:g}" for x in shares[1:]]
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    for stream, c, times in rows:
        cells = [("streamed" if stream else "whole"), str(c)]
        for q in (50, 99):
            base_ms = 1e3 * float(np.percentile(times[0.0], q))
            cells.append(f"{base_ms:.1f}")
            cells += [
                f"{1e3 * float(np.percentile(times[x], q)) / base_ms:.2f}" for x in shares[1:]
            ]
        print("| " + " | ".join(cells) + " |")
    outcomes = ("learned", "unknown_quality", "dropped", "failed", "no_candidate")
    counts = {o: int(_metric(metrics, "mixllm_shadow_requests_total", outcome=o)) for o in outcomes}
    served = int(_metric(metrics, "mixllm_shadow_requests_total", answer="served"))
    print(f"\nshadow calls: {counts}; of them served answers graded: {served}")


if __name__ == "__main__":
    main()
