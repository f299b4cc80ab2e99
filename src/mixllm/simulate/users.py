"""Simulated users who give binary feedback (thumbs up/down) on the answers they get.

The paper's user (MixLLM §4.4) is satisfied when the answer's quality is above 0.7 and the wait
is under 15 seconds; ``flip`` adds label noise (a share of answers judged the other way).

>>> user = ThresholdUser()
>>> user.reward(quality=1.0, wait_s=2.0, timed_out=False, rng=np.random.default_rng(0))
True
>>> user.reward(quality=1.0, wait_s=20.0, timed_out=False, rng=np.random.default_rng(0))
False
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixllm.errors import ConfigError

__all__ = ["ThresholdUser"]


@dataclass(frozen=True)
class ThresholdUser:
    """Thumbs up when quality > ``min_quality`` and wait < ``max_wait_s`` (and not timed out)."""

    min_quality: float = 0.7
    max_wait_s: float = 15.0
    flip: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip <= 0.5:
            raise ConfigError(f"flip={self.flip!r}; expected a share between 0 and 0.5")
        if not self.max_wait_s > 0:
            raise ConfigError(f"max_wait_s={self.max_wait_s!r}; expected a number > 0")

    def reward(
        self, *, quality: float, wait_s: float, timed_out: bool, rng: np.random.Generator
    ) -> bool:
        happy = (not timed_out) and quality > self.min_quality and wait_s < self.max_wait_s
        if self.flip > 0 and rng.random() < self.flip:
            return not happy
        return bool(happy)
