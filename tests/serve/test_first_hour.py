"""What a new user of the gateway runs into first: LLMs named by their short names, a
``max_cost_usd`` that no LLM can meet, and replayed answers that say where they come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mixllm import Router
from mixllm.data import Dataset, Outcome
from mixllm.serve import FakeBackend, ReplayBackend, Settings, Store, create_app
from mixllm.serve.settings import Profile

from .inprocess import serving

LLMS = ("acme/small", "beta/large", "gamma/large")
TOPICS = ("cats", "dogs", "tax law", "orbital mechanics")


@pytest.fixture(scope="module")
def data() -> Dataset:
    """60 queries x 3 LLMs; 'large' is a short name two of them share."""
    rows = [
        Outcome(f"q{i}", f"question {i} about {TOPICS[i % 4]}", m, float((i + j) % 3 > 0),
                0.0001 * (j + 1) * (1 + i % 5), response=f"{m} says {i}")
        for i in range(60) for j, m in enumerate(LLMS)
    ]  # fmt: skip
    return Dataset.from_outcomes(rows)


@pytest.fixture(scope="module")
def router(data: Dataset) -> Router:
    return Router("mixllm", embedder="hashing", lam=10.0).fit(data)


def _app(router: Router, tmp_path: Path, **kwargs: Any) -> Any:
    backends = kwargs.pop("backends", None) or {m: FakeBackend(m, text="ok") for m in LLMS}
    settings = kwargs.pop("settings", Settings(deadline_s=5.0))
    return create_app(router, backends, Store(tmp_path / "g.db"), settings, **kwargs)


def _ask(model: str = "mixllm", **options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi cats"}]}
    if options:
        body["mixllm"] = options
    return body


def test_short_llm_names_as_model_and_candidates(router: Router, tmp_path: Path) -> None:
    with serving(_app(router, tmp_path)) as http:
        reply = http.post("/v1/chat/completions", json=_ask("small"))
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-mixllm-llm"] == "acme/small"
        reply = http.post("/v1/chat/completions", json=_ask(candidates=["small", "beta/large"]))
        assert reply.status_code == 200, reply.text
        assert reply.json()["mixllm"]["scores"].keys() == {"acme/small", "beta/large"}
        for body in (_ask("large"), _ask(candidates=["large"])):
            reply = http.post("/v1/chat/completions", json=body)
            assert reply.status_code == 404, reply.text
            message = reply.json()["error"]["message"]
            assert "ambiguous" in message and "'large'" in message, message
            assert "beta/large" in message and "gamma/large" in message, message
        reply = http.post("/v1/chat/completions", json=_ask(candidates=["tiny"]))
        assert reply.status_code == 404 and "unknown candidate LLM 'tiny'" in reply.text


def test_max_cost_below_every_prediction_is_refused(router: Router, tmp_path: Path) -> None:
    """400 naming the cheapest predicted LLM and its cost; nothing is charged or recorded.
    A cap that some LLM meets routes under it; a profile's cap is held the same way."""
    costs = router.route("hi cats").predicted_cost_usd
    cheapest = min(costs, key=lambda m: costs[m])
    low = costs[cheapest] / 2
    settings = Settings(deadline_s=5.0, profiles={"thrifty": Profile(max_cost_usd=low)})
    with serving(_app(router, tmp_path, settings=settings)) as http:
        for body in (_ask(max_cost_usd=low), _ask("thrifty")):
            reply = http.post("/v1/chat/completions", json=body)
            assert reply.status_code == 400, reply.text
            error = reply.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert f"max_cost_usd={low!r} is below every candidate LLM's" in error["message"]
            assert f"the cheapest is {cheapest} at ${costs[cheapest]:.6g}" in error["message"]
        fits = sorted(costs.values())[1] * 1.01  # the two cheapest fit
        reply = http.post("/v1/chat/completions", json=_ask(max_cost_usd=fits))
        assert reply.status_code == 200, reply.text
        assert reply.json()["mixllm"]["predicted_cost_usd"] <= fits
        metrics = http.get("/metrics").text
    decided = [ln for ln in metrics.splitlines() if ln.startswith("mixllm_decisions_total{")]
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in decided) == pytest.approx(1.0)


def test_replayed_answers_say_which_recorded_prompt_they_answer(
    data: Dataset, router: Router, tmp_path: Path
) -> None:
    backends = {m: ReplayBackend(m, data, embedder=router.embedder_) for m in LLMS}
    with serving(_app(router, tmp_path, backends=backends)) as http:
        same = _ask()
        same["messages"][0]["content"] = "question 5 about dogs"
        reply = http.post("/v1/chat/completions", json=same)
        llm = reply.headers["x-mixllm-llm"]
        assert reply.json()["choices"][0]["message"]["content"] == f"{llm} says 5"
        assert reply.headers["x-mixllm-replay"] == "recorded answer to this prompt; query=q5"
        other = _ask()
        other["messages"][0]["content"] = "What is the capital of Australia?"
        for stream in (False, True):
            reply = http.post("/v1/chat/completions", json={**other, "stream": stream})
            assert reply.status_code == 200, reply.text
            said = reply.headers["x-mixllm-replay"]
            assert said.startswith("recorded answer to the nearest recorded prompt; similarity=")
            similarity = float(said.split("similarity=")[1].split(";")[0])
            assert -1.0 <= similarity < 1.0
            assert said.split("query=")[1] in set(data.query_ids)


def test_a_cost_cap_holds_for_fallbacks_too(router: Router, tmp_path: Path) -> None:
    """When the LLMs under the cap fail, the request fails (503): no fallback above the cap."""
    costs = router.route("hi cats").predicted_cost_usd
    by_cost = sorted(costs, key=lambda m: costs[m])
    cap = costs[by_cost[1]] * 1.01  # the two cheapest fit, the dearest does not
    backends = {m: FakeBackend(m, text="ok", fail="500") for m in by_cost[:2]}
    backends[by_cost[2]] = FakeBackend(by_cost[2], text="ok")
    with serving(_app(router, tmp_path, backends=backends)) as http:
        reply = http.post("/v1/chat/completions", json=_ask(max_cost_usd=cap))
        assert reply.status_code == 503, reply.text
        reply = http.post("/v1/chat/completions", json=_ask())  # without the cap: falls back
        assert reply.status_code == 200 and reply.headers["x-mixllm-llm"] == by_cost[2]
    assert backends[by_cost[2]].calls == 1
    assert backends[by_cost[0]].calls >= 1 and backends[by_cost[1]].calls >= 1
