from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixllm.embed import SentenceEmbedder
from mixllm.errors import ConfigError


def test_construction_loads_nothing() -> None:
    e = SentenceEmbedder()
    assert (e.name, e.spec) == ("minilm", "minilm")
    assert e._model is None


@pytest.mark.parametrize(
    ("model", "max_seq_length", "name", "spec"),
    [
        (None, 128, "minilm-max128", "minilm?max_seq_length=128"),
        ("org/model", None, "org/model", "sentence:org/model"),
        ("/models/x", 64, "/models/x-max64", "sentence:/models/x?max_seq_length=64"),
    ],
)
def test_name_and_spec(model: str | None, max_seq_length: int | None, name: str, spec: str) -> None:
    e = SentenceEmbedder(model, max_seq_length=max_seq_length)
    assert (e.name, e.spec) == (name, spec)


@pytest.mark.parametrize("kwargs", [{"model": ""}, {"batch_size": 0}, {"max_seq_length": 0}])
def test_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SentenceEmbedder(**kwargs)  # type: ignore[arg-type]


def test_missing_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load sentence-transformers model"):
        SentenceEmbedder(str(tmp_path / "no-such-model")).embed(["x"])


@pytest.mark.slow
def test_minilm_width_and_truncation() -> None:
    full = SentenceEmbedder()
    short = SentenceEmbedder(max_seq_length=16, batch_size=2)
    assert full.dim == short.dim == 384
    text = "a sentence about cooking pasta at home. " * 10 + "and now something about taxes"
    assert not np.allclose(full.embed([text]), short.embed([text]), atol=1e-3)
    np.testing.assert_allclose(full.embed(["hi"]), short.embed(["hi"]), atol=1e-5)
