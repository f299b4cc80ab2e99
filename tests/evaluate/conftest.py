"""Fixtures of the evaluation tests; the fakes themselves are in ``fakes.py``."""

from __future__ import annotations

import pytest

from mixllm.data.dataset import Dataset
from tests.evaluate.fakes import FakeEmbedder, make_three


@pytest.fixture
def three() -> Dataset:
    return make_three()


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()
