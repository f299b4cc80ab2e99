"""How much the clients of a gateway explore an LLM added without data: MixLLM's newcomer bonus
on client requests is scaled by the share of served answers that shadow traffic grades (1 with
shadow traffic off, ``share`` with a judge, 0 without one)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mixllm import Router
from mixllm.data import Dataset
from mixllm.errors import ConfigError
from mixllm.serve import FakeBackend
from mixllm.types import LLM

from . import shadow_setup
from .inprocess import gateway, run
from .shadow_setup import LLMS, PROMPTS, _backends, _chat, _settings

# the fixtures, assigned (not imported) so that test parameters of the same name are not flagged
data, router_dir = shadow_setup.data, shadow_setup.router_dir


@pytest.mark.parametrize(
    ("shadow", "scale"),
    [({"share": 0.0}, 1.0), ({"share": 0.25}, 0.25), ({"share": 0.25, "judge": None}, 0.0)],
)
def test_clients_explore_a_newcomer_as_much_as_their_answers_are_graded(
    router_dir: Path, data: Dataset, tmp_path: Path, shadow: dict[str, Any], scale: float
) -> None:
    def with_newcomer() -> Router:
        router = Router.load(router_dir)
        router.add_llm(LLM("newcomer", 1.0, 3.0))
        return router

    router = with_newcomer()
    backends = {**_backends(data), "newcomer": FakeBackend("newcomer", text="new answer")}
    prompt = PROMPTS[0]
    # each from a fresh router: a query sent to the newcomer narrows its bonus (in flight)
    full, none = with_newcomer().route(prompt), with_newcomer().route(prompt, explore_scale=0.0)
    bonus = full.scores["newcomer"] - none.scores["newcomer"]
    assert bonus > 0 and all(full.scores[m] == none.scores[m] for m in LLMS)

    async def body() -> float:
        async with gateway(router, backends, tmp_path, _settings(**shadow)) as (app, client):
            reply = await client.post("/v1/chat/completions", json=_chat(prompt))
            assert reply.status_code == 200
            await app.state.gateway.shadow.drain()
            return float(app.state.gateway.shadow.explore_scale)

    assert run(body) == scale
    # the client's decision was scored with the bonus scaled by the share of answers graded
    conn = sqlite3.connect(tmp_path / "gateway.db")
    try:
        (stored,) = conn.execute("SELECT scores FROM decisions WHERE shadow_of IS NULL").fetchone()
    finally:
        conn.close()
    expected = none.scores["newcomer"] + scale * bonus
    assert json.loads(stored)["newcomer"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), True, "1"])
def test_explore_scale_must_be_a_finite_number(router_dir: Path, bad: object) -> None:
    with pytest.raises(ConfigError, match="explore_scale"):
        Router.load(router_dir).route(PROMPTS[0], explore_scale=bad)  # type: ignore[arg-type]
