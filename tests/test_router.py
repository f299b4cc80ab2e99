from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mixllm import Router
from mixllm.data.dataset import Dataset
from mixllm.data.split import split_random
from mixllm.errors import ConfigError, NotFittedError, PersistError, UnknownLLMError
from mixllm.persist import FORMAT_VERSION
from mixllm.policy import LoadTracker
from mixllm.types import LLM
from tests.conftest import make_clustered


@pytest.fixture(scope="module")
def fitted() -> tuple[Router, Dataset]:
    train, test = split_random(make_clustered(300), seed=0)
    return Router("knn", embedder="hashing").fit(train), test


def test_route_before_fit_raises() -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        Router("knn", embedder="hashing").route("hello")


def test_lambda_moves_choice_from_quality_to_cost(fitted: tuple[Router, Dataset]) -> None:
    router, test = fitted
    prompts = [str(p) for p in test.prompts]
    best = [d.llm for d in router.route_many(prompts, lam=0.0)]
    cheap = [d.llm for d in router.route_many(prompts, lam=1e6)]
    assert best.count("big") > len(prompts) // 2  # 'big' is right on both topics
    assert set(cheap) == {"small"}
    # In between, topic-0 queries (where 'small' is good) go to 'small', topic-1 to 'big'.
    mid = router.route_many(prompts, lam=60.0, query_ids=[str(q) for q in test.query_ids])
    by_topic = {t: [d.llm for d, tt in zip(mid, test.tasks) if tt == t] for t in test.task_names}
    assert by_topic["topic0"].count("small") > 0.8 * len(by_topic["topic0"])
    assert by_topic["topic1"].count("big") > 0.8 * len(by_topic["topic1"])


def test_route_many_equals_route_one_by_one(fitted: tuple[Router, Dataset]) -> None:
    router, test = fitted
    prompts = [str(p) for p in test.prompts[:25]]
    batch = router.route_many(prompts, lam=60.0)
    single = [router.route(p, lam=60.0) for p in prompts]
    assert [d.llm for d in batch] == [d.llm for d in single]
    for a, b in zip(batch, single):
        assert a.scores == pytest.approx(b.scores)


def test_decision_carries_scores_and_runner_up(fitted: tuple[Router, Dataset]) -> None:
    router, _ = fitted
    d = router.route("apple banana cherry", lam=10.0, query_id="x1")
    assert d.query_id == "x1"
    assert set(d.scores) == {"small", "big"}
    assert d.llm == max(d.scores, key=lambda m: d.scores[m])
    assert d.runner_up == ({"small", "big"} - {d.llm}).pop()
    assert d.embedding is not None


def test_candidates_and_bad_arguments(fitted: tuple[Router, Dataset]) -> None:
    router, _ = fitted
    assert router.route("quantum photon", lam=0.0, candidates=["small"]).llm == "small"
    with pytest.raises(UnknownLLMError, match=r"'gpt5'.*known: \['big', 'small'\]"):
        router.route("x", candidates=["gpt5"])
    with pytest.raises(ConfigError, match="lam=-1"):
        router.route("x", lam=-1.0)
    with pytest.raises(ConfigError, match="lam=nan"):
        router.route("x", lam=float("nan"))


def test_lambda_sweep_spans_best_to_cheapest(fitted: tuple[Router, Dataset]) -> None:
    router, test = fitted
    prompts = [str(p) for p in test.prompts]
    lams = router.lambda_sweep(prompts, 20)
    assert len(lams) == 20
    assert lams[0] == 0.0
    assert lams == sorted(lams)
    assert {d.llm for d in router.route_many(prompts, lam=lams[-1])} == {"small"}


def test_save_load_gives_identical_decisions(
    fitted: tuple[Router, Dataset], tmp_path: Path
) -> None:
    router, test = fitted
    router.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r")
    prompts = [str(p) for p in test.prompts]
    for lam in (0.0, 60.0, 1e4):
        a = router.route_many(prompts, lam=lam)
        b = loaded.route_many(prompts, lam=lam)
        assert [d.llm for d in a] == [d.llm for d in b]
        np.testing.assert_allclose(
            [list(d.scores.values()) for d in a], [list(d.scores.values()) for d in b]
        )
    assert loaded.lam == router.lam
    assert loaded.llms == router.llms


def test_load_rejects_unknown_version_and_tampering(
    fitted: tuple[Router, Dataset], tmp_path: Path
) -> None:
    router, _ = fitted
    path = router.save(tmp_path / "r")
    manifest = (path / "manifest.json").read_text()
    assert f'"format_version": {FORMAT_VERSION}' in manifest
    for old in (99, 1):  # 1: written before online learning, not readable any more
        (path / "manifest.json").write_text(
            manifest.replace(f'"format_version": {FORMAT_VERSION}', f'"format_version": {old}')
        )
        with pytest.raises(PersistError, match=f"format_version {old} is not supported"):
            Router.load(path)
    (path / "manifest.json").write_text(manifest)
    data = bytearray((path / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "arrays.npz").write_bytes(bytes(data))
    with pytest.raises(PersistError, match="checksum does not match"):
        Router.load(path)
    with pytest.raises(PersistError, match=r"no manifest\.json"):
        Router.load(tmp_path / "nowhere")


def test_latency_penalty_and_tau_steer_away_from_a_busy_llm(
    fitted: tuple[Router, Dataset], tmp_path: Path
) -> None:
    router, test = fitted
    prompts = [str(p) for p in test.prompts]
    load = LoadTracker(default_service_s=5.0)
    busy = Router("knn", embedder="hashing", beta=0.5, tau_s=30.0, load_tracker=load)
    busy.fit(split_random(make_clustered(300), seed=0)[0])
    idle = [d.llm for d in busy.route_many(prompts, lam=0.0)]
    assert idle == [d.llm for d in router.route_many(prompts, lam=0.0)]  # no wait, no change
    for _ in range(3):
        load.started("big")  # 3 in flight, 1 slot: 15 s of queue ahead
    penalised = busy.route_many(prompts, lam=0.0)
    assert sum(d.llm == "small" for d in penalised) > idle.count("small")
    plain = router.route_many(prompts, lam=0.0)
    assert all(d.scores["big"] < p.scores["big"] for d, p in zip(penalised, plain))
    for _ in range(4):
        load.started("big")  # 35 s > tau: never chosen
    assert {d.llm for d in busy.route_many(prompts, lam=0.0)} == {"small"}
    busy.save(tmp_path / "busy")
    again = Router.load(tmp_path / "busy")
    assert (again.alpha, again.beta, again.tau_s) == (0.0, 0.5, 30.0)


def test_max_cost_excludes_expensive_llms(fitted: tuple[Router, Dataset]) -> None:
    router, test = fitted
    prompts = [str(p) for p in test.prompts[:20]]
    capped = router.route_many(prompts, lam=0.0, max_cost_usd=0.005)
    assert {d.llm for d in capped} == {"small"}
    nothing_fits = router.route_many(prompts, lam=0.0, max_cost_usd=0.0)
    assert {d.llm for d in nothing_fits} == {"small"}  # the cheapest predicted
    with pytest.raises(ConfigError, match="max_cost_usd=-1"):
        router.route("x", max_cost_usd=-1.0)


def test_mixllm_router_saves_and_loads_with_identical_decisions(tmp_path: Path) -> None:
    train, test = split_random(make_clustered(300), seed=1)
    router = Router("mixllm", embedder="hashing", alpha=0.05).fit(train)
    prompts = [str(p) for p in test.prompts]
    loaded = Router.load(router.save(tmp_path / "mixllm"))
    for lam in (0.0, 30.0, 1e4):
        a = router.route_many(prompts, lam=lam)
        b = loaded.route_many(prompts, lam=lam)
        assert [d.llm for d in a] == [d.llm for d in b]
        np.testing.assert_array_equal(
            [list(d.scores.values()) for d in a], [list(d.scores.values()) for d in b]
        )
    # The uncertainty bonus is part of the score: alpha moves the scores of a fitted router.
    plain = Router("mixllm", embedder="hashing").fit(train).route(prompts[0], lam=0.0)
    assert router.route(prompts[0], lam=0.0).scores != plain.scores


def _long_on_topic_one(n: int = 300) -> Dataset:
    """make_clustered where 'big' writes 400-token answers to topic-1 queries, 5 to topic 0."""
    ds = make_clustered(n)
    tokens = np.array(ds.output_tokens, dtype=np.float64)
    tokens[:, 1] = np.where(ds.tasks.astype(str) == "topic1", 400.0, 5.0)
    cost = np.array(ds.cost_usd, dtype=np.float64)
    cost[:, 1] = tokens[:, 1] * 25.0 / 1e6  # 'big' charges 25 USD per million output tokens
    prices = {"small": LLM("small"), "big": LLM("big", 0.0, 25.0)}
    return replace(ds, output_tokens=tokens, cost_usd=cost, prices=prices)


# MixLLM predicts answer lengths; kNN predicts only costs, from which the length is read back.
@pytest.mark.parametrize(("scale", "predictor"), [("service", "mixllm"), ("service", "knn"),
                                                  ("flat", "mixllm")])  # fmt: skip
def test_penalty_scales_with_the_answers_predicted_service_time(scale: str, predictor: str) -> None:
    train, test = split_random(_long_on_topic_one(), seed=0)
    prompts = [str(p) for p in test.prompts]
    long = test.tasks.astype(str) == "topic1"
    load = LoadTracker(default_service_s=5.0)
    for _ in range(5):  # 'big' takes 0.5 s + 20 tokens/s
        for tokens in (5.0, 400.0):
            load.served("big", service_s=0.5 + tokens / 20.0, output_tokens=tokens)
    router = Router(predictor, embedder="hashing", beta=0.2, tau_s=30.0, load_tracker=load,
                    penalty_scale=scale).fit(train)  # fmt: skip
    idle = router.route_many(prompts, lam=0.0)
    for _ in range(3):
        load.started("big")  # 15 s of queue ahead
    busy = router.route_many(prompts, lam=0.0)
    penalty = np.array([a.scores["big"] - b.scores["big"] for a, b in zip(idle, busy)])
    assert (penalty > 0).all()
    flat = 0.2 * np.expm1(15.0 / 30.0)
    if scale == "flat":
        np.testing.assert_allclose(penalty, flat)
    else:  # long answers hold the slot ~20x longer: they pay more, short ones less
        assert penalty[long].mean() > 5 * penalty[~long].mean()
        assert penalty[~long].max() < flat < penalty[long].min()
    assert all(a.scores["small"] == b.scores["small"] for a, b in zip(idle, busy))


def test_penalty_scale_is_checked_saved_and_older_files_load_flat(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="penalty_scale='per token'"):
        Router("knn", penalty_scale="per token")
    router = Router("knn", embedder="hashing", beta=0.1, tau_s=9.0).fit(make_clustered(60))
    assert router.penalty_scale == "flat"  # the default: the paper's penalty
    router.penalty_scale = "service"
    path = router.save(tmp_path / "service")
    assert Router.load(path).penalty_scale == "service"
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["penalty_scale"]  # as written before the option existed
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert Router.load(path).penalty_scale == "flat"


def test_default_embedder_reads_the_last_64_tokens_and_static_still_means_512() -> None:
    from mixllm.embed import DEFAULT_EMBEDDER, StaticEmbedder, make_embedder

    assert DEFAULT_EMBEDDER == "static?max_tokens=64&keep=end"
    assert Router("knn").embedder == DEFAULT_EMBEDDER
    default = make_embedder(DEFAULT_EMBEDDER, cache=False)
    static = make_embedder("static", cache=False)
    assert isinstance(default, StaticEmbedder) and isinstance(static, StaticEmbedder)
    assert (default.max_tokens, default.keep, default.spec) == (64, "end", DEFAULT_EMBEDDER)
    assert (static.max_tokens, static.keep, static.spec) == (512, "start", "static")


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("static", "static-minilm-max512"),
        ("static?max_tokens=64&keep=end", "static-minilm-max64-end"),
    ],
)
def test_a_saved_routers_embedder_spec_is_loaded_as_written(
    spec: str, name: str, tmp_path: Path
) -> None:
    """A router saved with ``static`` (the default before it became the last 64 tokens) still
    reads 512 tokens; nothing is embedded, so no model is loaded."""
    path = Router("knn", embedder="hashing").fit(make_clustered(60)).save(tmp_path / "r")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["embedder"] = spec  # as `mixllm fit` writes it for that embedder
    (path / "manifest.json").write_text(json.dumps(manifest))
    loaded = Router.load(path)
    assert (loaded.embedder_.spec, loaded.embedder_.name) == (spec, name)  # type: ignore[attr-defined]


def test_load_without_the_embedding_cache(tmp_path: Path) -> None:
    """A gateway loads its router without the SQLite embedding cache (a write per new prompt);
    the decisions are the same."""
    from mixllm.embed.cache import CachedEmbedder

    path = Router("knn", embedder="hashing").fit(make_clustered(60)).save(tmp_path / "r")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["embedder"] = "static?max_tokens=64&keep=end"
    (path / "manifest.json").write_text(json.dumps(manifest))
    cached, lean = Router.load(path), Router.load(path, embedding_cache=False)
    assert isinstance(cached.embedder_, CachedEmbedder)
    assert not isinstance(lean.embedder_, CachedEmbedder)
    assert lean.embedder_.name == cached.embedder_.name
