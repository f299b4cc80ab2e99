"""``[pacing]``, ``[profiles.NAME.pacing]``, a key's ``pacing`` and a profile's target in the
gateway's TOML: what is read, and each mistake named."""

from __future__ import annotations

import pytest

from mixllm.errors import ConfigError
from mixllm.policy.pacing import Budget
from mixllm.serve.settings import load_settings_text

GOOD = """
[pacing]
usd_per_day = 20.0

[[keys]]
name = "batch"
secret_env = "BATCH_KEY"
pacing = { usd_per_hour = 0.5 }

[profiles.cheap]
cost_share = 0.3
[profiles.cheap.pacing]
usd_per_hour = 2

[profiles.careful]
min_quality_share = 0.95
confidence = 0.8
"""


def test_budgets_and_targets_are_read() -> None:
    s = load_settings_text(GOOD, environ={"BATCH_KEY": "sk-1"})
    assert s.pacing is not None and s.pacing.budget == Budget(20.0, "day")
    assert s.keys[0].pacing is not None and s.keys[0].pacing.budget == Budget(0.5, "hour")
    cheap, careful = s.profiles["cheap"], s.profiles["careful"]
    assert cheap.target is not None and (cheap.target.kind, cheap.target.value) == (
        "cost_share",
        0.3,
    )
    assert cheap.pacing is not None and cheap.pacing.budget == Budget(2.0, "hour")
    assert careful.target is not None and careful.target.confidence == 0.8
    assert careful.pacing is None and careful.lam is None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[pacing]\nusd_per_week = 1", "usd_per_week"),
        ("[pacing]\nusd_per_day = 0", "usd_per_day=0"),
        ("[pacing]\nusd_per_day = 1\nusd_per_hour = 1", "exactly one of"),
        ("[pacing]\n", "without a budget"),
        ('[pacing]\nusd_per_day = "ten"', "usd_per_day='ten'"),
        ("[profiles.x]\nlam = 10\ncost_share = 0.3", "lam=10 and cost_share=0.3"),
        ("[profiles.x]\nstrong_share = 1.5", "strong_share=1.5"),
        ("[profiles.x]\nbudget_per_query = -1", "budget_per_query=-1"),
        ("[profiles.x]\ncost_share = 0.3\nstrong_share = 0.2", "expected at most one"),
        ("[profiles.x]\nconfidence = 0.9", "confidence without min_quality_share"),
        ("[profiles.x]\ncost_share = 0.3\nconfidence = 0.9", "confidence=0.9"),
        ("[profiles.x.pacing]\nusd_per_hour = -2", "[profiles.x.pacing]"),
    ],
)
def test_mistakes_are_named(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings_text(text, environ={})
    assert named in str(info.value)


def test_a_key_pacing_mistake_names_the_key() -> None:
    text = '[[keys]]\nname = "k"\nsecret_env = "K"\npacing = { usd_per_day = -1 }\n'
    with pytest.raises(ConfigError, match="key 'k' pacing"):
        load_settings_text(text, environ={"K": "sk-2"})
