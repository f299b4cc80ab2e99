"""One error tree for mixllm: every error a user can see derives from :class:`MixLLMError`.

Messages name the bad value and what was expected, e.g.
``unknown router 'knnn'; known: ['cheapest', 'knn', ...]``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "MixLLMError",
    "NotFittedError",
    "PersistError",
    "UnknownDecisionError",
    "UnknownLLMError",
]


class MixLLMError(Exception):
    """Base class of every error raised by mixllm on purpose."""


class DataError(MixLLMError):
    """A data file or table is missing, malformed or inconsistent."""


class ConfigError(MixLLMError):
    """A setting, name or argument has a value that is not allowed."""


class UnknownLLMError(ConfigError):
    """An LLM name that the router does not know."""


class UnknownDecisionError(ConfigError):
    """Feedback for a decision the router did not make (or no longer remembers)."""


class NotFittedError(MixLLMError):
    """A model or router was used before ``fit``."""


class PersistError(MixLLMError):
    """A saved router directory cannot be read: unknown format version, tampered or missing."""


class BackendError(MixLLMError):
    """An LLM backend (upstream server, replay data) failed to answer.

    ``retryable`` says whether another attempt, on this LLM or the next one, may succeed
    (timeouts, connection errors, 429, 5xx); ``status`` is the upstream's HTTP status, if any;
    ``retry_after_s`` how long the upstream asked to be left alone (its ``Retry-After``).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
