"""Bounded runs at 100 concurrent streams give no errors.

A real gateway (uvicorn on 127.0.0.1) whose backends are :class:`OpenAIBackend` s calling a
real fake OpenAI-compatible upstream (a second uvicorn on 127.0.0.1, one upstream model per
router LLM, each answer naming its model and echoing the question, after a short delay). First
100 streaming chat requests at once, then 3 rounds of 100 concurrent requests (streaming and
not, feedback on every third answer), all through ``httpx.AsyncClient`` with room for 100
connections, every request and the whole run bounded by a timeout. Checks: every response is
a 200 with no fallback, every answer is the exact text of the upstream model of the LLM that
answered and every stream ends with ``[DONE]``, the store holds one decision per request (with
the LLM that answered) and every feedback, checkpoints were taken under load, the in-flight
gauges are back to 0, and ``/healthz`` is ok. No timing is asserted: the run time is printed
(``pytest -s``).

HTTP/1.1 keep-alive: uvicorn closes a connection idle for 5 s and httpx drops one idle for 5 s,
so a request can go out on a connection the server is closing (a ReadError, or a fallback
inside the gateway). The test client drops idle connections after 1 s, and the fake upstream
keeps them 30 s, so that every error and fallback counted here is the gateway's.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette

from mixllm import Router
from mixllm.serve import OpenAIBackend, Settings, Store, create_app
from mixllm.serve.fake import fake_openai_upstream
from mixllm.serve.run import serve_in_thread

from .conftest import running

TEXT = "Routers route. Each answer comes from the LLM with the best quality for the money."
FIRST_TOKEN_DELAY_S = 0.03  # the upstream waits this long before answering
CHUNK_DELAY_S = 0.002  # and this long between stream chunks, so streams stay open together
CONCURRENCY = 100
ROUNDS = 3
FEEDBACK_EVERY = 3  # feedback on every third answer of the rounds
CHECKPOINT_EVERY = 20
REQUEST_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 60.0


def _answer(model: str, question: str) -> str:
    return f"{model} says: {TEXT} You asked: {question}"


@contextmanager
def _upstream_server(app: Starlette, *, keep_alive_s: int = 30) -> Iterator[str]:
    """Like ``running``, but the server keeps idle connections ``keep_alive_s`` (uvicorn's
    default is 5 s), so that every fallback here is a real failure, not a connection the
    upstream was closing as the gateway reused it (see ``_load``)."""
    with serve_in_thread(app, timeout_s=20.0, keep_alive_s=keep_alive_s) as base:
        yield base


@dataclass(frozen=True)
class Reply:
    id: str
    llm: str
    text: str
    stream: bool


async def _ask(client: httpx.AsyncClient, base: str, question: str, *, stream: bool) -> Reply:
    body = {"model": "mixllm", "messages": [{"role": "user", "content": question}]}
    if not stream:
        resp = await client.post(f"{base}/chat/completions", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-mixllm-fallbacks"] == "0", resp.json()["mixllm"]["attempts"]
        reply = resp.json()
        assert reply["choices"][0]["finish_reason"] == "stop"
        llm = resp.headers["x-mixllm-llm"]
        assert reply["model"] == llm
        return Reply(reply["id"], llm, reply["choices"][0]["message"]["content"], False)
    async with client.stream(
        "POST", f"{base}/chat/completions", json={**body, "stream": True}
    ) as resp:
        assert resp.status_code == 200, (await resp.aread()).decode()
        assert resp.headers["content-type"].startswith("text/event-stream")
        llm, fallbacks = resp.headers["x-mixllm-llm"], resp.headers["x-mixllm-fallbacks"]
        events = [line[5:].strip() async for line in resp.aiter_lines() if line.startswith("data:")]
    assert events and events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    assert fallbacks == "0", chunks[0]["mixllm"]["attempts"]
    assert all("error" not in c for c in chunks), chunks
    assert len({c["id"] for c in chunks}) == 1 and {c["model"] for c in chunks} == {llm}
    assert chunks[0]["mixllm"]["llm"] == llm
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    return Reply(chunks[0]["id"], llm, text, True)


def _metric(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the Prometheus text."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name):
            labels, _, value = line[len(name) :].rpartition(" ")
            found[labels] = float(value)
    return found


def test_100_concurrent_streams_and_rounds_give_no_errors(router: Router, tmp_path: Path) -> None:
    upstream_model = {llm: f"upstream-{i}" for i, llm in enumerate(router.llms)}
    upstream_app = fake_openai_upstream(
        _answer, first_token_delay_s=FIRST_TOKEN_DELAY_S, chunk_delay_s=CHUNK_DELAY_S,
        words_per_chunk=3,
    )  # fmt: skip
    with _upstream_server(upstream_app) as upstream:
        backends = {
            llm: OpenAIBackend(llm, base_url=upstream, model=model, timeout_s=REQUEST_TIMEOUT_S)
            for llm, model in upstream_model.items()
        }
        settings = Settings(deadline_s=REQUEST_TIMEOUT_S, checkpoint_every=CHECKPOINT_EVERY)
        store = Store(tmp_path / "gateway.db")
        app = create_app(router, backends, store, settings, state_dir=tmp_path / "state")
        gw = app.state.gateway
        with running(app) as base:
            started = time.perf_counter()
            replies, questions, feedback = asyncio.run(
                asyncio.wait_for(_load(base), timeout=RUN_TIMEOUT_S)
            )
            seconds = time.perf_counter() - started
            root = base.removesuffix("/v1")
            health = httpx.get(f"{root}/healthz", timeout=10).json()
            metrics = httpx.get(f"{root}/metrics", timeout=10).text
            in_flight = {llm: gw.tracker.in_flight(llm) for llm in router.llms}

    n = CONCURRENCY * (1 + ROUNDS)
    assert len(replies) == n and len({r.id for r in replies}) == n
    for reply, question in zip(replies, questions):
        assert reply.text == _answer(upstream_model[reply.llm], question), (reply, question)
    assert sum(r.stream for r in replies) == CONCURRENCY + ROUNDS * CONCURRENCY // 2
    assert feedback == {
        "applied": ROUNDS * len(range(0, CONCURRENCY, FEEDBACK_EVERY)),
        "duplicate": 10,
    }

    assert health["status"] == "ok"
    assert set(health["circuits"].values()) == {"closed"}, health["circuits"]
    assert health["store"]["decisions"] == n
    assert health["store"]["feedback"] == feedback["applied"]
    assert health["store"]["checkpoints"] >= 1  # taken under load, every CHECKPOINT_EVERY
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        stored = dict(db.execute("SELECT decision_id, answered_by FROM decisions").fetchall())
    assert stored == {r.id.removeprefix("chatcmpl-"): r.llm for r in replies}

    assert set(in_flight.values()) == {0}, in_flight
    gauges = _metric(metrics, "mixllm_in_flight{")
    assert gauges and set(gauges.values()) == {0.0}, gauges
    chat = _metric(metrics, "mixllm_requests_total{")
    assert chat['endpoint="/v1/chat/completions",status="200"}'] == n, chat
    assert not any(k.startswith('endpoint="/v1/chat') and "200" not in k for k in chat), chat
    assert sum(_metric(metrics, "mixllm_fallbacks_total{").values()) == 0
    assert sum(_metric(metrics, "mixllm_answers_total{").values()) == n
    used = sorted({r.llm for r in replies})
    print(
        f"\n{n} chat requests ({CONCURRENCY} streams at once, then {ROUNDS} rounds of "
        f"{CONCURRENCY} mixed), {feedback['applied']} feedback, "
        f"{health['store']['checkpoints']} checkpoints, LLMs used {used}: {seconds:.1f} s"
    )


async def _load(base: str) -> tuple[list[Reply], list[str], dict[str, int]]:
    """100 streams at once, then the rounds; the replies, their questions, feedback outcomes."""
    # Idle connections are dropped after 1 s, before uvicorn's keep-alive timeout (5 s) closes
    # them: with httpx's default (also 5 s) a request sent on a connection the server is
    # closing fails with ReadError (a keep-alive race of any HTTP/1.1 client, not the gateway).
    limits = httpx.Limits(
        max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY, keepalive_expiry=1.0
    )
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    outcomes: dict[str, int] = {}
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def give_feedback(reply: Reply, i: int) -> None:
            sent = {"reward": True} if i % 2 else {"quality": 0.7, "cost_usd": 0.001}
            resp = await client.post(f"{base}/feedback", json={"id": reply.id, **sent})
            assert resp.status_code == 200, resp.text
            status = resp.json()["status"]
            outcomes[status] = outcomes.get(status, 0) + 1

        questions = [f"Stream {i}: what is {i} + {i}?" for i in range(CONCURRENCY)]
        replies = list(
            await asyncio.gather(*(_ask(client, base, q, stream=True) for q in questions))
        )

        async def one(question: str, i: int) -> Reply:
            reply = await _ask(client, base, question, stream=i % 2 == 0)
            if i % FEEDBACK_EVERY == 0:
                await give_feedback(reply, i)
            return reply

        for r in range(ROUNDS):
            asked = [f"Round {r} question {i}: name {i} cities." for i in range(CONCURRENCY)]
            replies += await asyncio.gather(*(one(q, i) for i, q in enumerate(asked)))
            questions += asked
        # a repeat changes nothing
        await asyncio.gather(*(give_feedback(r, 1) for r in replies[CONCURRENCY:][:30:3]))
    return replies, questions, outcomes
