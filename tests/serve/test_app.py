"""The gateway end to end, in process (ASGI transport): the official openai client, httpx."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from mixllm import Router
from mixllm.serve import ApiKey, FakeBackend, Settings, Store, create_app, restore_router
from mixllm.serve.settings import Profile

from .inprocess import serving, sync_openai

TEXT = "Routers route. Each answer comes from the LLM with the best quality for the money."


def _app(router: Router, tmp_path: Path, **kwargs: Any) -> Any:
    fail = kwargs.pop("fail", {})
    backends = {m: FakeBackend(m, text=TEXT, fail=fail.get(m)) for m in router.llms}
    backends.update(kwargs.pop("backends", {}))
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = Store(tmp_path / "gateway.db")
    settings = kwargs.pop("settings", Settings(deadline_s=5.0))
    return create_app(router, backends, store, settings, state_dir=tmp_path / "state", **kwargs)


def test_openai_client_gets_answers_and_the_chosen_llm(router: Router, tmp_path: Path) -> None:
    with serving(_app(router, tmp_path)) as http:
        client = sync_openai(http)
        raw = client.chat.completions.with_raw_response.create(
            model="mixllm", messages=[{"role": "user", "content": "What is 2 + 2?"}]
        )
        reply = raw.parse()
        assert reply.choices[0].message.content == TEXT
        assert raw.headers["x-mixllm-llm"] in router.llms
        assert reply.model == raw.headers["x-mixllm-llm"]
        why = (reply.model_extra or {})["mixllm"]
        assert why["llm"] == raw.headers["x-mixllm-llm"] and why["runner_up"] in router.llms
        assert why["predicted_cost_usd"] >= 0 and 0 <= why["predicted_quality"] <= 1
        chunks = client.chat.completions.create(
            model="mixllm",
            messages=[{"role": "user", "content": "Write a haiku about routers."}],
            stream=True,
        )
        parts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert "".join(parts) == TEXT
        models = [m.id for m in client.models.list()]
        assert models[0] == "mixllm" and set(router.llms) <= set(models)


def test_per_request_options_and_profiles(router: Router, tmp_path: Path) -> None:
    one, other = router.llms[0], router.llms[1]
    settings = Settings(profiles={"pinned": Profile(candidates=(other,))})
    with serving(_app(router, tmp_path, settings=settings)) as http:
        client = sync_openai(http)
        ask = [{"role": "user", "content": "hello"}]
        raw = client.chat.completions.with_raw_response.create(
            model="mixllm", messages=ask, extra_body={"mixllm": {"candidates": [one], "lam": 5.0}}
        )
        assert raw.headers["x-mixllm-llm"] == one
        assert (raw.parse().model_extra or {})["mixllm"]["lam"] == 5.0
        raw = client.chat.completions.with_raw_response.create(model="pinned", messages=ask)
        assert raw.headers["x-mixllm-llm"] == other
        raw = client.chat.completions.with_raw_response.create(model=one, messages=ask)
        assert raw.headers["x-mixllm-llm"] == one
        with pytest.raises(openai.NotFoundError, match="unknown model 'gpt-5'"):
            client.chat.completions.create(model="gpt-5", messages=ask)
        with pytest.raises(openai.BadRequestError, match="lam"):
            client.chat.completions.create(
                model="mixllm", messages=ask, extra_body={"mixllm": {"lam": -1}}
            )


def test_fallback_to_the_next_llm_and_503_when_none_answers(router: Router, tmp_path: Path) -> None:
    ask = {"model": "mixllm", "messages": [{"role": "user", "content": "fall back please"}]}
    chosen = router.route("fall back please").llm
    with serving(_app(router, tmp_path, fail={chosen: "500"})) as http:
        reply = http.post("/v1/chat/completions", json=ask, timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-mixllm-routed-to"] == chosen
        assert reply.headers["x-mixllm-llm"] != chosen
        assert reply.headers["x-mixllm-fallbacks"] == "1"
        attempts = reply.json()["mixllm"]["attempts"]
        assert attempts[0]["llm"] == chosen and not attempts[0]["ok"] and attempts[1]["ok"]
        metrics = http.get("/metrics", timeout=10).text
        assert f'mixllm_fallbacks_total{{llm="{chosen}"}} 1.0' in metrics
    dead = {m: "timeout" for m in router.llms}
    with serving(_app(router, tmp_path / "c", fail=dead)) as http:
        reply = http.post("/v1/chat/completions", json=ask, timeout=30)
        assert reply.status_code == 503
        assert reply.json()["error"]["type"] == "no_healthy_backend"


def test_feedback_is_idempotent_and_learned(router: Router, tmp_path: Path) -> None:
    app = _app(router, tmp_path)
    with serving(app) as http:
        ask = {"model": "mixllm", "messages": [{"role": "user", "content": "rate me"}]}
        reply = http.post("/v1/chat/completions", json=ask, timeout=10).json()
        before = router.predict(["rate me"]).quality.copy()
        sent = {"id": reply["id"], "quality": 0.0, "cost_usd": 0.01}
        first = http.post("/v1/feedback", json=sent, timeout=10)
        assert first.status_code == 200 and first.json()["status"] == "applied"
        after = router.predict(["rate me"]).quality
        assert not np.array_equal(before, after)
        again = http.post("/v1/feedback", json={**sent, "quality": 1.0}, timeout=10)
        assert again.json()["status"] == "duplicate"
        np.testing.assert_array_equal(router.predict(["rate me"]).quality, after)
        unknown = http.post("/v1/feedback", json={"id": "chatcmpl-nope", "reward": True})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
        empty = http.post("/v1/feedback", json={"id": reply["id"]}, timeout=10)
        assert empty.status_code == 400 and "carries nothing" in empty.text


def test_restart_restores_checkpoint_and_later_feedback(router: Router, tmp_path: Path) -> None:
    fitted = tmp_path / "fitted"
    router.save(fitted)
    app = _app(router, tmp_path)
    with serving(app) as http:
        ids = []
        for text in ("first question", "second question", "third question"):
            ask = {"model": "mixllm", "messages": [{"role": "user", "content": text}]}
            ids.append(http.post("/v1/chat/completions", json=ask, timeout=10).json()["id"])
        http.post("/v1/feedback", json={"id": ids[0], "quality": 0.0}, timeout=10)
        app.state.gateway.learning.checkpoint()
        http.post("/v1/feedback", json={"id": ids[1], "quality": 1.0}, timeout=10)
    expected = router.predict(["first question", "third question"]).quality
    # the server stopped: it checkpointed again on shutdown; restart from the store alone
    store = Store(tmp_path / "gateway.db")
    restored = restore_router(fitted, store)
    np.testing.assert_array_equal(
        restored.predict(["first question", "third question"]).quality, expected
    )
    # feedback on a decision made before the restart is accepted once
    app2 = create_app(restored, {m: FakeBackend(m, text=TEXT) for m in restored.llms}, store)
    with serving(app2) as http:
        late = http.post("/v1/feedback", json={"id": ids[2], "reward": True}, timeout=10)
        assert late.json()["status"] == "applied"
        dup = http.post("/v1/feedback", json={"id": ids[1], "reward": False}, timeout=10)
        assert dup.json()["status"] == "duplicate"


def test_keys_guard_chat_feedback_and_admin(
    router: Router, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys = (ApiKey("app", "sk-client-123"), ApiKey("ops", "sk-admin-456", admin=True))
    with (
        caplog.at_level(logging.DEBUG),
        serving(_app(router, tmp_path, settings=Settings(keys=keys))) as http,
    ):
        ask = {"model": "mixllm", "messages": [{"role": "user", "content": "hi"}]}
        client, admin = ({"authorization": f"Bearer {k.secret}"} for k in keys)
        assert http.post("/v1/chat/completions", json=ask).status_code == 401
        bad = {"authorization": "Bearer sk-wrong"}
        assert http.post("/v1/chat/completions", json=ask, headers=bad).status_code == 401
        reply = http.post("/v1/chat/completions", json=ask, headers=client, timeout=10)
        assert reply.status_code == 200
        fb = {"id": reply.json()["id"], "reward": True}
        assert http.post("/v1/feedback", json=fb).status_code == 401
        assert http.post("/v1/feedback", json=fb, headers=client).status_code == 200
        assert http.get("/admin/llms", headers=client).status_code == 403
        assert http.get("/admin/llms").status_code == 401
        listed = http.get("/admin/llms", headers=admin)
        assert listed.status_code == 200 and len(listed.json()["llms"]) == len(router.llms)
        patched = http.patch("/admin/defaults", json={"lam": 7.0}, headers=admin)
        assert patched.json()["lam"] == 7.0 and router.lam == 7.0
        gone = http.delete(f"/admin/llms/{router.llms[-1]}", headers=admin)
        assert gone.status_code == 200 and len(router.llms) == 3
        assert http.post("/admin/checkpoint", headers=admin).json()["checkpoint"]
    logged = caplog.text
    assert "sk-client-123" not in logged and "sk-admin-456" not in logged
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "mixllm.serve.access"]
    chats = [a for a in access if a["endpoint"] == "/v1/chat/completions" and a["status"] == 200]
    assert chats and chats[0]["key"] == "app" and chats[0]["llm"] and chats[0]["decision_id"]
    assert {a["status"] for a in access} >= {200, 401, 403}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "JSON"),
        (b'{"model": "mixllm"}', 400, "messages"),
        (b'{"model": "mixllm", "messages": "hi"}', 400, "messages"),
        (b'{"model": "mixllm", "messages": [{"role": "robot", "content": "x"}]}', 400, "role"),
        (b'{"model": "mixllm", "messages": [], "stream": true}', 400, "messages"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (b'{"model": "mixllm", "messages": [{"role": "user", "content": "x"}], "n": 2}', 400, "n"),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "nope"),
        (b"[]", 400, "body"),
        (
            b'{"model": "mixllm", "messages": [{"role": "user", "content": "x"}]}'
            + b" " * 2_000_000,
            413,
            "bytes",
        ),
    ],
)
def test_bad_requests_get_4xx_json(
    router: Router, tmp_path: Path, body: bytes, status: int, words: str
) -> None:
    with serving(_app(router, tmp_path)) as http:
        reply = http.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert words.lower() in error["message"].lower() and error["code"] == status


def test_replay_backend_serves_recorded_answers(tmp_path: Path) -> None:
    from mixllm.data import Dataset, Outcome
    from mixllm.serve import ReplayBackend

    rows = [
        Outcome(f"q{i}", f"question {i} about {('cats', 'dogs')[i % 2]}", m, float((i + j) % 2),
                0.001 * (j + 1), response=f"{m} says {i}")
        for i in range(40) for j, m in enumerate(["small", "big"])
    ]  # fmt: skip
    data = Dataset.from_outcomes(rows)
    router = Router("mixllm", embedder="hashing").fit(data)
    backends = {m: ReplayBackend(m, data, embedder=router.embedder_) for m in data.llms}
    app = create_app(router, backends, Store(tmp_path / "g.db"))
    with serving(app) as http:
        ask = {
            "model": "mixllm",
            "messages": [{"role": "user", "content": "question 3 about dogs"}],
        }
        reply = http.post("/v1/chat/completions", json=ask, timeout=10)
        llm = reply.headers["x-mixllm-llm"]
        assert reply.json()["choices"][0]["message"]["content"] == f"{llm} says 3"


def test_admin_adds_an_upstream_only_with_an_allowed_key_variable(
    router: Router, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXLLM_TEST_UPSTREAM_KEY", "sk-upstream")
    keys = (ApiKey("ops", "sk-admin-456", admin=True),)
    settings = Settings(keys=keys, upstream_key_envs=("MIXLLM_TEST_UPSTREAM_KEY",))
    with serving(_app(router, tmp_path, settings=settings)) as http:
        admin = {"authorization": "Bearer sk-admin-456"}
        new = {
            "name": "acme-new", "price_in_per_mtok": 0.5, "price_out_per_mtok": 1.5,
            "upstream": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
        }  # fmt: skip
        leak = {**new, "upstream": {**new["upstream"], "api_key_env": "HOME"}}
        refused = http.post("/admin/llms", json=leak, headers=admin)
        assert refused.status_code == 400 and "'HOME' is not allowed" in refused.text
        assert "acme-new" not in router.llms
        ok = {**new, "upstream": {**new["upstream"], "api_key_env": "MIXLLM_TEST_UPSTREAM_KEY"}}
        added = http.post("/admin/llms", json=ok, headers=admin)
        assert added.status_code == 201, added.text
        assert "acme-new" in router.llms and added.json()["backend"] == "OpenAIBackend"
        again = http.post("/admin/llms", json=ok, headers=admin)
        assert again.status_code == 400 and "already in the pool" in again.text


def test_no_answer_no_charge(router: Router, tmp_path: Path) -> None:
    keys = (ApiKey("app", "sk-app", spend_limit_usd=1.0),)
    dead = {m: "500" for m in router.llms}
    app = _app(router, tmp_path, settings=Settings(keys=keys, deadline_s=5.0), fail=dead)
    with serving(app) as http:
        ask = {"model": "mixllm", "messages": [{"role": "user", "content": "anyone there?"}]}
        auth = {"authorization": "Bearer sk-app"}
        for stream in (False, True):
            reply = http.post(
                "/v1/chat/completions", json={**ask, "stream": stream}, headers=auth,
                timeout=10,
            )  # fmt: skip
            assert reply.status_code == 503
        assert app.state.gateway.store.spent("app") == 0.0


def test_answers_teach_the_load_tracker_their_length(
    router: Router, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(router, tmp_path)
    tracker = app.state.gateway.tracker
    heard: list[tuple[str, float | None]] = []
    finished = tracker.finished

    def record(
        llm: str, *, latency_s: float | None = None, output_tokens: float | None = None
    ) -> None:
        heard.append((llm, output_tokens))
        finished(llm, latency_s=latency_s, output_tokens=output_tokens)

    monkeypatch.setattr(tracker, "finished", record)
    with serving(app) as http:
        client = sync_openai(http)
        question = [{"role": "user", "content": "What is 2 + 2?"}]
        raw = client.chat.completions.with_raw_response.create(model="mixllm", messages=question)
        llm = raw.headers["x-mixllm-llm"]
        list(client.chat.completions.create(model="mixllm", messages=question, stream=True))
    # The answer's usage (its word count, for the fake upstream) comes with its latency; the
    # gateway asks a stream for its usage chunk too.
    assert heard == [(llm, float(len(TEXT.split())))] * 2
