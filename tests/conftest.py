"""Shared, small, seeded fixtures. The real data directory comes from MIXLLM_DATA_DIR (set by the
Makefile to ../shared/data) or, failing that, the shared/ folder beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mixllm.data.dataset import Dataset

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    env = os.environ.get("MIXLLM_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test's caches out of the user's cache (tests/embed sets its own)."""
    monkeypatch.setenv("MIXLLM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "mixllm-cache"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        message = f"no routing data at {path}; set MIXLLM_DATA_DIR"
        if os.environ.get("CI"):  # CI always has ../shared/data: missing data is a failure there
            pytest.fail(message)
        pytest.skip(message)
    return path


def make_clustered(n: int = 200, *, seed: int = 0, n_tasks: int = 2) -> Dataset:
    """Queries from ``n_tasks`` topics; 'small' is good on topic 0 only, 'big' on all, at 10x cost.

    Prompts carry topic words so any text embedder separates the topics.
    """
    rng = np.random.default_rng(seed)
    words = [["apple", "banana", "cherry", "grape"], ["quantum", "photon", "laser", "atom"]]
    words += [[f"w{t}x{i}" for i in range(4)] for t in range(2, n_tasks)]
    topics = rng.integers(0, n_tasks, size=n)
    prompts = [" ".join(rng.choice(words[t], size=6)) + f" #{i}" for i, t in enumerate(topics)]
    p_small = np.where(topics == 0, 0.9, 0.1)
    quality = np.stack([rng.random(n) < p_small, rng.random(n) < 0.95], axis=1).astype(float)
    cost = np.stack([np.full(n, 0.001), np.full(n, 0.01)], axis=1) * rng.uniform(0.8, 1.2, (n, 2))
    return Dataset(
        query_ids=np.array([f"q{i}" for i in range(n)], dtype=object),
        prompts=np.array(prompts, dtype=object),
        llms=("small", "big"),
        quality=quality,
        cost_usd=cost,
        prompt_tokens=np.full(n, 10.0),
        output_tokens=np.full((n, 2), 5.0),
        latency_s=np.full((n, 2), np.nan),
        tasks=np.array([f"topic{t}" for t in topics], dtype=object),
        name="clustered",
    )


@pytest.fixture
def clustered() -> Dataset:
    return make_clustered()
