"""mixllm: route each query to the LLM with the best quality for the money and the wait.

>>> from mixllm import Router
>>> Router("knn", embedder="hashing").lam
1.0
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from mixllm.clock import Clock, ManualClock, SystemClock
from mixllm.data import Dataset, Outcome, load_dataset, split_by_task, split_random
from mixllm.embed import Embedder, make_embedder
from mixllm.errors import (
    BackendError,
    ConfigError,
    DataError,
    MixLLMError,
    NotFittedError,
    PersistError,
    UnknownDecisionError,
    UnknownLLMError,
)
from mixllm.router import Router
from mixllm.types import LLM, Decision, Feedback, Prediction, QueryBatch

__all__ = [
    "LLM",
    "BackendError",
    "Clock",
    "ConfigError",
    "DataError",
    "Dataset",
    "Decision",
    "Embedder",
    "Feedback",
    "ManualClock",
    "MixLLMError",
    "NotFittedError",
    "Outcome",
    "PersistError",
    "Prediction",
    "QueryBatch",
    "Router",
    "SystemClock",
    "UnknownDecisionError",
    "UnknownLLMError",
    "load_dataset",
    "make_embedder",
    "split_by_task",
    "split_random",
]

try:
    __version__: str = _version("mixllm")  # the installed distribution's, like `mixllm --version`
except _PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
