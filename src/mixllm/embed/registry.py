"""Embedders by spec string, e.g. ``static``, ``minilm``, ``hashing:512``, ``sentence:<model>``.

A spec is ``kind[:argument][?option=value&...]``. A saved router keeps its embedder's spec
(:func:`embedder_spec`) and calls :func:`make_embedder` on load, so for every embedder ``e``,
``make_embedder(e.spec)`` builds an embedder with the same name and the same vectors.

=====================  ==========================================  ===========================
spec                   embedder                                    options
=====================  ==========================================  ===========================
``static``             model2vec distilled from MiniLM, the first  ``max_tokens=<n>|none``,
                       512 tokens                                  ``keep=start|end``
``static:<model>``     a model2vec folder or downloaded name       ``max_tokens=<n>|none``,
                                                                   ``keep=start|end``
``minilm``             all-MiniLM-L6-v2 (bundled, offline)         ``max_seq_length=<n>``
``sentence:<model>``   any sentence-transformers name or folder    ``max_seq_length=<n>``
``hashing[:<dim>]``    hashed word n-grams (tests; never cached)   ``ngram=<lo>-<hi>``
=====================  ==========================================  ===========================

The router's default, :data:`DEFAULT_EMBEDDER`, is ``static?max_tokens=64&keep=end``: the same
model reading the last 64 tokens, where a prompt that opens with a system prompt or few-shot
examples keeps its question. A MixLLM router decides with it in ~0.18 ms at p50 on 2 cores,
against ~0.31 ms with ``static`` (without the embedding cache), and routed RouterBench as well
(docs/results.md, decision time). ``static`` keeps its meaning, so routers saved with it load
as they were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mixllm.embed.base import Embedder
from mixllm.embed.cache import CachedEmbedder
from mixllm.embed.hashing import HashingEmbedder
from mixllm.embed.sentence import SentenceEmbedder
from mixllm.embed.static import DEFAULT_MAX_TOKENS, StaticEmbedder
from mixllm.errors import ConfigError

__all__ = [
    "DEFAULT_EMBEDDER",
    "KNOWN_SPECS",
    "check_embedder_spec",
    "embedder_spec",
    "make_embedder",
]

DEFAULT_EMBEDDER = "static?max_tokens=64&keep=end"
"""The spec a :class:`~mixllm.Router`, ``mixllm fit``/``evaluate``/``demo``/``simulate`` and
:func:`~mixllm.evaluate.evaluate` use when given none: the static model, last 64 tokens."""

KNOWN_SPECS = ("hashing", "hashing:<dim>", "minilm", "sentence:<model>", "static", "static:<model>")
"""The spec forms :func:`make_embedder` understands (shown in error messages)."""

_OPTIONS: dict[str, tuple[str, ...]] = {
    "hashing": ("ngram",),
    "minilm": ("max_seq_length",),
    "sentence": ("max_seq_length",),
    "static": ("max_tokens", "keep"),
}


@dataclass(frozen=True)
class _Spec:
    text: str
    kind: str
    arg: str
    options: Mapping[str, str]


def make_embedder(
    spec: str, *, cache: bool = True, environ: Mapping[str, str] = os.environ
) -> Embedder:
    """Build the embedder a spec names; nothing is loaded until its first ``embed``.

    Parameters
    ----------
    spec:
        See the table in :mod:`mixllm.embed.registry`, e.g. ``"static"`` or ``"hashing:64"``.
    cache:
        Wrap the embedder in a :class:`~mixllm.embed.CachedEmbedder` (memory + disk). Hashing
        embedders are never wrapped: computing them is cheaper than the cache.
    environ:
        Environment for ``MIXLLM_CACHE_DIR`` (where the caches and distilled model live).

    Raises
    ------
    ConfigError
        Unknown kind, bad argument or option; the message names the spec and what is allowed.

    Examples
    --------
    >>> make_embedder("hashing:64").name
    'hashing-64'
    >>> e = make_embedder("static?max_tokens=64", environ={"MIXLLM_CACHE_DIR": "/tmp/mx"})
    >>> type(e).__name__, e.name, e.spec
    ('CachedEmbedder', 'static-minilm-max64', 'static?max_tokens=64')
    >>> make_embedder(DEFAULT_EMBEDDER, cache=False).name  # the router's default
    'static-minilm-max64-end'
    >>> make_embedder("word2vec")
    Traceback (most recent call last):
    ...
    mixllm.errors.ConfigError: unknown embedder 'word2vec'; known: ['hashing', 'hashing:<dim>', \
'minilm', 'sentence:<model>', 'static', 'static:<model>']
    """
    embedder = _build(_parse(spec), environ)
    if cache and not isinstance(embedder, HashingEmbedder):
        return CachedEmbedder(embedder, environ=environ)
    return embedder


def check_embedder_spec(spec: str) -> None:
    """Raise :class:`~mixllm.errors.ConfigError` if ``spec`` is not valid (loads nothing).

    >>> check_embedder_spec("sentence:BAAI/bge-small-en-v1.5?max_seq_length=128")
    """
    _build(_parse(spec), {})


def embedder_spec(embedder: Embedder) -> str:
    """The spec that re-creates ``embedder`` with :func:`make_embedder`.

    >>> embedder_spec(HashingEmbedder(32))
    'hashing:32'
    """
    spec = getattr(embedder, "spec", None)
    if not isinstance(spec, str):
        raise ConfigError(
            f"embedder {embedder.name!r} ({type(embedder).__name__}) has no spec; "
            f"only embedders built from one of {list(KNOWN_SPECS)} can be saved by spec"
        )
    return spec


def _parse(spec: str) -> _Spec:
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"unknown embedder {spec!r}; known: {list(KNOWN_SPECS)}")
    text = spec.strip()
    head, _, query = text.rpartition("?") if "?" in text else (text, "", "")
    kind, _, arg = head.partition(":")
    kind = kind.strip().lower()
    if kind not in _OPTIONS:
        raise ConfigError(f"unknown embedder {spec!r}; known: {list(KNOWN_SPECS)}")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or key not in _OPTIONS[kind]:
            raise ConfigError(
                f"bad option {item!r} in embedder spec {spec!r}; "
                f"'{kind}' takes: {[f'{k}=...' for k in _OPTIONS[kind]]}"
            )
        options[key] = value
    return _Spec(text=spec, kind=kind, arg=arg.strip(), options=options)


def _build(spec: _Spec, environ: Mapping[str, str]) -> Embedder:
    try:
        return _construct(spec, environ)
    except ConfigError as exc:
        if repr(spec.text) in str(exc):
            raise
        raise ConfigError(f"embedder spec {spec.text!r}: {exc}") from exc


def _construct(spec: _Spec, environ: Mapping[str, str]) -> Embedder:
    if spec.kind == "hashing":
        dim = _positive_int(spec.arg, spec, "dim") if spec.arg else 256
        return HashingEmbedder(dim, ngram_range=_ngram(spec.options.get("ngram", "1-2"), spec))
    if spec.kind == "static":
        tokens = spec.options.get("max_tokens")
        max_tokens = DEFAULT_MAX_TOKENS if tokens is None else _int_or_none(tokens, spec)
        keep = spec.options.get("keep", "start")
        return StaticEmbedder(spec.arg or None, max_tokens=max_tokens, keep=keep, environ=environ)
    if spec.kind == "minilm" and spec.arg:
        raise ConfigError(
            f"embedder spec {spec.text!r}: 'minilm' takes no argument; "
            "for another model use 'sentence:<model name or path>'"
        )
    if spec.kind == "sentence" and not spec.arg:
        raise ConfigError(
            f"embedder spec {spec.text!r} names no model; use 'sentence:<model name or path>'"
        )
    seq = spec.options.get("max_seq_length")
    max_seq_length = None if seq is None else _positive_int(seq, spec, "max_seq_length")
    return SentenceEmbedder(spec.arg or None, max_seq_length=max_seq_length)


def _positive_int(value: str, spec: _Spec, what: str) -> int:
    if not value.isdecimal() or int(value) < 1:
        raise ConfigError(
            f"embedder spec {spec.text!r}: {what} must be a positive int, not {value!r}"
        )
    return int(value)


def _int_or_none(value: str, spec: _Spec) -> int | None:
    return None if value.lower() == "none" else _positive_int(value, spec, "max_tokens")


def _ngram(value: str, spec: _Spec) -> tuple[int, int]:
    lo, sep, hi = value.partition("-")
    if not sep:
        raise ConfigError(f"embedder spec {spec.text!r}: ngram must look like '1-3', not {value!r}")
    return _positive_int(lo, spec, "ngram"), _positive_int(hi, spec, "ngram")
