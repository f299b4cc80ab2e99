"""``mixllm export``: a gateway's rated answers and shadow calls, read back by ``load_longform``
and refitted by ``mixllm fit``; old stores, retention, ``store_prompts = false``, ``--since``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from mixllm import Router
from mixllm.cli import cli
from mixllm.cli.export import export_outcomes
from mixllm.data import Dataset, Outcome, load_longform
from mixllm.errors import ConfigError, DataError
from mixllm.serve import ReplayBackend, Settings, Store
from mixllm.serve.replay import RecordedJudge
from mixllm.serve.settings import ShadowSettings
from mixllm.serve.store import MIGRATIONS
from mixllm.types import LLM, Decision, Feedback
from tests.serve.inprocess import gateway, run

LLMS = {"small": (0.2, 0.6), "medium": (1.0, 3.0), "large": (5.0, 15.0)}
PROMPTS = [f"question {i} about {('cats', 'tax law', 'rust', 'poems')[i % 4]}" for i in range(30)]
RATED = range(0, 12, 2)  # the requests that get client feedback


@pytest.fixture(scope="module")
def data() -> Dataset:
    rng = np.random.default_rng(1)
    rows = [
        Outcome(f"q{i}", p, m, float(rng.random() < 0.6), (12 * p_in + 25 * p_out) / 1e6,
                prompt_tokens=12, output_tokens=25, response=f"{m} says {i}")
        for i, p in enumerate(PROMPTS) for m, (p_in, p_out) in LLMS.items()
    ]  # fmt: skip
    prices = {m: LLM(m, p_in, p_out) for m, (p_in, p_out) in LLMS.items()}
    return Dataset.from_outcomes(rows, name="exported", prices=prices)


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory: pytest.TempPathFactory, data: Dataset) -> Path:
    path = tmp_path_factory.mktemp("export") / "router"
    Router("mixllm", embedder="hashing", lam=50.0).fit(data).save(path)
    return path


def _serve(router_dir: Path, data: Dataset, folder: Path, **server: Any) -> list[str]:
    """12 requests through a gateway that shadows every one, feedback on ``RATED``; the LLM
    that answered each."""
    shadow = ShadowSettings(share=1.0, budget_usd_per_day=1.0, judge="judge")
    settings = Settings(deadline_s=10.0, shadow=shadow, **server)
    backends: dict[str, Any] = {m: ReplayBackend(m, data) for m in LLMS}
    backends["judge"] = RecordedJudge(data)

    async def body() -> list[str]:
        answered = []
        async with gateway(Router.load(router_dir), backends, folder, settings) as (app, client):
            for i, prompt in enumerate(PROMPTS[:12]):
                chat = {"model": "mixllm", "messages": [{"role": "user", "content": prompt}]}
                reply = await client.post("/v1/chat/completions", json=chat)
                assert reply.status_code == 200
                answered.append(reply.headers["x-mixllm-llm"])
                if i in RATED:
                    fb = {"id": reply.json()["id"], "quality": 0.25, "cost_usd": 0.001}
                    assert (await client.post("/v1/feedback", json=fb)).is_success
                await app.state.gateway.shadow.drain()
        return answered

    return run(body)


def _served_graded(db: Path) -> set[int]:
    """The requests (indexes in ``PROMPTS``) whose served answer the judge graded."""
    conn = sqlite3.connect(db)
    try:
        prompts = conn.execute(
            "SELECT c.prompt FROM decisions AS s JOIN decisions AS c ON c.decision_id = "
            "s.shadow_of WHERE s.shadow_outcome = 'served'"
        ).fetchall()
    finally:
        conn.close()
    return {PROMPTS.index(p) for (p,) in prompts}


def test_export_is_read_back_with_its_shadow_rows_and_refitted(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    answered = _serve(router_dir, data, tmp_path / "gw")
    graded = _served_graded(tmp_path / "gw" / "gateway.db")  # the judge graded the answer
    assert graded and len(graded) < 12  # both kinds of shadow outcome
    both = len(graded & set(RATED))  # graded by the judge and rated by the client
    out = tmp_path / "outcomes.jsonl"
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "gw"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"({12 - both} from shadow calls)" in result.output
    ds = load_longform(out)
    rows = {(o.query_id, o.llm): o for o in ds.outcomes() if o.cost_usd is not None}
    # the rated answers and every judged shadow call (a client's rating wins over the judge's)
    assert len(rows) == len(RATED) + 12 - both
    by_prompt = {str(p): i for i, p in enumerate(PROMPTS)}
    for o in rows.values():
        i = by_prompt[o.prompt]
        if o.llm == answered[i] and i in RATED:  # the client's feedback
            assert (o.quality, o.cost_usd) == (0.25, 0.001)
        elif o.llm == answered[i]:  # the judge's grade of the served answer, at its cost
            assert i in graded
            assert o.quality == data.quality[i, data.llm_index(o.llm)]
            assert o.cost_usd == pytest.approx(data.cost_usd[i, data.llm_index(o.llm)])
        else:  # the judge's verdict on the shadow answer: the recorded quality, 1 or 0
            assert i not in graded
            assert o.quality == data.quality[i, data.llm_index(o.llm)]
            assert o.cost_usd is not None and o.cost_usd > 0 and o.latency_s is not None
        assert o.prompt_tokens is not None and o.output_tokens is not None
    # everything, rated or not
    every = tmp_path / "every.csv"
    done = export_outcomes(tmp_path / "gw", every, include_unrated=True)
    assert done.outcomes == 24 - len(graded) and done.shadow == 12 - both
    unrated = [o for o in load_longform(every).outcomes() if o.cost_usd is not None]
    assert sum(o.quality is None for o in unrated) == 12 - len(RATED) - len(graded) + both
    # what the gateway learned, refitted offline
    fitted = tmp_path / "refit"
    args = ["fit", str(out), "--out", str(fitted), "--embedder", "hashing"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert set(Router.load(fitted).llms) == set(LLMS)


def test_export_finds_the_state_of_a_router_folder_and_filters_by_date(tmp_path: Path) -> None:
    router = tmp_path / "router"
    router.mkdir()
    (router / "manifest.json").write_text("{}")
    state = tmp_path / "router.state"
    state.mkdir()
    with Store(state / "gateway.db") as store:
        for day, (qid, llm) in enumerate([("q1", "a"), ("q2", "b")]):
            d = Decision(qid, llm, 1.0, decision_id=f"d{day}", prompt_tokens=3.0)
            store.record_decision(d, prompt=f"prompt {qid}", now=day * 86400.0)
            store.set_answer(f"d{day}", answered_by=llm, cost_usd=0.01, output_tokens=7)
            store.record_feedback(f"d{day}", Feedback(reward=day == 1))
    out = tmp_path / "out.jsonl"
    assert export_outcomes(router, out).outcomes == 2
    assert [o.quality for o in load_longform(out).outcomes() if o.cost_usd] == [0.0, 1.0]
    result = CliRunner().invoke(cli, ["export", str(router), "--out", str(out), "--since",
                                      "1970-01-02"])  # fmt: skip
    assert result.exit_code == 0, result.output
    (only,) = (o for o in load_longform(out).outcomes() if o.cost_usd is not None)
    assert (only.query_id, only.llm, only.output_tokens) == ("q2", "b", 7.0)
    result = CliRunner().invoke(cli, ["export", str(router), "--out", str(out), "--since",
                                      "1970-01-05"])  # fmt: skip
    assert result.exit_code == 2 and "no answers with feedback" in result.output
    result = CliRunner().invoke(cli, ["export", str(router), "--out", str(out), "--since", "soon"])
    assert result.exit_code == 2 and "--since 'soon'" in result.output
    with pytest.raises(ConfigError, match="no gateway store"):
        export_outcomes(tmp_path / "nowhere", out)


def test_without_stored_prompts_export_refuses(
    router_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    _serve(router_dir, data, tmp_path / "gw", store_prompts=False)
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "gw"), "--out", "x.jsonl"])
    assert result.exit_code == 2
    assert "store_prompts = false" in result.output and "nothing to export" in result.output


def test_an_old_store_opens_with_the_new_columns(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    conn = sqlite3.connect(db)
    for script in MIGRATIONS[:3]:  # a store of the schema before prompts were kept
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 3")
    conn.execute(
        "INSERT INTO decisions (decision_id, created_at, key_id, request_model, query_id, llm, "
        "lam, scores, predicted_quality, predicted_cost_usd, predicted_wait_s, answered_by, "
        "cost_usd) VALUES ('old', 0, '', 'mixllm', 'q', 'a', 1, '{}', '{}', '{}', '{}', 'a', 0.1)"
    )
    conn.execute("INSERT INTO feedback (decision_id, received_at, quality) VALUES ('old', 1, 1)")
    conn.commit()
    conn.close()
    with Store(db) as store:
        (row,) = store.outcome_rows()
        assert row["prompt"] is None and row["quality"] == 1.0 and not row["shadow"]
        assert store.get_decision("old") is not None
    with pytest.raises(ConfigError, match="kept no prompt text for its 1 answers"):
        export_outcomes(tmp_path, tmp_path / "out.jsonl")


def test_retention_forgets_the_prompts_with_their_decisions(tmp_path: Path) -> None:
    with Store(tmp_path / "gateway.db", retention_s=100.0) as store:
        store.record_decision(Decision("q", "a", 1.0, decision_id="d"), prompt="secret", now=0.0)
        store.set_answer("d", answered_by="a", cost_usd=0.0)
        assert [r["prompt"] for r in store.outcome_rows()] == ["secret"]
        assert store.purge(now=1000.0) == 1
        assert store.outcome_rows() == []
    with pytest.raises(DataError, match="holds no answers"):
        export_outcomes(tmp_path, tmp_path / "out.jsonl", include_unrated=True)
