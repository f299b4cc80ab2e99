"""The evaluation harness: fit, replay and measure every router through the Router API."""

from __future__ import annotations

import pytest

from mixllm.data.dataset import Dataset
from mixllm.data.split import split_random
from mixllm.errors import ConfigError, DataError, UnknownLLMError
from mixllm.evaluate import Report, cheapest_llm, default_reference, evaluate
from tests.conftest import make_clustered
from tests.evaluate.fakes import FakeEmbedder, TruthPredictor, make_three


@pytest.fixture(scope="module")
def splits() -> tuple[Dataset, Dataset]:
    return split_random(make_three(150), seed=0)


@pytest.fixture(scope="module")
def report(splits: tuple[Dataset, Dataset]) -> Report:
    train, test = splits
    calls: list[tuple[str, int, int]] = []
    rep = evaluate(
        train,
        test,
        routers=["random", "cheapest", "oracle", "knn", "mf", TruthPredictor(test, "truth")],
        embedder=FakeEmbedder(),
        n_lams=12,
        n_boot=200,
        progress=lambda what, done, total: calls.append((what, done, total)),
    )
    n_texts = len(train) + len(test)
    embeds = [c for c in calls if c[0] == "embed"]
    assert embeds[0] == ("embed", 0, n_texts)
    assert embeds[-1] == ("embed", n_texts, n_texts)
    steps = calls[len(embeds) :]
    assert steps[-1] == ("done", 8, 8)
    assert steps[:-1] == [(r.name, i, 8) for i, r in enumerate(rep.rows)]
    return rep


def test_rows_cover_every_router_and_single_llm(report: Report) -> None:
    names = [r.name for r in report.rows]
    assert names == [
        "random", "cheapest", "oracle", "knn", "truth", "single:cheap", "single:mid", "single:ref"
    ]  # fmt: skip
    kinds = {r.name: r.kind for r in report.rows}
    assert kinds["random"] == kinds["cheapest"] == "baseline"
    assert (kinds["oracle"], kinds["knn"], kinds["single:mid"]) == ("oracle", "router", "single")
    assert report.context.notes == (
        "mf skipped: it needs exactly 2 LLMs and the training split has 3",
    )


def test_context_holds_the_yardstick(report: Report, splits: tuple[Dataset, Dataset]) -> None:
    c = report.context
    train, test = splits
    assert (c.reference, c.cheapest) == ("ref", "cheap")
    assert (c.n_train, c.n_test, c.llms) == (len(train), len(test), test.llms)
    assert c.reference_cost_usd == pytest.approx(1e-3)
    assert c.cheapest_cost_usd == pytest.approx(1e-4)
    assert c.embedder == "fake-hash-8" and c.apgr_axis == "cost"
    single_ref = report.row("single:ref").points[0]
    assert single_ref.quality == pytest.approx(c.reference_quality)
    assert report.row("single:ref").cost_to_match_pct == pytest.approx(100.0)


def test_singles_are_one_point_and_the_oracle_bounds_everyone(report: Report) -> None:
    for r in report.rows:
        if r.kind == "single":
            assert len(r.points) == 1 and len(r.frontier) == 1
            assert r.points[0].shares[r.name.removeprefix("single:")] == 1.0
    oracle = report.row("oracle")
    assert oracle.aiq.value is not None
    for r in report.rows:
        assert r.aiq.value is not None and r.aiq.value <= oracle.aiq.value + 1e-12
        assert r.aiq.low is not None and r.aiq.high is not None
        assert r.aiq.low <= r.aiq.value <= r.aiq.high or r.kind == "single"
    assert report.row("truth").aiq.value == pytest.approx(oracle.aiq.value, abs=0.02)
    assert len(report.row("knn").points) == 12


def test_missing_outcomes_are_counted(report: Report, splits: tuple[Dataset, Dataset]) -> None:
    _, test = splits
    has_q1 = "q1" in set(test.query_ids.tolist())
    assert report.row("single:mid").points[0].n_missing == int(has_q1)


def test_two_llm_sets_use_the_share_axis_for_apgr() -> None:
    train, test = split_random(make_clustered(120), seed=1)
    rep = evaluate(train, test, routers=["random", "oracle"], embedder=FakeEmbedder(), n_boot=200)
    assert rep.context.apgr_axis == "share"
    assert rep.context.notes == ()
    apgr = rep.row("oracle").apgr
    assert apgr.value is not None and apgr.value > 0.5
    assert rep.row("random").apgr.value == pytest.approx(0.5, abs=0.1)


def test_reference_and_cheapest_choices(splits: tuple[Dataset, Dataset]) -> None:
    train, test = splits
    assert default_reference(train) == "ref"
    assert cheapest_llm(test) == "cheap"
    rep = evaluate(train, test, routers=[], reference="mid", embedder=FakeEmbedder(), n_boot=200)
    assert rep.context.reference == "mid"
    assert [r.name for r in rep.rows] == ["single:cheap", "single:mid", "single:ref"]


def test_bad_arguments_are_explained(splits: tuple[Dataset, Dataset]) -> None:
    train, test = splits
    emb = FakeEmbedder()
    with pytest.raises(UnknownLLMError, match="unknown reference LLM 'gpt5'"):
        evaluate(train, test, routers=[], reference="gpt5", embedder=emb)
    with pytest.raises(DataError, match="different LLMs"):
        evaluate(train, test.select_llms(["cheap", "ref"]), routers=[], embedder=emb)
    with pytest.raises(ConfigError, match="at least 200"):
        evaluate(train, test, routers=[], embedder=emb, n_boot=50)
    with pytest.raises(ConfigError, match="n_lams=0"):
        evaluate(train, test, routers=[], embedder=emb, n_lams=0)
    twins = [TruthPredictor(test, "t"), TruthPredictor(test, "t")]
    with pytest.raises(ConfigError, match="two routers are named 't'"):
        evaluate(train, test, routers=twins, embedder=emb, n_boot=200)
