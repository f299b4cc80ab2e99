"""Predictors by name, and back from saved state."""

from __future__ import annotations

import pytest

from mixllm.errors import ConfigError, PersistError
from mixllm.policy import (
    PREDICTORS,
    KNNPredictor,
    OraclePredictor,
    SinglePredictor,
    check_predictor_name,
    make_predictor,
    predictor_from_state,
)
from tests.policy.conftest import Split


def test_every_registered_name_builds_a_predictor_with_that_name() -> None:
    for name in PREDICTORS:
        assert make_predictor(name).name == name
    single = make_predictor("single:gpt-4-1106-preview")
    assert isinstance(single, SinglePredictor) and single.llm == "gpt-4-1106-preview"
    assert single.name == "single:gpt-4-1106-preview"


def test_seed_and_keyword_arguments_reach_the_constructor(two_clusters: Split) -> None:
    knn = make_predictor("knn", seed=4, k=7)
    assert isinstance(knn, KNNPredictor) and (knn.seed, knn.k) == (4, 7)
    oracle = make_predictor("oracle", seed=4, outcomes=two_clusters[2])
    assert isinstance(oracle, OraclePredictor) and oracle.outcomes is two_clusters[2]


@pytest.mark.parametrize("name", ["xyz", "single", "Knn", ""])
def test_unknown_names_list_the_known_ones(name: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"unknown router '{name}'; known: \['random'.*'single:<llm>'\]"
    ):
        make_predictor(name)


def test_bad_arguments_are_reported() -> None:
    with pytest.raises(ConfigError, match=r"unknown arguments \['kk'\]; it accepts"):
        make_predictor("knn", kk=3)
    with pytest.raises(ConfigError, match="names no LLM"):
        make_predictor("single:")


def test_state_by_kind_or_name(two_clusters: Split) -> None:
    train, qtrain, _, _ = two_clusters
    fitted = make_predictor("single:llm-1").fit(train, qtrain)
    params, arrays = fitted.get_state()
    for kind in ("single", "single:llm-1"):
        restored = predictor_from_state(kind, params, arrays)
        assert isinstance(restored, SinglePredictor) and restored.llm == "llm-1"
    with pytest.raises(ConfigError, match="unknown router 'nope'"):
        predictor_from_state("nope", params, arrays)
    with pytest.raises(PersistError, match="lacks 'llms'"):
        predictor_from_state("single", {"llm": "llm-1"}, arrays)


def test_check_predictor_name_builds_nothing() -> None:
    for name in [*PREDICTORS, "single:x"]:
        check_predictor_name(name)
    for bad in ("knnn", "single", "single:"):
        with pytest.raises(ConfigError, match=repr(bad)):
            check_predictor_name(bad)
