"""A replica on a shared PostgreSQL store and Redis while each goes away and comes back (real
servers, stopped and started by the test): requests still get answers from the last router
state, feedback gets a 503 (never a false acknowledgement), and afterwards everything resumes:
the decisions made meanwhile take feedback, their spend is counted, and Redis is shared again.
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm.serve.metrics import metric_total
from mixllm.serve.run import build_app
from mixllm.serve.store import open_store
from tests import pg_service, redis_service

from .conftest import running
from .test_durability import PROMPTS
from .test_replicas import replica_files

pg_server, postgres_url = pg_service.pg_server, pg_service.postgres_url
redis_server, redis_url = redis_service.redis_server, redis_service.redis_url
TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    config = '[[keys]]\nname = "app"\nsecret_env = "APP_KEY"\n'
    return replica_files(tmp_path_factory.mktemp("outage"), config)


def _chat(client: httpx.Client, prompt: str) -> httpx.Response:
    ask = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
    return client.post("/chat/completions", json=ask)


def _id(reply: httpx.Response) -> str:
    return str(reply.json()["id"])


def test_answers_go_on_while_postgres_and_redis_are_away_and_all_resumes(
    served: dict[str, Path],
    postgres_url: str,
    pg_server: Any,
    redis_url: str,
    redis_server: Any,
) -> None:
    url = pg_service.fresh_database(postgres_url)
    app = build_app(
        served["router"], environ={"APP_KEY": "sk-app"}, config=served["config"],
        replay=str(served["data"]), store=url, redis=redis_url.rsplit("/", 1)[0] + "/2",
    )  # fmt: skip
    auth = {"Authorization": "Bearer sk-app"}
    gateway_store = app.state.gateway.store
    with (
        closing(gateway_store),
        running(app) as base,
        httpx.Client(base_url=base, headers=auth, timeout=TIMEOUT_S) as c,
    ):
        before = _chat(c, PROMPTS[0])
        assert before.status_code == 200
        ok = c.post("/feedback", json={"id": _id(before), "quality": 0.8})
        assert ok.status_code == 200 and ok.json()["status"] == "applied"
        root = base.removesuffix("/v1")
        learned = httpx.get(f"{root}/healthz", timeout=TIMEOUT_S).json()["feedback_learned"]

        pg_server.stop()
        redis_server.stop()
        try:
            during = [_chat(c, prompt) for prompt in PROMPTS[1:6]]
            assert [r.status_code for r in during] == [200] * 5, [r.text for r in during]
            assert all(r.json()["choices"][0]["message"]["content"] for r in during)
            refused = c.post("/feedback", json={"id": _id(during[0]), "quality": 0.3})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["type"] == "store_unavailable"
            health = httpx.get(f"{root}/healthz", timeout=TIMEOUT_S)
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            away = httpx.get(f"{root}/metrics", timeout=TIMEOUT_S).text
            assert metric_total(away, "mixllm_store_kept_writes") >= len(during)  # + answers
            assert metric_total(away, "mixllm_redis_up") == 0
        finally:
            pg_server.start()
            redis_server.start()

        # back: the decisions made meanwhile are stored and take feedback (the refused one too)
        for k, reply in enumerate(during):
            ack = c.post("/feedback", json={"id": _id(reply), "quality": 0.1 * k})
            assert ack.status_code == 200 and ack.json()["status"] == "applied", ack.text
        after = _chat(c, PROMPTS[7])
        assert after.status_code == 200
        health = httpx.get(f"{root}/healthz", timeout=TIMEOUT_S).json()
        assert health["status"] == "ok" and health["feedback_learned"] == learned + len(during)
        link = app.state.gateway.redis
        later = []  # Redis is tried again a second after it failed: shared once it answers
        for prompt in PROMPTS[8:40]:  # bounded in count (and each request in time)
            later.append(_chat(c, prompt))
            if link.up:
                break
            time.sleep(0.1)
        assert link.up and all(r.status_code == 200 for r in later)
        back = httpx.get(f"{root}/metrics", timeout=TIMEOUT_S).text
        assert metric_total(back, "mixllm_store_kept_writes") == 0
        assert metric_total(back, "mixllm_redis_up") == 1
        assert metric_total(back, "mixllm_feedback_learned") == learned + len(during)
        charged = [r.json()["mixllm"]["charged_usd"] for r in (before, *during, after, *later)]

    store = open_store(url)
    try:
        log = store.replay_since(0)
        assert len(log) == 1 + len(during)  # the refused feedback was never stored
        stored = {d.decision_id: f for _, d, f in log}
        assert stored[_id(during[0]).removeprefix("chatcmpl-")].quality == pytest.approx(0.0)
        assert store.spent("app") == pytest.approx(sum(charged), rel=1e-9, abs=1e-15)
        assert sum(charged) > 0
    finally:
        store.close()
