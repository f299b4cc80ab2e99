"""One LLM call of a collection run: the spending cap, retries with backoff, cost and usage.

Before each attempt the call reserves its worst case (the prompt's ``cl100k_base`` tokens plus
:data:`MESSAGE_OVERHEAD_TOKENS`, at the input price, plus ``max_tokens`` at the output price); an
attempt whose worst case would take what was spent plus what is reserved past the cap is not
started (:class:`BudgetExceededError`). After it, the reservation is replaced by what the call cost:
the usage the upstream reported (tokens counted here where it reported none) at the LLM's prices.

Retryable failures (429, 5xx, timeouts, lost connections) are tried again up to ``retries`` times,
after the upstream's ``Retry-After`` when it sent one, else after an exponential backoff with
jitter; both are capped at ``max_backoff_s``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from mixllm.data.tokens import count_tokens
from mixllm.errors import BackendError, MixLLMError
from mixllm.serve.backends import Backend
from mixllm.serve.chat import ChatResult
from mixllm.types import LLM

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "Budget",
    "BudgetExceededError",
    "Call",
    "CallFailedError",
    "CallPolicy",
    "StoppedError",
    "call_llm",
    "worst_case_usd",
]

#: Tokens a chat template adds around one user message (OpenAI's is 7); reserved on top.
MESSAGE_OVERHEAD_TOKENS = 16


class StoppedError(MixLLMError):
    """A call was not started because the run is stopping (Ctrl-C, or the cap below)."""


class BudgetExceededError(StoppedError):
    """A call was not started: its worst case would take the spend past ``--max-usd``."""


class Budget:
    """What a run has spent and holds in reservations, against an optional cap (USD).

    >>> b = Budget(1.0, spent=0.25)
    >>> b.reserve(0.5); b.settle(0.5, 0.125); b.spent
    0.375
    >>> b.reserve(0.75)
    Traceback (most recent call last):
    ...
    mixllm.collect.calls.BudgetExceededError: ...
    """

    def __init__(self, cap_usd: float | None, *, spent: float = 0.0) -> None:
        self.cap_usd, self.spent, self.reserved = cap_usd, float(spent), 0.0
        self.refused = False
        self.closed = False  # no more calls: the run is stopping

    def reserve(self, worst_usd: float) -> None:
        """Hold ``worst_usd``; :class:`BudgetExceededError` (and ``refused`` set) when it does not
        fit, :class:`StoppedError` once the run is stopping."""
        if self.closed:
            raise StoppedError("the run is stopping; no more calls are started")
        if self.cap_usd is not None and self.spent + self.reserved + worst_usd > self.cap_usd:
            self.refused = self.closed = True
            raise BudgetExceededError(
                f"a call whose worst case is ${worst_usd:.6f} would take the spend "
                f"(${self.spent:.6f} spent, ${self.reserved:.6f} reserved) past --max-usd "
                f"${self.cap_usd:g}"
            )
        self.reserved += worst_usd

    def settle(self, worst_usd: float, cost_usd: float) -> None:
        """Replace a reservation of ``worst_usd`` by what the call cost."""
        self.reserved = max(self.reserved - worst_usd, 0.0)
        self.spent += cost_usd


class CallFailedError(BackendError):
    """A call that failed for good: the last :class:`BackendError` and the attempts made."""

    def __init__(self, cause: BackendError, attempts: int) -> None:
        super().__init__(
            str(cause), retryable=cause.retryable, status=cause.status,
            retry_after_s=cause.retry_after_s,
        )  # fmt: skip
        self.attempts = attempts


@dataclass(frozen=True)
class CallPolicy:
    """How calls are made: answer length, retries and their waits."""

    max_tokens: int = 1024
    retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 60.0
    temperature: float | None = None


@dataclass(frozen=True)
class Call:
    """A finished call: the answer, its usage and cost, its time and how many attempts it took."""

    result: ChatResult
    prompt_tokens: int
    output_tokens: int
    cost_usd: float
    latency_s: float
    attempts: int

    @property
    def text(self) -> str:
        return self.result.text or ""


def worst_case_usd(price: LLM, text: str, max_tokens: int) -> float:
    """The most a call with the prompt ``text`` and answer limit ``max_tokens`` may cost."""
    prompt_tokens = float(count_tokens([text])[0]) + MESSAGE_OVERHEAD_TOKENS
    return price.cost_usd(prompt_tokens, float(max_tokens))


def _wait_s(exc: BackendError, attempt: int, policy: CallPolicy) -> float:
    if exc.retry_after_s is not None:
        return min(max(exc.retry_after_s, 0.0), policy.max_backoff_s)
    wait = policy.backoff_s * 2.0 ** (attempt - 1) * random.uniform(0.5, 1.5)
    return min(wait, policy.max_backoff_s)


def _usage(result: ChatResult, text: str) -> tuple[int, int]:
    p_tok, c_tok = result.prompt_tokens, result.completion_tokens
    if p_tok is None:
        p_tok = int(count_tokens([text])[0])
    if c_tok is None:
        c_tok = int(count_tokens([result.text or ""])[0])
    return p_tok, c_tok


async def call_llm(
    backend: Backend,
    price: LLM,
    text: str,
    *,
    policy: CallPolicy,
    budget: Budget,
    limit: asyncio.Semaphore,
) -> Call:
    """Ask ``backend`` to answer ``text`` (one user message), within the budget and ``limit``
    (the upstream's semaphore, held during each attempt, not during the waits between them).

    Raises
    ------
    BudgetExceededError
        Before an attempt that does not fit the budget.
    CallFailedError
        The last error and the attempts made, when it is not retryable or the retries are
        spent.
    """
    messages = [{"role": "user", "content": text}]
    params: dict[str, object] = {"max_tokens": policy.max_tokens}
    if policy.temperature is not None:
        params["temperature"] = policy.temperature
    worst = worst_case_usd(price, text, policy.max_tokens)
    attempt = 0
    while True:
        attempt += 1
        async with limit:
            budget.reserve(worst)
            cost = 0.0
            start = time.perf_counter()
            try:
                result = await backend.complete(messages, params, prompt=text)
                latency = time.perf_counter() - start
                p_tok, c_tok = _usage(result, text)
                cost = price.cost_usd(p_tok, c_tok)
            except BackendError as exc:
                error = exc
            else:
                return Call(result, p_tok, c_tok, cost, latency, attempt)
            finally:
                budget.settle(worst, cost)
        if not error.retryable or attempt > policy.retries:
            raise CallFailedError(error, attempt) from error
        await asyncio.sleep(_wait_s(error, attempt, policy))
