"""Conversations: a multi-turn conversation stays on one LLM unless another one's score beats
it by the margin; a tool-call continuation never switches; sessions by header, by the
``mixllm.session`` field, or by a hash of the first messages."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm import Router
from mixllm.data import make_routing_dataset
from mixllm.serve import Settings

from .inprocess import gateway, run, upstream_backend

TURNS = 10


def _questions() -> list[str]:
    """Prompts of the router's own kind of data, on many topics (so the best LLM varies)."""
    data = make_routing_dataset(n_queries=400, n_llms=4, seed=0)
    return [str(p) for p in data.prompts[:80]]


async def _conversation(
    http: httpx.AsyncClient, questions: list[str], **extra: Any
) -> list[dict[str, Any]]:
    """TURNS turns of one conversation: each answer is appended before the next question."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are concise."}]
    explained = []
    for q in questions[:TURNS]:
        messages.append({"role": "user", "content": q})
        r = await http.post(
            "/v1/chat/completions", json={"model": "mixllm", "messages": messages, **extra}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        explained.append(body["mixllm"])
        messages.append({"role": "assistant", "content": body["choices"][0]["message"]["content"]})
    return explained


def _best(why: dict[str, Any]) -> str:
    scores = why["scores"]
    return str(min(scores, key=lambda m: (-scores[m], m)))


def _varied_questions(router: Router) -> list[str]:
    """TURNS questions whose best LLM is not always the same (else staying proves nothing)."""
    qs = _questions()
    picks = [router.route(q).llm for q in qs]
    first = picks[0]
    chosen = [qs[0], *[q for q, p in zip(qs[1:], picks[1:], strict=True) if p != first][:3]]
    chosen += [q for q in qs[1:] if q not in chosen][: TURNS - len(chosen)]
    assert len({router.route(q).llm for q in chosen}) > 1
    return chosen


@pytest.mark.parametrize("margin", [1e9, 0.05, 0.0])
def test_ten_turns_stay_on_one_llm_unless_the_margin_is_passed(
    router: Router, tmp_path: Path, margin: float
) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}
    questions = _varied_questions(router)

    async def go() -> None:
        settings = Settings(session_margin=margin)
        async with gateway(router, backends, tmp_path, settings) as (_, http):
            turns = await _conversation(http, questions)
        assert len({t["session"] for t in turns}) == 1  # one conversation, found by its hash
        assert not turns[0]["stayed_in_session"]
        for before, now in pairwise(turns):
            best = _best(now)
            gap = now["scores"][best] - now["scores"][before["llm"]]
            if gap <= margin:
                assert now["llm"] == before["llm"], (gap, margin)
            else:
                assert now["llm"] == best and not now["stayed_in_session"], (gap, margin)
        llms = {t["llm"] for t in turns}
        if margin == 1e9:  # the router would have switched, the conversation did not
            assert len(llms) == 1 and any(t["stayed_in_session"] for t in turns)
        if margin == 0.0:  # follows the router, which does switch here
            assert len(llms) > 1 and not any(t["stayed_in_session"] for t in turns)

    run(go)


def test_a_tool_continuation_never_switches(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}
    question = _questions()[0]
    best = router.route(question).llm
    other = next(m for m in router.llms if m != best)
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]

    async def go() -> None:
        async with gateway(router, backends, tmp_path, Settings(session_margin=0.0)) as (_, http):
            start = [{"role": "user", "content": question}]
            r = await http.post(
                "/v1/chat/completions",
                headers={"x-mixllm-session": "conv-42"},
                json={
                    "model": "mixllm",
                    "messages": start,
                    "tools": tools,
                    "mixllm": {"candidates": [other]},
                },
            )
            assert r.headers["x-mixllm-llm"] == other and r.headers["x-mixllm-session"] == "conv-42"
            follow = [
                *start,
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c1", "content": "found it"},
            ]
            r = await http.post(
                "/v1/chat/completions",
                headers={"x-mixllm-session": "conv-42"},
                json={"model": "mixllm", "messages": follow, "tools": tools},
            )
            why = r.json()["mixllm"]
            assert _best(why) == best != other
            assert why["llm"] == other and why["stayed_in_session"]
            # the same turn in another session is routed afresh
            r = await http.post(
                "/v1/chat/completions",
                json={
                    "model": "mixllm",
                    "messages": follow,
                    "tools": tools,
                    "mixllm": {"session": "conv-43"},
                },
            )
            assert r.json()["mixllm"]["llm"] == best

    run(go)


def test_session_ids_by_hash_header_and_field(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m) for m in router.llms}

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):

            async def sid(messages: list[dict[str, Any]], **kw: Any) -> str:
                r = await http.post(
                    "/v1/chat/completions", json={"model": "mixllm", "messages": messages}, **kw
                )
                return str(r.headers["x-mixllm-session"])

            a = [{"role": "user", "content": "hello there"}]
            longer = [*a, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "?"}]
            assert await sid(a) == await sid(longer)  # the first messages name it
            assert await sid([{"role": "user", "content": "another start"}]) != await sid(a)
            assert await sid(a, headers={"x-mixllm-session": "mine-1"}) == "mine-1"
            bad = await http.post(
                "/v1/chat/completions",
                json={"model": "mixllm", "messages": a},
                headers={"x-mixllm-session": "has space"},
            )
            assert bad.status_code == 400 and "x-mixllm-session" in bad.json()["error"]["message"]

    run(go)
