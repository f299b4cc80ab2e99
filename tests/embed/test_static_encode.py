"""The static embedder's own mean encoder gives model2vec's vectors, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixllm.data import load_dataset
from mixllm.embed import StaticEmbedder
from mixllm.embed._util import normalize_rows
from mixllm.embed.static import distilled_model_dir

ODD = [
    "",
    "   ",
    "\n\t ",
    "héllo wörld — naïve café, 你好世界 🙂 Ωμέγα",
    "x" * 20_000,
    "Few-shot example: the sky is blue. " * 300 + "Question: what colour is grass?",
    "[UNK] [PAD] [CLS] \u200b\u00a0zero-width",
    "🙂🙂🙂",
]


def _model2vec(e: StaticEmbedder, texts: list[str]) -> np.ndarray:
    vectors = e._load().encode(
        texts, max_length=e.max_tokens, normalize=True, use_multiprocessing=False
    )
    return normalize_rows(np.asarray(vectors))


@pytest.mark.slow
@pytest.mark.parametrize("max_tokens", [512, 64, 3, None])
def test_same_vectors_as_model2vec(
    static_models_dir: Path, data_dir: Path, max_tokens: int | None
) -> None:
    ds = load_dataset(data_dir / "routerbench" / "routerbench_0shot_subset.csv")
    texts = [str(p) for p in ds.prompts[:300]] + ODD
    e = StaticEmbedder(cache_dir=static_models_dir, max_tokens=max_tokens)
    assert e._load() is not None and e._encoder is not None  # the lean path is in use
    expected = _model2vec(e, texts)
    np.testing.assert_array_equal(e.embed(texts), expected)
    one_by_one = np.concatenate([e.embed([t]) for t in texts[:20] + ODD])
    np.testing.assert_array_equal(one_by_one, np.concatenate([expected[:20], expected[-8:]]))


@pytest.mark.slow
def test_float32_tables_and_weighted_models(static_models_dir: Path, tmp_path: Path) -> None:
    from model2vec import StaticModel

    base = StaticModel.from_pretrained(distilled_model_dir(static_models_dir))
    texts = ["route this query", "", *ODD[3:6]]
    f32 = StaticModel(base.embedding.astype(np.float32), base.tokenizer, normalize=True)
    f32.save_pretrained(tmp_path / "f32")
    e = StaticEmbedder(str(tmp_path / "f32"), max_tokens=64)
    e._load()
    assert e._encoder is not None
    np.testing.assert_array_equal(e.embed(texts), _model2vec(e, texts))
    # A model with token weights is encoded by model2vec itself.
    weights = np.linspace(0.5, 1.5, len(base.embedding)).astype(np.float32)
    weighted = StaticModel(base.embedding, base.tokenizer, normalize=True, weights=weights)
    weighted.save_pretrained(tmp_path / "weighted")
    w = StaticEmbedder(str(tmp_path / "weighted"))
    w._load()
    assert w._encoder is None
    np.testing.assert_array_equal(w.embed(texts), _model2vec(w, texts))
