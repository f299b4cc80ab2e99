"""The Router's state API (get_state/from_state), its parameters, its prices, and the saved
directory (version 3 written, version 2 read) built on that API only."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import grimp
import numpy as np
import pytest

from mixllm import Feedback, Router
from mixllm.data.dataset import Dataset
from mixllm.data.split import split_random
from mixllm.errors import ConfigError, NotFittedError, PersistError
from mixllm.persist import FORMAT_VERSION, load_router, save_router
from mixllm.policy import LoadTracker
from mixllm.types import LLM
from tests.conftest import make_clustered


@pytest.fixture(scope="module")
def data() -> tuple[Dataset, Dataset]:
    return split_random(make_clustered(240), seed=3)


@pytest.fixture
def router(data: tuple[Dataset, Dataset]) -> Router:
    """A MixLLM router (it learns online) that has made some decisions, one with feedback."""
    train, test = data
    router = Router("mixllm", embedder="hashing", lam=30.0, alpha=0.05, seed=7)
    router.fit(train)
    decisions = router.route_many([str(p) for p in test.prompts[:5]])
    assert router.learn_one(decisions[0], Feedback(quality=1.0, cost_usd=0.002))
    return router


def _prompts(data: tuple[Dataset, Dataset]) -> list[str]:
    return [str(p) for p in data[1].prompts]


def _assert_same_predictions(a: Router, b: Router, prompts: list[str]) -> None:
    pa, pb = a.predict(prompts), b.predict(prompts)
    assert pa.llms == pb.llms
    assert np.array_equal(pa.quality, pb.quality) and np.array_equal(pa.cost_usd, pb.cost_usd)
    for lam in (0.0, 30.0, 1e4):
        da, db = a.route_many(prompts, lam=lam), b.route_many(prompts, lam=lam)
        assert [d.llm for d in da] == [d.llm for d in db]
        assert [d.scores for d in da] == [d.scores for d in db]


def _npz(path: Path) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    with np.load(path / "arrays.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# -- get_state / from_state -----------------------------------------------------------------------
def test_state_is_json_and_arrays_and_rebuilds_the_same_router(
    router: Router, data: tuple[Dataset, Dataset]
) -> None:
    params, arrays = router.get_state()
    assert json.loads(json.dumps(params)) == params  # JSON-able as it is
    assert "format_version" not in params  # the format's fields are the file's, not the state's
    assert params["lam"] == 30.0 and params["tau_s"] is None and params["seed"] == 7
    assert [m["name"] for m in params["llms"]] == list(router.llms)
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    assert not any(k.startswith("router.") for k in arrays)  # the predictor's alone
    tracker = LoadTracker()
    again = Router.from_state(params, arrays, embedding_cache=False, load_tracker=tracker)
    assert again.load_tracker is tracker
    assert again.embedder == params["embedder"] == "hashing:256"  # the spec, made explicit
    same = {"load_tracker": None, "embedder": None, "predictor": None}
    assert again.get_params() | same == router.get_params() | same
    _assert_same_predictions(router, again, _prompts(data))


def test_state_is_a_snapshot_that_later_learning_does_not_change(
    router: Router, data: tuple[Dataset, Dataset]
) -> None:
    params, arrays = router.get_state()
    kept = {k: v.copy() for k, v in arrays.items()}
    prompts = _prompts(data)
    for decision in router.route_many(prompts[:20], lam=0.0):
        router.learn_one(decision, Feedback(quality=0.0, cost_usd=0.05))
    router.set_params(lam=5.0)
    later_params, later_arrays = router.get_state()
    assert later_params["lam"] == 5.0 and params["lam"] == 30.0
    changed = [k for k in kept if not np.array_equal(later_arrays[k], kept[k])]
    assert changed  # learning moved the predictor's arrays...
    assert all(np.array_equal(arrays[k], kept[k]) for k in kept)  # ...not the snapshot's
    before = Router.from_state(params, arrays)
    assert not np.array_equal(before.predict(prompts).quality, router.predict(prompts).quality)


def test_decisions_before_the_state_take_feedback_after(
    router: Router, data: tuple[Dataset, Dataset]
) -> None:
    decisions = router.route_many(_prompts(data)[:3])
    again = Router.from_state(*router.get_state())
    for r in (router, again):
        assert r.learn_one(decisions[1], Feedback(quality=1.0)) is True
    _assert_same_predictions(router, again, _prompts(data))


def test_malformed_state_is_a_persist_error(router: Router) -> None:
    params, arrays = router.get_state()
    with pytest.raises(PersistError, match=r"malformed router state.*'llms'"):
        Router.from_state({k: v for k, v in params.items() if k != "llms"}, arrays)
    with pytest.raises(PersistError, match="OnlineRidge state is malformed"):
        Router.from_state(params, {k: v for k, v in arrays.items() if not k.startswith("online")})
    with pytest.raises(PersistError, match="alpha=-1"):
        Router.from_state(params | {"alpha": -1.0}, arrays)
    with pytest.raises(NotFittedError):
        Router("knn").get_state()


# -- files: version 3 written, version 2 read ------------------------------------------------------
def test_save_load_save_is_bit_for_bit(router: Router, tmp_path: Path, data: Any) -> None:
    first = save_router(router, tmp_path / "a")
    manifest = json.loads((first / "manifest.json").read_text())
    assert (
        manifest["format"] == "mixllm-router" and manifest["format_version"] == 3 == FORMAT_VERSION
    )
    loaded = load_router(first, embedding_cache=False)
    second = loaded.save(tmp_path / "b")
    a, b = _npz(first), _npz(second)
    assert a.keys() == b.keys()
    assert all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
    again = json.loads((second / "manifest.json").read_text())
    assert manifest.pop("arrays_sha256") and again.pop("arrays_sha256")  # zip times may differ
    assert again == manifest
    _assert_same_predictions(router, loaded, _prompts(data))


def _write_v2(router: Router, path: Path, decision_ids: list[str], *, oldest: bool) -> None:
    """The version 2 layout, written by hand as mixllm wrote it before the state API
    (``oldest``: without the keys added during version 2: alpha, beta, penalty_scale, target,
    reference, folds, calibration)."""
    predictor = router.predictor_
    pred_params, arrays = predictor.get_state()
    arrays = dict(arrays)
    arrays["router.ledger.ids"] = np.array(decision_ids, dtype="<U32")
    arrays["router.ledger.applied"] = np.zeros(len(decision_ids), dtype=bool)
    path.mkdir()
    np.savez(path / "arrays.npz", allow_pickle=False, **arrays)
    manifest: dict[str, Any] = {
        "format": "mixllm-router",
        "format_version": 2,
        "mixllm_version": "0.1.0",
        "predictor": {"kind": predictor.name, "params": pred_params},
        "embedder": "hashing",
        "lam": router.lam,
        "tau_s": None,
        "seed": 0,
        "max_pending": 1000,
        "llms": [
            {
                "name": m.name,
                "price_in_per_mtok": m.price_in_per_mtok,
                "price_out_per_mtok": m.price_out_per_mtok,
            }
            for m in router.prices.values()
        ],
        "arrays_sha256": hashlib.sha256((path / "arrays.npz").read_bytes()).hexdigest(),
    }
    if not oldest:
        added = {"beta": 0.0, "penalty_scale": "flat", "target": None, "reference": None}
        manifest |= added | {"alpha": router.alpha, "folds": 5, "calibration": None}
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize("oldest", [False, True])
def test_a_version_2_directory_loads_and_predicts_as_saved(
    router: Router, tmp_path: Path, data: tuple[Dataset, Dataset], oldest: bool
) -> None:
    if oldest:
        router.set_params(alpha=0.0)  # written before alpha was saved: 0 on load
    decisions = router.route_many(_prompts(data)[:4])
    _write_v2(router, tmp_path / "v2", [d.decision_id for d in decisions], oldest=oldest)
    loaded = Router.load(tmp_path / "v2")
    assert (loaded.alpha, loaded.beta, loaded.penalty_scale) == (router.alpha, 0.0, "flat")
    assert loaded.target is None and loaded.calibration_ is None and math.isinf(loaded.tau_s)
    _assert_same_predictions(router, loaded, _prompts(data))
    assert loaded.learn_one(decisions[2], Feedback(quality=1.0)) is True  # its ledger ignored
    resaved = json.loads((loaded.save(tmp_path / "v3") / "manifest.json").read_text())
    assert resaved["format_version"] == 3 and resaved["alpha"] == router.alpha


def test_unreadable_versions_and_damage_name_the_file(router: Router, tmp_path: Path) -> None:
    path = router.save(tmp_path / "r")
    manifest = json.loads((path / "manifest.json").read_text())
    for bad in (1, 4, "3"):
        (path / "manifest.json").write_text(json.dumps(manifest | {"format_version": bad}))
        with pytest.raises(PersistError, match=rf"format_version {bad!r} is not supported.*2, 3"):
            Router.load(path)
    (path / "manifest.json").write_text(json.dumps(manifest | {"lam": -2.0}))
    with pytest.raises(PersistError, match=rf"{path}: malformed router state.*lam=-2"):
        Router.load(path)


def test_the_router_module_does_not_import_persist() -> None:
    graph = grimp.build_graph("mixllm")
    assert graph.chain_exists(importer="mixllm.persist", imported="mixllm.router")
    assert not graph.chain_exists(importer="mixllm.router", imported="mixllm.persist")


# -- parameters ------------------------------------------------------------------------------------
def test_set_params_applies_to_the_next_decision(router: Router, data: Any) -> None:
    prompts = _prompts(data)
    best = [d.llm for d in router.route_many(prompts, lam=0.0)]
    assert router.set_params(lam=0.0) is router
    assert [d.llm for d in router.route_many(prompts)] == best
    router.set_params(lam=1e6, beta=0.5, tau_s=20.0, penalty_scale="service")
    assert {d.llm for d in router.route_many(prompts)} == {"small"}
    params = router.get_params()
    assert (params["lam"], params["beta"], params["tau_s"]) == (1e6, 0.5, 20.0)
    assert params["penalty_scale"] == "service" and params["seed"] == 7
    clone = Router(**params)  # sklearn-style: the parameters rebuild an unfitted router
    assert clone.get_params() == params
    with pytest.raises(NotFittedError):
        clone.route("x")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lam": -1.0}, "lam=-1.0"),
        ({"lam": math.inf}, "lam=inf"),
        ({"lam": "cheap"}, "lam='cheap'; expected a number"),
        ({"alpha": -0.1}, "alpha=-0.1"),
        ({"beta": math.nan}, "beta=nan"),
        ({"tau_s": 0.0}, "tau_s=0.0; expected a number > 0"),
        ({"penalty_scale": "per token"}, r"penalty_scale='per token'.*\('flat', 'service'\)"),
        ({"max_pending": 100}, "unknown Router parameter 'max_pending'"),  # gone with the ledger
        ({"lamda": 1.0, "gamma": 2}, r"unknown Router parameter 'gamma', 'lamda'.*lam, alpha"),
    ],
)
def test_bad_params_are_config_errors_and_change_nothing(
    router: Router, params: dict[str, Any], message: str
) -> None:
    before = router.get_params()
    with pytest.raises(ConfigError, match=message):
        router.set_params(**({"beta": 0.3} | params))  # all or none
    assert router.get_params() == before
    if not {"lamda", "max_pending"} & set(params):  # the constructor checks the same
        with pytest.raises(ConfigError, match=message):
            Router("knn", **params)


def test_load_takes_a_load_tracker_whose_waits_steer(router: Router, tmp_path: Path) -> None:
    router.set_params(lam=0.0, beta=0.5, tau_s=30.0)
    path = router.save(tmp_path / "r")
    tracker = LoadTracker(default_service_s=5.0)
    loaded = Router.load(path, load_tracker=tracker)
    assert loaded.load_tracker is tracker and load_router(path).load_tracker is None
    prompt = "quantum photon laser atom quantum photon"
    assert loaded.route(prompt).llm == "big"
    for _ in range(8):  # 40 s of queue ahead of 'big', past tau: never chosen
        tracker.started("big")
    assert loaded.route(prompt).llm == "small"
    assert router.route(prompt).llm == "big"  # the saved router has no tracker


# -- prices ----------------------------------------------------------------------------------------
def test_prices_are_a_read_only_copy(router: Router) -> None:
    prices = router.prices
    assert list(prices) == list(router.llms) and isinstance(prices["big"], LLM)
    with pytest.raises(TypeError):
        prices["big"] = LLM("big", 0.0, 0.0)  # type: ignore[index]
    router.add_llm(LLM("fresh", 1.0, 2.0))
    assert "fresh" not in prices and router.prices["fresh"] == LLM("fresh", 1.0, 2.0)
    router.remove_llm("small")
    assert "small" in prices and "small" not in router.prices
    with pytest.raises(NotFittedError):
        _ = Router("knn").prices
