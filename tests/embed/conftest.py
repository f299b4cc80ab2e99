"""Fixtures for the embedder tests: a counting fake, a private cache folder, one distilled model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from mixllm.embed import HashingEmbedder, StaticEmbedder


class CountingEmbedder:
    """A hashing embedder under another name that counts its calls and the texts it embeds."""

    def __init__(self, name: str = "counting", dim: int = 16, *, salt: str = "") -> None:
        self._inner = HashingEmbedder(dim)
        self._name = name
        self.salt = salt
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def texts_embedded(self) -> int:
        return sum(len(c) for c in self.calls)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        return self._inner.embed([self.salt + t for t in texts])


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every embed test gets its own MIXLLM_CACHE_DIR: nothing touches the user's cache."""
    path = tmp_path / "mixllm-cache"
    monkeypatch.setenv("MIXLLM_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def static_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the MiniLM-distilled static model, distilled once per test session
    (~15 s on an idle CPU). xdist workers share the folder: the first distils, the others wait
    on its lock and load the result."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session folder all workers share
    folder = base / "static-models"
    folder.mkdir(exist_ok=True)
    StaticEmbedder(cache_dir=folder).embed(["warm up"])
    return folder
