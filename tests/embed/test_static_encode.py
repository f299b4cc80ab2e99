"""The static embedder's own mean encoder gives model2vec's vectors.

Two implementations of the same float32 mean, compared up to float32 rounding (``_close``): one
token more or less moves a vector by far more than that, and model2vec or numpy may change
how they sum without anything being wrong.
"""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from mixllm.data import load_dataset
from mixllm.embed import StaticEmbedder
from mixllm.embed._mean import _FastWordPiece
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

# Text that the ASCII fast path and a cut at a token or word border could get wrong.
ADVERSARIAL = [
    "nospacesatallbutlong" * 200,
    "a" * 99 + " " + "b" * 100 + " " + "c" * 101 + " " + "d" * 5000,  # WordPiece's 100-char limit
    "!?.,;:'\"()[]{}<>@#$%^&*-_=+/\\|`~" * 60,
    "..." * 1000,
    "你好世界，这是一个没有空格的中文句子。" * 40,
    "中文mixed英文words混合" * 50,
    "🙂🎉👍🏽👨‍👩‍👧" * 100,
    "e\u0301 a\u0300 n\u0303 " * 200 + "cafe\u0301 " * 100,
    "\u0301\u0302 \u0301x " * 100,
    "tab\tnew\nline\rret\r\n " * 200,
    "zero\u200bwidth\u200b\u200cjoin\u200d\ufeffbom " * 100,
    " " * 5000 + "word " + "\t" * 3000 + "end",
    "\n" * 10_000,
    "ctl\x00\x01\x07\x0b\x0c\x1b\x1f\x7fchars " * 100,
    "x[UNK]y [CLS]z[SEP] [MASK][PAD] [unk] [cls] [SE P] [" * 50,
    "ΣΊΣΥΦΟΣ ΟΔΥΣΣΕΥΣ σοφός İstanbul ß ﬁ ＡＢＣ ① ½ " * 40,
    "\u00a0nbsp\u2003em\u3000ideographic\u2028line\u0085nel " * 100,
    "\ufffd\ud7ff\ue000private " * 100,
    "##ing ##s un##able " * 100,
    "A" * 383 + " tail",
    "word " * 76 + "w" + " x" * 100,
]


def _ascii_fuzz(n: int, seed: int = 0, *, added: bool = True) -> list[str]:
    """Random ASCII text, biased to the borders: controls, punctuation, ``[UNK]``, long words."""
    rng = random.Random(seed)
    parts = [
        " ",
        "  ",
        "\t",
        "\n",
        "a",
        "Ab",
        "word",
        "[",
        "]",
        "[UNK]",
        "[cls]",
        "##",
        ".",
        "x" * 120,
    ]
    if not added:  # no added token: every text takes the fast path
        parts = [p for p in parts if p != "[UNK]"]
    return [
        "".join(
            chr(rng.randrange(128)) if rng.random() < 0.5 else rng.choice(parts)
            for _ in range(rng.randrange(0, 600))
        )
        for _ in range(n)
    ]


def _close(actual: np.ndarray, desired: np.ndarray) -> None:
    """Equal up to float32 rounding (unit rows)."""
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6)


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
    _close(e.embed(texts), expected)
    one_by_one = np.concatenate([e.embed([t]) for t in texts[:20] + ODD])
    _close(one_by_one, np.concatenate([expected[:20], expected[-8:]]))


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
    _close(e.embed(texts), _model2vec(e, texts))
    # A model with token weights is encoded by model2vec itself.
    weights = np.linspace(0.5, 1.5, len(base.embedding)).astype(np.float32)
    weighted = StaticModel(base.embedding, base.tokenizer, normalize=True, weights=weights)
    weighted.save_pretrained(tmp_path / "weighted")
    w = StaticEmbedder(str(tmp_path / "weighted"))
    w._load()
    assert w._encoder is None
    np.testing.assert_array_equal(w.embed(texts), _model2vec(w, texts))  # model2vec both


@pytest.mark.slow
@pytest.mark.parametrize("max_tokens", [64, 512])
def test_same_vectors_on_the_dataset_prompts(
    static_models_dir: Path, data_dir: Path, max_tokens: int
) -> None:
    texts = [
        str(p) for p in load_dataset(data_dir / "routerbench/routerbench_0shot_subset.csv").prompts
    ]
    for name, step in (("mmlu", 7), ("gsm8k", 1)):  # every 7th MMLU prompt keeps it to seconds
        texts += [str(p) for p in load_dataset(data_dir / "routellm" / name).prompts[::step]]
    texts += ADVERSARIAL + _ascii_fuzz(500)
    e = StaticEmbedder(cache_dir=static_models_dir, max_tokens=max_tokens)
    e._load()
    assert e._encoder is not None and e._encoder.fast is not None
    _close(e.embed(texts), _model2vec(e, texts))
    one_by_one = np.concatenate([e.embed([t]) for t in ADVERSARIAL])
    _close(one_by_one, _model2vec(e, ADVERSARIAL))


def _unicode_fuzz(n: int, seed: int = 0) -> list[str]:
    """Random text over many scripts: accents (precomposed and combining), CJK, Hangul, Greek,
    Cyrillic, Arabic, Devanagari (spacing marks), Thai, punctuation and symbols, emoji, odd
    whitespace and format characters, mixed with ASCII words."""
    rng = random.Random(seed)
    ranges = [
        (0x80, 0x250), (0x300, 0x370), (0x370, 0x530), (0x600, 0x700), (0x900, 0x980),
        (0xE00, 0xE80), (0x1100, 0x1200), (0x2000, 0x2070), (0x20A0, 0x2400), (0x3000, 0x3100),
        (0x4E00, 0x4F00), (0xAC00, 0xAD00), (0xFB00, 0xFB50), (0xFE00, 0xFF70), (0x1F300, 0x1F700),
    ]  # fmt: skip
    words = ["the", "Word", " ", "\t", "\n", ".", "'", "-", "café", "naïve"]

    def char() -> str:
        lo, hi = rng.choice(ranges)
        return chr(rng.randrange(lo, hi))

    return [
        "".join(
            char() if rng.random() < 0.6 else rng.choice(words) for _ in range(rng.randrange(600))
        )
        for _ in range(n)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("limit", [None, 1, 7, 64, 512])
def test_fast_ids_are_the_tokenizers(static_models_dir: Path, limit: int | None) -> None:
    """The fast path's ids are the tokenizer's own on every ASCII character, on every character
    of the Basic Multilingual Plane below the surrogates, and on mixed text, in any context."""
    e = StaticEmbedder(cache_dir=static_models_dir, max_tokens=None)
    e._load()
    assert e._encoder is not None
    tokenizer = e._encoder.tokenizer
    fast = _FastWordPiece.for_tokenizer(tokenizer)
    assert fast is not None
    singles = [chr(c) for c in range(128)]
    pairs = [f"a{chr(c)}b{chr(d)} [U{chr(c)}NK]" for c in range(128) for d in (32, 46, 97, 0)]
    # Every character up to U+D7FF once, 64 to a text, between words and beside punctuation.
    every = [
        " x".join(f"{chr(c)}y{chr(c)}." for c in range(start, min(start + 64, 0xD800)))
        for start in range(128, 0xD800, 64)
    ]
    # Musical symbols whose NFD holds spacing marks that it may reorder: the tokenizer's texts.
    marks = ["\U0001d15f\U0001d165 x", "a\U0001d160b \U0001d16d\U0001d165"]
    texts = (
        singles + pairs + ADVERSARIAL + ODD + every + marks
        + _ascii_fuzz(2000, seed=1, added=False) + _unicode_fuzz(1000, seed=2)
    )  # fmt: skip
    expected_all = tokenizer.encode_batch(texts, add_special_tokens=False)
    fell_back = 0
    for text, encoding in zip(texts, expected_all, strict=True):
        got = fast.ids(text, limit)
        if got is None:
            fell_back += 1
            # only texts that may hold an added token, or a mark that NFD may reorder
            nfd = unicodedata.normalize("NFD", text)
            assert "[" in text or any(unicodedata.combining(c) for c in nfd), text
        else:
            assert got == encoding.ids[:limit], text
    assert fell_back < len(texts) / 10


def test_no_fast_path_for_other_tokenizers() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    assert _FastWordPiece.for_tokenizer(tokenizer) is None


@pytest.mark.slow
def test_keep_end_reads_the_last_tokens(static_models_dir: Path, data_dir: Path) -> None:
    """``keep="end"``: the fast path gives the vectors of the tokenizer's own left truncation,
    and a shared long preamble no longer hides the question at the end."""
    e = StaticEmbedder(cache_dir=static_models_dir, max_tokens=64, keep="end")
    e._load()
    assert e._encoder is not None and e._encoder.fast is not None
    ds = load_dataset(data_dir / "routerbench" / "routerbench_0shot_subset.csv")
    texts = [str(p) for p in ds.prompts[:200]] + ODD + ADVERSARIAL
    fast = e.embed(texts)
    e._encoder.fast = None  # the tokenizer alone, truncating from the left
    _close(fast, e.embed(texts))
    preamble = "Here are some worked examples of questions and answers. " * 40
    asks = [preamble + "What is the capital of France?", preamble + "def fib(n): return n"]
    head = StaticEmbedder(cache_dir=static_models_dir, max_tokens=64)
    assert np.array_equal(*head.embed(asks))  # the first 64 tokens are the same
    tail = StaticEmbedder(cache_dir=static_models_dir, max_tokens=64, keep="end").embed(asks)
    assert not np.array_equal(tail[0], tail[1])
    only_question = head.embed(["What is the capital of France?"])[0]
    assert float(tail[0] @ only_question) > float(head.embed(asks)[0] @ only_question)
