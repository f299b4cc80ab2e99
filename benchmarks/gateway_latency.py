"""The gateway's added latency: p50/p99 through the gateway against calling the upstream
directly, both measured in the same run.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gateway_latency.py [--n 500]
[--concurrency 1,10,100] [--embedder 'static?max_tokens=64&keep=end'] [--data routerbench]
[--upstream-delay-ms 0] [--out table.md]``.

One process: a fake OpenAI-compatible upstream (uvicorn on 127.0.0.1, in a thread) answers a
fixed text after an optional fixed delay, in one chunk or as a stream of a few words per chunk;
a gateway (``create_app``, uvicorn on 127.0.0.1 with the connection guard of ``mixllm serve``,
in another thread) routes with a MixLLM router and calls that upstream through an
``OpenAIBackend`` per router LLM. The router is fitted on
the RouterBench subset (``$MIXLLM_DATA_DIR/routerbench/routerbench_0shot_subset.csv``, default
../shared/data; seeded 80/20 split) and the requests carry its held-out prompts, so routing
sees real prompts; ``--data synthetic`` uses generated data instead. The default embedder is
the static model cut to the last 64 tokens; when it cannot be loaded (it is distilled from the
bundled MiniLM into the user cache on first use) the run falls back to ``hashing``.

The client (httpx, in the main thread) sends ``--n`` requests per cell to each target with
``c`` requests in flight at a time, in the order direct, gateway, gateway, direct (n/2 each),
so that a drift in the machine's speed falls on both. It keeps one connection pool per 10
requests in flight: httpcore's pool does work in proportion to its connections on every
request, and with a single pool of 100 the client, not the servers, was the bottleneck. Idle
connections expire after 1 s, before uvicorn's 5 s keep-alive closes them (with httpx's default
5 s a request could go out on a connection the server was closing: a ReadError). Non-streaming:
the time to the whole answer; streaming: to the first text delta (TTFT) and to ``[DONE]``.
Every answer is checked (status 200, the exact text, ``[DONE]``); a wrong one stops the run.
The table gives p50/p99 of each, the gateway's added milliseconds (gateway − direct) and ratio
(gateway / direct), and the requests per second of each target; the last line counts the
upstream failures the gateway fell back from (none expected).

What the gateway adds per request: validating the body (pydantic), the router's decision (embed
the prompt, predict quality and cost, choose; in the event loop), a SQLite write of the decision
(``synchronous=FULL``, in a worker thread), the fallback bookkeeping (circuit breaker, load
tracker, in-flight gauge and latency histogram), a second HTTP hop (httpx to the upstream), a
second SQLite write (who answered and the cost) and the explanation in the answer. The lines
under the table time the decision and the SQLite write alone.

All three parties share one Python process and its GIL, and uvicorn runs here on asyncio with
h11 unless uvloop and httptools are installed: at concurrency 100 the client's and the
upstream's work compete with the gateway's, for the direct baseline as well. Absolute numbers
depend on the machine; compare the ratios.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from contextlib import AsyncExitStack  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from mixllm import Router, load_dataset, split_random  # noqa: E402
from mixllm.data import Dataset, make_routing_dataset  # noqa: E402
from mixllm.embed import make_embedder  # noqa: E402
from mixllm.embed.base import Embedder  # noqa: E402
from mixllm.serve import OpenAIBackend, Settings, Store, create_app  # noqa: E402
from mixllm.serve.fake import fake_openai_upstream  # noqa: E402
from mixllm.serve.guard import (  # noqa: E402
    ConnectionGuard,
    default_max_connections,
    guarded_protocol,
)
from mixllm.serve.run import serve_in_thread  # noqa: E402
from mixllm.types import Decision  # noqa: E402

DATA = Path(os.environ.get("MIXLLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
LAM = 100.0
TEXT = (
    "The capital of Australia is Canberra. It was chosen in 1908 as a compromise between "
    "Sydney and Melbourne, the two largest cities, and Parliament first sat there in 1927. "
    "Canberra is a planned city, designed by Walter Burley Griffin and Marion Mahony Griffin."
)
WORDS_PER_CHUNK = 4
REQUEST_TIMEOUT_S = 30.0
POOL = 10  # connections per client: httpcore's pool does O(connections) work per request
FAILED_ATTEMPTS: Counter[str] = Counter()  # errors of the gateway's failed upstream attempts


# -- the fake upstream -------------------------------------------------------------------------
def fake_upstream(delay_s: float) -> Starlette:
    """``POST /v1/chat/completions`` answering ``TEXT`` after ``delay_s`` (streamed or not)."""
    return fake_openai_upstream(
        lambda model, question: TEXT, first_token_delay_s=delay_s, words_per_chunk=WORDS_PER_CHUNK
    )


def serving(app: Any, *, timeout_s: float = 30.0, guarded: bool = False) -> Any:
    """``app`` on uvicorn at 127.0.0.1 in a thread; yields its base URL (``.../v1``). The
    gateway is ``guarded`` as ``mixllm serve`` runs it (connection cap, header timeout)."""
    protocol = None
    if guarded:
        guard = ConnectionGuard(default_max_connections(), Settings().header_timeout_s)
        protocol = guarded_protocol(guard)
    return serve_in_thread(app, timeout_s=timeout_s, protocol=protocol)


# -- the client --------------------------------------------------------------------------------
@dataclass
class Timings:
    first_s: list[float]  # time to the first text (the whole answer when not streaming)
    total_s: list[float]
    wall_s: float = 0.0


async def _one(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, float]:
    """(seconds to the first text, seconds to the end) of one request, its answer checked."""
    start = time.perf_counter()
    if not body.get("stream"):
        resp = await client.post(url, json=body)
        whole = time.perf_counter() - start
        if resp.status_code != 200 or resp.json()["choices"][0]["message"]["content"] != TEXT:
            raise RuntimeError(f"wrong answer from {url}: {resp.status_code} {resp.text[:300]}")
        _note_fallbacks(resp.json())
        return whole, whole
    first: float | None = None
    total: float | None = None
    parts: list[str] = []
    async with client.stream("POST", url, json=body) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status_code} {(await resp.aread())[:300]!r}")
        async for line in resp.aiter_lines():  # read to the end: the connection is kept
            if total is not None or not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                total = time.perf_counter() - start
                continue
            event = json.loads(payload)
            if first is None:
                _note_fallbacks(event)
            delta = event["choices"][0]["delta"].get("content")
            if delta:
                first = time.perf_counter() - start if first is None else first
                parts.append(delta)
    if total is None or first is None or "".join(parts) != TEXT:
        raise RuntimeError(
            f"{url}: broken stream (done={total is not None}): {''.join(parts)[:200]!r}"
        )
    return first, total


def _note_fallbacks(answer: dict[str, Any]) -> None:
    """Count the failed attempts the gateway reports in an answer (or a stream's first chunk)."""
    for attempt in answer.get("mixllm", {}).get("attempts", []):
        if not attempt["ok"]:
            FAILED_ATTEMPTS[re.sub(r"'[^']*'|\S+:\d+\S*", "…", str(attempt["error"]))] += 1


async def _run(
    clients: list[httpx.AsyncClient], url: str, bodies: list[dict[str, Any]], concurrency: int
) -> Timings:
    """Send ``bodies`` with ``concurrency`` requests in flight at a time (worker ``i`` uses
    ``clients[i // POOL]``)."""
    out = Timings([], [])
    todo = iter(bodies)

    async def worker(client: httpx.AsyncClient) -> None:
        for body in todo:  # a shared iterator: each body is sent once
            first, total = await _one(client, url, body)
            out.first_s.append(first)
            out.total_s.append(total)

    start = time.perf_counter()
    await asyncio.gather(*(worker(clients[i // POOL]) for i in range(concurrency)))
    out.wall_s = time.perf_counter() - start
    return out


async def measure(
    direct: str, gateway: str, prompts: list[str], n: int, concurrency: int, *, stream: bool
) -> tuple[Timings, Timings]:
    """Timings of ``n`` requests to each target at ``concurrency``, in ABBA order."""
    # idle connections are dropped after 1 s, before uvicorn's keep-alive timeout (5 s) does:
    # with httpx's default (5 s) too, a request may go out on a connection the server is closing
    limits = httpx.Limits(
        max_connections=POOL, max_keepalive_connections=POOL, keepalive_expiry=1.0
    )
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    urls = {"direct": f"{direct}/chat/completions", "gateway": f"{gateway}/chat/completions"}
    models = {"direct": "upstream", "gateway": "mixllm"}
    results = {t: Timings([], []) for t in urls}
    half = max(n // 2, 1)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=timeout))
            for _ in range(-(-concurrency // POOL))
        ]
        for target in urls:  # warm up: open the connections, touch every code path
            warm = [_body(models[target], p, stream) for p in prompts[:concurrency]]
            await _run(clients, urls[target], warm, concurrency)
        for block, target in enumerate(("direct", "gateway", "gateway", "direct")):
            start = (block % 2) * half
            sent = [prompts[(start + i) % len(prompts)] for i in range(half)]
            got = await _run(
                clients, urls[target], [_body(models[target], p, stream) for p in sent], concurrency
            )
            results[target].first_s += got.first_s
            results[target].total_s += got.total_s
            results[target].wall_s += got.wall_s
    return results["direct"], results["gateway"]


def _body(model: str, prompt: str, stream: bool) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}


# -- setup -------------------------------------------------------------------------------------
def build_router(data: str, spec: str) -> tuple[Router, list[str], str]:
    """A fitted MixLLM router, held-out prompts, and the embedder spec actually used."""
    if data == "synthetic":
        ds: Dataset = make_routing_dataset(n_queries=2500, n_llms=11, seed=0)
    else:
        ds = load_dataset(DATA / "routerbench" / "routerbench_0shot_subset.csv")
    train, test = split_random(ds, seed=0)
    embedder: Embedder = make_embedder(spec, cache=False)
    try:
        embedder.embed(["warm up"])
    except Exception as exc:  # the static model is missing offline: fall back to hashing
        print(f"embedder {spec!r} unavailable ({type(exc).__name__}: {exc}); using 'hashing'")
        spec = "hashing"
        embedder = make_embedder(spec, cache=False)
    router = Router("mixllm", embedder=embedder, lam=LAM).fit(train)
    return router, [str(p) for p in test.prompts], spec


def time_parts(router: Router, prompts: list[str], folder: Path) -> tuple[float, float]:
    """p50 ms of one decision (``router.route``) and of one SQLite decision write."""
    router.route("warm up")
    route_ms = []
    decisions: list[Decision] = []
    for p in prompts[:200]:
        start = time.perf_counter()
        decisions.append(router.route(p))
        route_ms.append((time.perf_counter() - start) * 1e3)
    store = Store(folder / "scratch.db")
    write_ms = []
    for d in decisions:
        start = time.perf_counter()
        store.record_decision(d, request_model="mixllm")
        write_ms.append((time.perf_counter() - start) * 1e3)
    store.close()
    return float(np.percentile(route_ms, 50)), float(np.percentile(write_ms, 50))


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, load {load}"


# -- report ------------------------------------------------------------------------------------
def _ms(values: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(values) * 1e3, [50, 99])
    return float(p50), float(p99)


def table_rows(cells: list[tuple[str, int, Timings, Timings]]) -> list[str]:
    head = (
        "| request | c | metric | direct p50 | direct p99 | gateway p50 | gateway p99 "
        "| added p50 | added p99 | ratio p50 | ratio p99 | req/s direct | req/s gateway |"
    )
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for mode, c, direct, gateway in cells:
        metrics = [("total", direct.total_s, gateway.total_s)]
        if mode == "stream":
            metrics.insert(0, ("first token", direct.first_s, gateway.first_s))
        for name, d, g in metrics:
            (d50, d99), (g50, g99) = _ms(d), _ms(g)
            rps_d, rps_g = (
                len(direct.total_s) / direct.wall_s,
                len(gateway.total_s) / gateway.wall_s,
            )
            rows.append(
                f"| {mode} | {c} | {name} | {d50:.2f} | {d99:.2f} | {g50:.2f} | {g99:.2f} "
                f"| {g50 - d50:+.2f} | {g99 - d99:+.2f} | {g50 / d50:.2f}x | {g99 / d99:.2f}x "
                f"| {rps_d:.0f} | {rps_g:.0f} |"
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="requests per cell and target")
    ap.add_argument("--concurrency", default="1,10,100", help="requests in flight, comma-separated")
    ap.add_argument("--embedder", default="static?max_tokens=64&keep=end")
    ap.add_argument("--data", choices=("routerbench", "synthetic"), default="routerbench")
    ap.add_argument("--upstream-delay-ms", type=float, default=0.0)
    ap.add_argument("--modes", default="json,stream", help="json (not streaming), stream")
    ap.add_argument("--timeout-s", type=float, default=600.0, help="bound on each cell")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    modes = args.modes.split(",")
    started = datetime.datetime.now(datetime.timezone.utc)
    host = machine()  # with the load average before the run
    router, prompts, spec = build_router(args.data, args.embedder)
    with tempfile.TemporaryDirectory(prefix="gateway-latency-", dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        route_ms, write_ms = time_parts(router, prompts, folder)
        backends = {}
        cells: list[tuple[str, int, Timings, Timings]] = []
        with serving(fake_upstream(args.upstream_delay_ms / 1e3)) as upstream:
            for llm in router.llms:
                backends[llm] = OpenAIBackend(
                    llm, base_url=upstream, model=llm, timeout_s=REQUEST_TIMEOUT_S
                )
            store = Store(folder / "gateway.db")
            app = create_app(
                router, backends, store, Settings(deadline_s=REQUEST_TIMEOUT_S),
                state_dir=folder / "state",
            )  # fmt: skip
            with serving(app, guarded=True) as gateway:
                for mode in modes:
                    for c in levels:
                        print(f"{mode} at concurrency {c} ...", file=sys.stderr, flush=True)
                        direct_t, gateway_t = asyncio.run(
                            asyncio.wait_for(
                                measure(
                                    upstream, gateway, prompts, args.n, c, stream=mode == "stream"
                                ),
                                timeout=args.timeout_s,
                            )
                        )
                        cells.append((mode, c, direct_t, gateway_t))
            counts = store.counts()
            store.close()
    seconds = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    load_after = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"Gateway added latency, {started:%Y-%m-%d %H:%M} UTC, {host}",
        f"router: mixllm, embedder {spec!r}, λ={LAM:g}, fitted on {args.data} "
        f"({len(router.llms)} LLMs); {len(prompts)} held-out prompts",
        f"upstream: fake, fixed delay {args.upstream_delay_ms:g} ms, {len(TEXT)} characters "
        f"({-(-len(TEXT.split()) // WORDS_PER_CHUNK)} chunks when streamed); "
        f"{args.n} requests per cell and target, ABBA order",
        "",
        *table_rows(cells),
        "",
        "ms; c: requests in flight; added: gateway − direct; ratio: gateway / direct;",
        "json: not streaming (time to the whole answer); stream: first token and [DONE]",
        f"in the gateway, one decision (router.route, p50): {route_ms:.2f} ms; one SQLite "
        f"decision write (synchronous=FULL, p50): {write_ms:.2f} ms",
        f"gateway store after the run: {counts}; run time {seconds:.0f} s; load after {load_after}",
        f"failed upstream attempts the gateway fell back from: {sum(FAILED_ATTEMPTS.values())}"
        + "".join(f"\n  {k!s}: {v}" for k, v in FAILED_ATTEMPTS.most_common(5)),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
