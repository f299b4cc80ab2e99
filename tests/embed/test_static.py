from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from mixllm.embed import StaticEmbedder
from mixllm.embed.static import DEFAULT_MAX_TOKENS, DISTILLED_DIM, distilled_model_dir
from mixllm.errors import ConfigError


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


LONG = "Few-shot example: the sky is blue. " * 40 + "Question: what colour is grass?"


def test_construction_loads_and_writes_nothing(cache_dir: Path) -> None:
    e = StaticEmbedder()
    assert (e.name, e.spec, e.dim) == (f"static-minilm-max{DEFAULT_MAX_TOKENS}", "static", 256)
    assert not cache_dir.exists()


@pytest.mark.parametrize(
    ("model", "max_tokens", "name", "spec"),
    [
        (None, None, "static-minilm", "static?max_tokens=none"),
        (None, 64, "static-minilm-max64", "static?max_tokens=64"),
        ("m/potion", DEFAULT_MAX_TOKENS, "static:m/potion-max512", "static:m/potion"),
        ("m/potion", 8, "static:m/potion-max8", "static:m/potion?max_tokens=8"),
    ],
)
def test_name_and_spec(model: str | None, max_tokens: int | None, name: str, spec: str) -> None:
    e = StaticEmbedder(model, max_tokens=max_tokens)
    assert (e.name, e.spec) == (name, spec)


@pytest.mark.parametrize("kwargs", [{"max_tokens": 0}, {"max_tokens": True}, {"model": " "}])
def test_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        StaticEmbedder(**kwargs)  # type: ignore[arg-type]


def test_distilled_model_location(cache_dir: Path, tmp_path: Path) -> None:
    assert distilled_model_dir() == cache_dir / "models" / f"static-minilm-d{DISTILLED_DIM}"
    assert distilled_model_dir(tmp_path) == tmp_path / f"static-minilm-d{DISTILLED_DIM}"
    env = {"MIXLLM_CACHE_DIR": str(tmp_path / "env")}
    assert distilled_model_dir(environ=env).parent == tmp_path / "env" / "models"


def test_missing_model_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load model2vec model"):
        StaticEmbedder(str(tmp_path / "no-such-model")).embed(["x"])


@pytest.mark.slow
def test_distilled_model_is_cached_and_reloaded(static_models_dir: Path) -> None:
    folder = distilled_model_dir(static_models_dir)
    assert (folder / "config.json").is_file()
    assert _visible(static_models_dir) == [folder.name]  # no temporary folders left
    e = StaticEmbedder(cache_dir=static_models_dir)
    assert e.embed(["hello"]).shape == (1, DISTILLED_DIM)
    # PCA signs are canonical: each axis's largest-magnitude entry is positive.
    table = e._load().embedding
    assert (table[np.abs(table).argmax(axis=0), np.arange(DISTILLED_DIM)] > 0).all()


@pytest.mark.slow
def test_truncation_reads_only_the_first_tokens(static_models_dir: Path) -> None:
    full = StaticEmbedder(cache_dir=static_models_dir, max_tokens=None)
    head = StaticEmbedder(cache_dir=static_models_dir, max_tokens=16)
    short = "what colour is grass?"
    np.testing.assert_allclose(full.embed([short]), head.embed([short]), atol=1e-6)
    assert not np.allclose(full.embed([LONG]), head.embed([LONG]), atol=1e-3)
    assert head.embed([LONG]) @ head.embed([LONG[:400]]).T > 0.999


@pytest.mark.slow
def test_a_given_model_folder_is_loaded_directly(static_models_dir: Path) -> None:
    path = str(distilled_model_dir(static_models_dir))
    given = StaticEmbedder(path)
    assert given.dim == DISTILLED_DIM
    np.testing.assert_allclose(
        given.embed(["route this"]),
        StaticEmbedder(cache_dir=static_models_dir).embed(["route this"]),
        atol=1e-6,
    )


@pytest.fixture
def fake_distill(static_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the 15 s distillation by loading the session's distilled model."""
    from model2vec import StaticModel

    calls: list[str] = []

    def distill(model_name: str, **kwargs: object) -> StaticModel:
        calls.append(model_name)
        return StaticModel.from_pretrained(distilled_model_dir(static_models_dir))

    monkeypatch.setattr("model2vec.distill.distill", distill)
    return calls


@pytest.mark.slow
def test_distils_into_the_cache_dir_once(fake_distill: list[str], tmp_path: Path) -> None:
    StaticEmbedder(cache_dir=tmp_path).embed(["a"])
    StaticEmbedder(cache_dir=tmp_path).embed(["a"])
    assert len(fake_distill) == 1
    assert _visible(tmp_path) == [f"static-minilm-d{DISTILLED_DIM}"]


@pytest.mark.slow
def test_losing_the_race_uses_the_winners_model(
    fake_distill: list[str], static_models_dir: Path, tmp_path: Path
) -> None:
    from mixllm.embed.static import _distill_into

    target = distilled_model_dir(tmp_path)
    shutil.copytree(distilled_model_dir(static_models_dir), target)
    (target / "winner").write_text("x")
    _distill_into(target)  # as if another process renamed its copy first
    assert (target / "winner").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # its own copy is gone


@pytest.mark.slow
def test_a_blocked_target_is_a_config_error(fake_distill: list[str], tmp_path: Path) -> None:
    target = distilled_model_dir(tmp_path)
    target.mkdir(parents=True)
    (target / "stray-file").write_text("not a model")
    with pytest.raises(ConfigError, match="delete that folder"):
        StaticEmbedder(cache_dir=tmp_path).embed(["a"])


@pytest.mark.slow
def test_concurrent_first_uses_distil_once(fake_distill: list[str], tmp_path: Path) -> None:
    embedders = [StaticEmbedder(cache_dir=tmp_path) for _ in range(3)]
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda e=e: results.append(e.embed(["a"]))) for e in embedders
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fake_distill) == 1
    assert len(results) == 3
    assert _visible(tmp_path) == [f"static-minilm-d{DISTILLED_DIM}"]
