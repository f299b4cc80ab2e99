"""Private helpers shared by the embedders: input checks, row normalisation, cache folders."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError

__all__ = [
    "CACHE_ENV",
    "as_text_list",
    "cache_root",
    "missing_extra",
    "normalize_rows",
    "quiet_hf_loading",
]

CACHE_ENV = "MIXLLM_CACHE_DIR"


def as_text_list(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, refusing a bare string (it would embed one row per character).

    >>> as_text_list(("a", "b"))
    ['a', 'b']
    """
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not one str: use embed([text])")
    out = list(texts)
    for text in out:
        if not isinstance(text, str):
            raise TypeError(f"embed() takes texts (str), got {type(text).__name__}: {text!r:.60}")
    return out


def normalize_rows(matrix: NDArray[np.floating]) -> NDArray[np.float32]:
    """L2-normalise each row in float32; an all-zero row (no tokens) becomes the constant unit row.

    >>> normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).astype(float).round(4).tolist()
    [[0.6, 0.8], [0.7071, 0.7071]]
    """
    out = np.array(matrix, dtype=np.float32, copy=True, ndmin=2)
    norms = np.linalg.norm(out, axis=1)
    empty = ~(norms > 0.0)
    norms[empty] = 1.0
    out /= norms[:, None]
    if empty.any():
        out[empty] = np.float32(1.0 / np.sqrt(out.shape[1]))
    return out


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """The mixllm cache folder: ``$MIXLLM_CACHE_DIR``, else ``$XDG_CACHE_HOME/mixllm``, else
    ``~/.cache/mixllm``.

    >>> cache_root({"MIXLLM_CACHE_DIR": "/tmp/mx"}).as_posix()
    '/tmp/mx'
    """
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mixllm"


def missing_extra(what: str, exc: ImportError) -> ConfigError:
    """The error raised when an optional dependency of ``what`` is not installed."""
    return ConfigError(
        f"{what} needs the optional embedding libraries ({exc.name or exc}); "
        "install them with: pip install 'mixllm[embed]'"
    )


class _DropBenignLoadReport(logging.Filter):
    """Drops transformers' load report when it lists only UNEXPECTED keys.

    all-MiniLM-L6-v2 ships a ``position_ids`` buffer that recent transformers no longer expects;
    transformers itself says such keys "can be ignored". Reports with MISSING, MISMATCH or
    CONVERSION rows (weights left random) still get through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message or "UNEXPECTED" not in message:
            return True
        return any(word in message for word in ("MISSING", "MISMATCH", "CONVERSION"))


@contextmanager
def quiet_hf_loading() -> Iterator[None]:
    """While loading a transformers model: no progress bar, no benign load report."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    report_logger = logging.getLogger("transformers.modeling_utils")
    benign = _DropBenignLoadReport()
    report_logger.addFilter(benign)
    try:
        yield
    finally:
        report_logger.removeFilter(benign)
        if bars_were_on:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
