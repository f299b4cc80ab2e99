"""The README's table of routers holds: which routers learn from feedback, take new LLMs without
refitting the others, and are fitted, saved and served; which run in ``mixllm evaluate`` only."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mixllm import LLM, Router
from mixllm.cli import cli
from mixllm.errors import ConfigError
from mixllm.policy.batch_registry import BATCH_POLICIES
from mixllm.types import Feedback
from tests.conftest import make_clustered

#: name → (learns from feedback, LLMs join without refitting), as the README says.
PREDICTORS = {
    "mixllm": (True, True),
    "knn": (False, False),
    "logistic": (False, False),
    "mlp": (False, False),
    "task-best": (False, False),
    "task-prior": (False, False),
    "linucb": (True, True),
    "thompson": (True, True),
    "egreedy": (True, True),
    "metallm": (True, True),
    "llm-bandit": (True, True),
}
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_predictors_are_fitted_saved_and_learn_as_the_table_says(name: str, tmp_path: Path) -> None:
    learns, joins = PREDICTORS[name]
    assert f"`{name}`" in README
    train, test = make_clustered(160, seed=0), make_clustered(30, seed=1)
    router = Router(name, embedder="hashing:32", seed=0).fit(train)
    router.save(tmp_path / "r")
    loaded = Router.load(tmp_path / "r")
    prompts = [str(p) for p in test.prompts]
    assert [d.llm for d in loaded.route_many(prompts, lam=10.0)] == [
        d.llm for d in router.route_many(prompts, lam=10.0)
    ]
    decision = loaded.route(prompts[0], lam=10.0)
    if learns:
        assert loaded.learn_one(decision, Feedback(quality=1.0)) is True
    else:
        with pytest.raises(ConfigError, match="does not learn online"):
            loaded.learn_one(decision, Feedback(quality=1.0))
    if joins:
        loaded.add_llm(LLM("newcomer", 0.5, 1.0))
        assert "newcomer" in loaded.llms
    else:
        with pytest.raises(ConfigError):
            loaded.add_llm(LLM("newcomer", 0.5, 1.0))


@pytest.mark.parametrize("name", BATCH_POLICIES)
def test_batch_policies_run_in_evaluate_only(name: str, tmp_path: Path) -> None:
    assert f"`{name}`" in README
    data = tmp_path / "data.jsonl"
    data.write_text('{"query_id": "q", "prompt": "p", "llm": "a", "quality": 1}\n')
    result = CliRunner().invoke(cli, ["fit", str(data), "--router", name, "--out", "x"])
    assert result.exit_code == 2
    assert "runs in mixllm evaluate and cannot be fitted" in result.output
