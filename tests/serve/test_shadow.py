"""Shadow traffic: after each client answer, a share of requests goes to the LLM the router is
least sure about; the answer is graded (a judge LLM that knows the recorded qualities, or a
grader against the served answer), stored and learned, within a daily budget, and never seen by
the client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mixllm import Router
from mixllm.data import Dataset, Outcome
from mixllm.serve import FakeBackend, ReplayBackend, Settings
from mixllm.serve.capabilities import Capabilities
from mixllm.serve.metrics import metric_total as _metric
from mixllm.serve.replay import RecordedJudge
from mixllm.serve.restore import restore_router
from mixllm.types import LLM

from . import shadow_setup
from .inprocess import gateway, run
from .shadow_setup import (
    JUDGE,
    LLMS,
    PROMPTS,
    _backends,
    _chat,
    _predicted,
    _settings,
    _shadow_rows,
)

# the fixtures, assigned (not imported) so that test parameters of the same name are not flagged
data, router_dir = shadow_setup.data, shadow_setup.router_dir


# -- one shadow call per answer, to the right LLM ----------------------------------------------
def test_each_answer_is_shadowed_once_by_the_most_uncertain_capable_llm(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    router = Router.load(router_dir)
    backends = _backends(data)
    backends["medium"].capabilities = Capabilities(tools=False)  # never shadows a tool request
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

    async def body() -> list[tuple[str, str, str]]:
        seen = []
        async with gateway(router, backends, tmp_path, _settings()) as (app, client):
            gw = app.state.gateway
            for i, prompt in enumerate(PROMPTS[:12]):
                tools = i % 3 == 0
                pred = router.predict([prompt])
                width = dict(zip(pred.llms, pred.uncertainty[0].tolist(), strict=True))
                extra: dict[str, Any] = {"tools": [tool]} if tools else {}
                if i % 2:
                    extra["stream"] = True
                reply = await client.post("/v1/chat/completions", json=_chat(prompt, **extra))
                assert reply.status_code == 200
                await gw.shadow.drain()
                answered = reply.headers["x-mixllm-llm"]
                # with a judge, the LLM that answered is a candidate too (its answer is graded)
                eligible = sorted(m for m in LLMS if not (tools and m == "medium" != answered))
                seen.append((answered, max(eligible, key=lambda m: width[m]), reply.text))
            metrics = (await client.get("/metrics")).text
        assert _metric(metrics, "mixllm_shadow_requests_total", outcome="learned") == 12
        served = sum(a == w for a, w, _ in seen)
        assert _metric(metrics, "mixllm_shadow_requests_total", answer="served") == served
        return seen

    seen = run(body)
    rows = _shadow_rows(tmp_path / "gateway.db")
    assert len(rows) == len(seen) == 12  # exactly one shadow call per answer
    for row, (answered, widest, _) in zip(rows, seen, strict=True):
        assert row["llm"] == widest
        assert row["shadow_outcome"] == ("served" if widest == answered else "learned")
    assert {row["llm"] for row in rows} >= {"small", "large"}  # not always the same LLM


def test_a_cold_newcomer_is_the_most_uncertain_and_gets_the_shadow_calls(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    router = Router.load(router_dir)
    router.add_llm(LLM("newcomer", 1.0, 3.0))  # no data: the widest uncertainty
    backends = {**_backends(data), "newcomer": FakeBackend("newcomer", text="new answer")}

    async def body() -> None:
        async with gateway(router, backends, tmp_path, _settings()) as (app, client):
            for prompt in PROMPTS[:5]:
                pred = router.predict([prompt])
                width = dict(zip(pred.llms, pred.uncertainty[0].tolist(), strict=True))
                assert max(width, key=lambda m: width[m]) == "newcomer"
                old = {"mixllm": {"candidates": list(LLMS)}}  # clients are served by the others
                reply = await client.post("/v1/chat/completions", json=_chat(prompt, **old))
                assert reply.headers["x-mixllm-llm"] != "newcomer"
                await app.state.gateway.shadow.drain()

    run(body)
    rows = _shadow_rows(tmp_path / "gateway.db")
    assert [r["llm"] for r in rows] == ["newcomer"] * 5
    # its answer is not in the recorded data: the judge cannot rate it, nothing is learned
    assert {r["shadow_outcome"] for r in rows} == {"unknown_quality"}


def test_the_client_sees_the_same_answers_with_shadow_on_and_off(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    def answers(settings: Settings, folder: Path) -> list[Any]:
        async def body() -> list[Any]:
            out = []
            router = Router.load(router_dir)
            async with gateway(router, _backends(data), folder, settings) as (app, client):
                for i, prompt in enumerate(PROMPTS[:8]):
                    model = "mixllm" if i == 0 else list(LLMS)[i % 3]  # no learning in play
                    stream = i % 2 == 1
                    reply = await client.post(
                        "/v1/chat/completions",
                        json={**_chat(prompt, stream=stream), "model": model},
                    )
                    await app.state.gateway.shadow.drain()
                    # after the first answer, predictions are learned from shadow calls
                    learned = i > 0
                    out.append((reply.status_code, reply.headers["x-mixllm-llm"],
                                _without_ids(reply.text, stream, learned=learned)))  # fmt: skip
                called = sum(_count(b) for b in app.state.gateway.backends.values())
            return [out, called]

        return run(body)

    off, calls_off = answers(Settings(deadline_s=10.0), tmp_path / "off")
    on, calls_on = answers(_settings(), tmp_path / "on")
    for a, b in zip(on, off, strict=True):
        assert a == b
    assert calls_on > calls_off == 0  # the shadow did call (the judge counts its calls)


_PREDICTIONS = {"predicted_quality", "predicted_cost_usd", "predicted_wait_s", "scores"}


def _count(backend: Any) -> int:
    return int(getattr(backend, "calls", 0))


def _without_ids(text: str, stream: bool, *, learned: bool = False) -> Any:
    """The response without what differs from run to run: ids, times, decision ids (and with
    ``learned``, the router's predictions, which learning changes)."""
    dropped = {"decision_id"} | (_PREDICTIONS if learned else set())

    def clean(obj: dict[str, Any]) -> dict[str, Any]:
        obj = {k: v for k, v in obj.items() if k not in ("id", "created")}
        if "mixllm" in obj:
            why = {k: v for k, v in obj["mixllm"].items() if k not in dropped}
            why["attempts"] = [{**a, "seconds": None} for a in why.get("attempts", [])]
            obj["mixllm"] = why
        return obj

    if not stream:
        return clean(json.loads(text))
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.strip()]
    return [e if e == "[DONE]" else clean(json.loads(e)) for e in events]


# -- graded, stored and learned ----------------------------------------------------------------
def test_judged_quality_is_stored_learned_and_restored(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    router = Router.load(router_dir)
    moves: list[tuple[float, float, float]] = []

    async def body() -> None:
        async with gateway(router, _backends(data), tmp_path, _settings()) as (app, client):
            gw = app.state.gateway
            for prompt in PROMPTS[:10]:
                before = _predicted(router, prompt)
                reply = await client.post("/v1/chat/completions", json=_chat(prompt))
                assert reply.status_code == 200
                await gw.shadow.drain()
                row = _shadow_rows(tmp_path / "gateway.db")[-1]
                after = _predicted(router, prompt)
                llm = row["llm"]
                recorded = float(data.quality[PROMPTS.index(prompt), data.llm_index(llm)])
                assert row["quality"] == pytest.approx(round(9 * recorded) / 9)  # [[1]] or [[10]]
                assert row["prompt"] == prompt
                if row["shadow_outcome"] == "served":  # no new answer: its cost is the served one
                    assert row["cost_usd"] == 0 and row["fb_cost"] > 0
                else:
                    assert row["fb_cost"] == pytest.approx(row["cost_usd"]) and row["cost_usd"] > 0
                moves.append((before[llm], after[llm], row["quality"]))
            # a restart from the store (no checkpoint yet) learns the same again
            restored = restore_router(router_dir, gw.store)
            for prompt in PROMPTS[:10] + PROMPTS[-5:]:
                live, again = _predicted(router, prompt), _predicted(restored, prompt)
                assert again == pytest.approx(live, abs=1e-9)

    run(body)
    for before, after, target in moves:  # each shadow grade pulls its LLM's prediction to it
        assert abs(after - target) <= abs(before - target) + 1e-9
    assert sum(abs(a - t) < abs(b - t) - 1e-6 for b, a, t in moves) >= len(moves) // 2


def test_unknown_judge_scores_are_stored_not_learned(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    router = Router.load(router_dir)
    mute = FakeBackend(JUDGE, text="I would rather not say.")  # never a [[N]]

    async def body() -> str:
        async with gateway(router, _backends(data, mute), tmp_path, _settings()) as (app, client):
            for prompt in PROMPTS[:4]:
                before = _predicted(router, prompt)
                assert (await client.post("/v1/chat/completions", json=_chat(prompt))).is_success
                await app.state.gateway.shadow.drain()
                assert _predicted(router, prompt) == before
            return (await client.get("/metrics")).text

    metrics = run(body)
    rows = _shadow_rows(tmp_path / "gateway.db")
    assert mute.calls == 8  # an unparseable verdict is asked again once
    assert sum(_metric(metrics, "mixllm_shadow_requests_total", llm=m, outcome="unknown_quality")
               for m in LLMS) == 4  # fmt: skip
    # a shadow answer is paid for: stored; a served answer's unknown grade leaves no row
    shadowed = _metric(metrics, "mixllm_shadow_requests_total", answer="shadow")
    assert len(rows) == shadowed and 0 < shadowed < 4
    assert all(r["shadow_outcome"] == "unknown_quality" and r["quality"] is None for r in rows)
    assert _metric(metrics, "mixllm_shadow_requests_total", outcome="learned") == 0


def test_without_a_judge_the_grader_compares_with_the_served_answer(
    router_dir: Path, tmp_path: Path
) -> None:
    rows = [  # small and large give the same answers, medium another one
        Outcome(f"q{i}", p, m, 1.0, 1e-5, response="4" if m != "medium" else "5")
        for i, p in enumerate(PROMPTS) for m in LLMS
    ]  # fmt: skip
    same = Dataset.from_outcomes(rows)
    router = Router.load(router_dir)
    backends = {m: ReplayBackend(m, same) for m in LLMS}
    settings = _settings(judge=None, grader="number")

    async def body() -> None:
        async with gateway(router, backends, tmp_path, settings) as (app, client):
            for prompt in PROMPTS[:6]:
                reply = await client.post("/v1/chat/completions", json=_chat(prompt))
                await app.state.gateway.shadow.drain()
                row = _shadow_rows(tmp_path / "gateway.db")[-1]
                served = reply.headers["x-mixllm-llm"]
                agree = (row["llm"] == "medium") == (served == "medium")
                assert row["quality"] == (1.0 if agree else 0.0)

    run(body)


# -- the served answer graded when its LLM is the most uncertain -------------------------------
class _Counted(ReplayBackend):
    """A replayed LLM that counts its calls."""

    calls = 0

    async def complete(self, messages: Any, params: Any, *, prompt: str) -> Any:
        self.calls += 1
        return await super().complete(messages, params, prompt=prompt)


def _cold_large(data: Dataset, folder: Path) -> Path:
    """A router fitted without ``large``, which is then added with no data (saved)."""
    cold = Router("mixllm", embedder="hashing", lam=50.0).fit(data.select_llms(["small", "medium"]))
    cold.add_llm(LLM("large", *LLMS["large"][:2]))
    cold.save(folder)
    return folder


def test_with_a_judge_the_served_answer_is_graded_when_its_llm_is_the_most_uncertain(
    data: Dataset, tmp_path: Path
) -> None:
    path = _cold_large(data, tmp_path / "cold")
    router = Router.load(path)
    backends: dict[str, Any] = {m: _Counted(m, data) for m in LLMS}
    backends[JUDGE] = RecordedJudge(data)
    prompts = PROMPTS[:6]
    db = tmp_path / "gw" / "gateway.db"

    async def body() -> tuple[list[str], str]:
        ids = []
        async with gateway(router, backends, tmp_path / "gw", _settings()) as (app, client):
            gw = app.state.gateway
            for i, prompt in enumerate(prompts):
                pred = router.predict([prompt])
                width = dict(zip(pred.llms, pred.uncertainty[0].tolist(), strict=True))
                assert max(width, key=lambda m: width[m]) == "large"  # the cold one
                before = _predicted(router, prompt)["large"]
                chat = {**_chat(prompt, stream=i % 2 == 1), "model": "large"}
                reply = await client.post("/v1/chat/completions", json=chat)
                assert reply.status_code == 200 and reply.headers["x-mixllm-llm"] == "large"
                ids.append(reply.headers["x-mixllm-decision-id"])
                await gw.shadow.drain()
                row = _shadow_rows(db)[-1]
                assert (row["llm"], row["shadow_outcome"]) == ("large", "served")
                assert row["shadow_of"] == ids[-1] and row["decision_id"] != ids[-1]
                recorded = float(data.quality[i, data.llm_index("large")])
                assert row["quality"] == pytest.approx(round(9 * recorded) / 9)
                charged, _ = gw.store.answer_of(ids[-1])
                assert charged is not None and charged > 0 and row["cost_usd"] == 0
                assert row["fb_cost"] == pytest.approx(charged)  # the served answer's cost
                after = _predicted(router, prompt)["large"]  # learned for the served LLM
                assert abs(after - row["quality"]) < abs(before - row["quality"])
            # no call to any answering LLM but the clients'; one verdict per answer
            assert {m: backends[m].calls for m in LLMS} == {"small": 0, "medium": 0, "large": 6}
            assert backends[JUDGE].calls == len(prompts)
            # a restart from the store learns the same grades again
            restored = restore_router(path, gw.store)
            for prompt in PROMPTS:
                assert _predicted(restored, prompt) == pytest.approx(
                    _predicted(router, prompt), abs=1e-9
                )
            # the clients' own feedback on those answers still applies, once each
            for decision_id in ids[:3]:
                before = _predicted(router, prompts[ids.index(decision_id)])["large"]
                fb = {"id": f"chatcmpl-{decision_id}", "quality": 0.5}
                reply = await client.post("/v1/feedback", json=fb)
                assert reply.json()["status"] == "applied"
                assert _predicted(router, prompts[ids.index(decision_id)])["large"] != before
                reply = await client.post("/v1/feedback", json=fb)
                assert reply.json()["status"] == "duplicate"
            # export: the client's rating wins over the judge's grade of the same answer
            rows = gw.store.outcome_rows()
            graded = {r["prompt"]: r for r in rows if r["llm"] == "large" and r["shadow"]}
            rated = {r["prompt"]: r for r in rows if r["llm"] == "large" and not r["shadow"]}
            assert sorted(graded) == sorted(prompts[3:]) and len(rated) == len(prompts)
            assert [rated[p]["quality"] for p in prompts] == [0.5] * 3 + [None] * 3
            return ids, (await client.get("/metrics")).text

    _, metrics = run(body)
    assert _metric(metrics, "mixllm_shadow_requests_total", outcome="learned", answer="served") == 6
    assert _metric(metrics, "mixllm_shadow_requests_total", answer="shadow") == 0


def test_without_a_judge_the_llm_that_answered_is_never_shadowed(
    data: Dataset, tmp_path: Path
) -> None:
    router = Router.load(_cold_large(data, tmp_path / "cold"))
    backends: dict[str, Any] = {m: _Counted(m, data) for m in LLMS}
    settings = _settings(judge=None, grader="normalised")

    async def body() -> str:
        async with gateway(router, backends, tmp_path / "gw", settings) as (app, client):
            for prompt in PROMPTS[:6]:
                pred = router.predict([prompt])
                width = dict(zip(pred.llms, pred.uncertainty[0].tolist(), strict=True))
                assert max(width, key=lambda m: width[m]) == "large"
                chat = {**_chat(prompt), "model": "large"}
                assert (await client.post("/v1/chat/completions", json=chat)).is_success
                await app.state.gateway.shadow.drain()
            return (await client.get("/metrics")).text

    metrics = run(body)
    rows = _shadow_rows(tmp_path / "gw" / "gateway.db")
    assert len(rows) == 6 and all(r["llm"] in ("small", "medium") for r in rows)
    assert backends["small"].calls + backends["medium"].calls == 6
    assert _metric(metrics, "mixllm_shadow_requests_total", answer="served") == 0
