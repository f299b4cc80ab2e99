"""A Router fitted with a target: its λ, its calibration, saved and loaded (older files too)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixllm.errors import ConfigError
from mixllm.policy import KNNPredictor
from mixllm.policy.targets import parse_target
from mixllm.router import Router
from tests.conftest import make_clustered

TARGET = parse_target("cost_share", 0.5)


@pytest.fixture(scope="module")
def router() -> Router:
    return Router("knn", embedder="hashing", target=TARGET, seed=1).fit(make_clustered(400))


def test_fit_sets_lam_from_the_calibration(router: Router) -> None:
    cal = router.calibration_
    assert cal is not None and cal.reference == "big" and cal.folds == 5
    assert router.lam == cal.lam_for(TARGET) == router.lam_for(TARGET) > 0
    # routes at that λ by default: about half of the big LLM's cost on fresh queries
    test = make_clustered(400, seed=7)
    decisions = router.route_many([str(p) for p in test.prompts])
    assert {d.lam for d in decisions} == {router.lam}
    cols = np.array([test.llm_index(d.llm) for d in decisions])
    share = test.cost_usd[np.arange(len(test)), cols].mean() / test.cost_usd[:, 1].mean()
    assert 0.35 < share < 0.55
    cheaper = router.lam_for(parse_target("cost_share", 0.2))
    assert cheaper > router.lam


def test_save_and_load_keep_target_and_calibration(router: Router, tmp_path: Path) -> None:
    router.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r")
    assert loaded.target == TARGET and loaded.lam == router.lam and loaded.folds == 5
    assert loaded.calibration_ is not None
    for target in (
        TARGET,
        parse_target("strong_share", 0.3),
        parse_target("min_quality_share", 0.8),
    ):
        assert loaded.lam_for(target) == router.lam_for(target)
    prompts = ["apple banana cherry", "quantum photon laser"]
    assert [d.llm for d in loaded.route_many(prompts)] == [
        d.llm for d in router.route_many(prompts)
    ]


def test_a_router_saved_before_targets_still_loads(router: Router, tmp_path: Path) -> None:
    router.save(tmp_path / "r")
    manifest_file = tmp_path / "r" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for key in ("target", "reference", "folds", "calibration"):
        del manifest[key]
    manifest_file.write_text(json.dumps(manifest))
    loaded = Router.load(tmp_path / "r")
    assert loaded.target is None and loaded.calibration_ is None and loaded.lam == router.lam
    assert loaded.route("apple banana").llm in {"small", "big"}
    with pytest.raises(ConfigError, match="refit it with a target"):
        loaded.lam_for(TARGET)


def test_a_damaged_calibration_is_a_persist_error(router: Router, tmp_path: Path) -> None:
    from mixllm.errors import PersistError

    router.save(tmp_path / "r")
    manifest_file = tmp_path / "r" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["target"] = {"kind": "cost_share", "value": 7}
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(PersistError, match="cost_share=7"):
        Router.load(tmp_path / "r")


def test_without_a_target_fit_does_not_calibrate() -> None:
    plain = Router("knn", embedder="hashing", lam=3.0).fit(make_clustered(100))
    assert plain.calibration_ is None and plain.lam == 3.0
    with pytest.raises(ConfigError, match="no calibration for targets"):
        plain.lam_for(TARGET)


def test_an_infeasible_target_leaves_the_router_fitted_and_calibrated() -> None:
    predictor = KNNPredictor(k_grid=(5, 15), cv=3)
    router = Router(predictor, embedder="hashing", lam=2.0, target=parse_target("cost_share", 0.01))
    with pytest.raises(ConfigError, match="cannot be met: the cheapest routing costs"):
        router.fit(make_clustered(200))
    assert router.lam == 2.0 and router.predictor_ is predictor  # fitted as given
    assert router.lam_for(parse_target("cost_share", 0.6)) >= 0
    assert router.route("apple banana").llm in {"small", "big"}


def test_reference_can_be_named() -> None:
    router = Router("knn", embedder="hashing", target=parse_target("strong_share", 0.5))
    router.reference = "small"
    router.fit(make_clustered(150))
    assert router.calibration_ is not None and router.calibration_.reference == "small"


def test_a_quality_target_keeps_its_horizon_and_older_files_mean_the_long_run(
    router: Router, tmp_path: Path
) -> None:
    router.target = parse_target("min_quality_share", 0.7, 0.8, horizon=300)
    try:
        router.save(tmp_path / "r")
    finally:
        router.target = TARGET
    manifest_file = tmp_path / "r" / "manifest.json"
    loaded = Router.load(tmp_path / "r")
    assert loaded.target == parse_target("min_quality_share", 0.7, 0.8, horizon=300)
    manifest = json.loads(manifest_file.read_text())
    assert manifest["target"]["horizon"] == 300
    del manifest["target"]["horizon"]  # as saved before horizons existed
    manifest_file.write_text(json.dumps(manifest))
    older = Router.load(tmp_path / "r").target
    assert older is not None and older.horizon is None and older.confidence == 0.8
    assert "in the long run" in older.describe()
