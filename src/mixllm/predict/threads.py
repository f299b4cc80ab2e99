"""Run numeric training code with one BLAS thread.

The models here train on many small matrix products (a few thousand rows × a few hundred
columns). A threaded BLAS gains little on those, and on a busy machine (or beside
scikit-learn's OpenMP loops) its spinning threads made training 10-25× slower in our
measurements, so training code is wrapped in :func:`one_blas_thread`.

The limit applies to the libraries loaded when the block starts, so a library imported lazily
inside it (scipy brings its own BLAS) must be named in ``preload``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

import threadpoolctl  # type: ignore[import-untyped]

__all__ = ["one_blas_thread"]


@contextmanager
def one_blas_thread(*preload: str) -> Iterator[None]:
    """Limit BLAS (OpenBLAS, MKL...) to one thread inside the block; usable as a decorator.

    ``preload`` names modules to import first, so that their BLAS is limited too.

    >>> import numpy as np
    >>> with one_blas_thread():
    ...     float((np.ones((2, 2)) @ np.ones(2))[0])
    2.0
    """
    for name in preload:
        importlib.import_module(name)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield
