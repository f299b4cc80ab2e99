"""finetune_encoder: the tag-enhanced embedding trained into the encoder (MixLLM §3.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from mixllm.embed import finetune_encoder, make_embedder
from mixllm.embed._domains import domain_loss
from mixllm.embed.finetune import _objective
from mixllm.embed.sentence import minilm_path
from mixllm.errors import ConfigError, DataError

TOPICS = {
    "cooking": ["Bake the bread", "Simmer the soup", "Whisk two eggs", "Roast the garlic"],
    "astronomy": ["Jupiter has moons", "A comet's tail", "Saturn's rings", "The Milky Way"],
    "law": ["The court ruled", "Sign the contract", "A tort claim", "The judge's verdict"],
    "coding": ["Fix the null pointer", "Compile the module", "Refactor the class", "A unit test"],
}


def corpus() -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for topic, phrases in TOPICS.items():
        for i, phrase in enumerate(phrases * 2):
            texts.append(f"{phrase}{'.' if i < 4 else ', please.'}")
            labels.append(topic)
    return texts, labels


def separation(x: NDArray[np.float32], labels: list[str]) -> float:
    """Mean same-domain cosine minus mean cross-domain cosine."""
    same = np.equal.outer(labels, labels)
    sims = x @ x.T
    off = ~np.eye(len(labels), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


@pytest.mark.slow
def test_finetuned_model_loads_and_separates_domains(tmp_path: Path) -> None:
    texts, labels = corpus()
    assert len(texts) == 32
    before = make_embedder("minilm", cache=False).embed(texts)
    out = finetune_encoder(
        minilm_path(),
        texts,
        labels,
        tmp_path / "tuned",
        epochs=1,
        batch_size=16,
        lr=5e-5,
        device="cpu",
    )
    assert out == tmp_path / "tuned"
    embedder = make_embedder(f"sentence:{out}", cache=False)
    after = embedder.embed(texts)
    assert after.shape == before.shape
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    assert separation(after, labels) > separation(before, labels) + 0.01


@pytest.mark.slow
def test_objectives_match_the_paper_loss() -> None:
    import torch

    rng = np.random.default_rng(0)
    u = rng.standard_normal((12, 5)).astype(np.float32)
    ids = rng.integers(0, 3, 12)
    pull, push, _ = domain_loss(u, ids, margin=0.1, push_weight=1.0)
    centre = _objective(None, "centre", 0.1)
    value = centre(torch.from_numpy(u), torch.from_numpy(ids))
    assert float(value) == pytest.approx(pull + push, abs=1e-5)
    triplet = _objective(None, "triplet", 0.3)
    apart = np.repeat(np.eye(3, 5, dtype=np.float32), 4, axis=0)
    labels = torch.from_numpy(np.repeat(np.arange(3), 4))
    assert float(triplet(torch.from_numpy(apart), labels)) == 0.0
    assert float(triplet(torch.from_numpy(u), labels)) > 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loss": "cosent"}, ConfigError, "unknown loss 'cosent'; known"),
        ({"epochs": 0}, ConfigError, "epochs=0"),
        ({"batch_size": 1}, ConfigError, "batch_size=1"),
        ({"lr": 0.0}, ConfigError, "lr=0.0"),
        ({"margin": 3.0}, ConfigError, "margin=3.0"),
    ],
)
def test_bad_arguments_fail_before_loading(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        finetune_encoder("no/such-model", ["a", "b"], ["x", "y"], tmp_path, **kwargs)  # type: ignore[arg-type]


def test_too_few_texts(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="1 text"):
        finetune_encoder("no/such-model", ["a"], ["x"], tmp_path)
