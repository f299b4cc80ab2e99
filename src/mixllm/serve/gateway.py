"""What the gateway does per request, apart from HTTP: route, call with fallbacks, record,
learn from feedback, checkpoint. :mod:`mixllm.serve.app` wraps it in FastAPI.

The router decides, the backends answer, the store makes every decision and every feedback
durable before it is acknowledged, and checkpoints save the router so that a restart resumes
from the last one plus the feedback stored after it (:func:`restore_router`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from mixllm.clock import Clock, SystemClock
from mixllm.errors import BackendError, ConfigError, UnknownDecisionError
from mixllm.policy import LoadTracker
from mixllm.router import Router
from mixllm.serve.backends import Backend, ChatResult
from mixllm.serve.fallback import Attempt, CircuitBreaker, call_with_fallbacks
from mixllm.serve.metrics import Metrics
from mixllm.serve.settings import ApiKey, Profile, Settings
from mixllm.serve.store import Store
from mixllm.types import Decision, Feedback

__all__ = ["Answer", "Gateway", "SpendLimitError", "restore_router"]

logger = logging.getLogger(__name__)
KEEP_CHECKPOINTS = 2


class SpendLimitError(ConfigError):
    """A key's spending limit would be passed by this request."""


@dataclass(frozen=True)
class Answer:
    """A routed request's outcome: the decision, who answered, and each attempt."""

    decision: Decision
    llm: str
    attempts: tuple[Attempt, ...]
    result: ChatResult | None = None


class Gateway:
    """The router, its backends and store, with the policies of the settings."""

    def __init__(
        self,
        router: Router,
        backends: Mapping[str, Backend],
        store: Store,
        settings: Settings,
        *,
        state_dir: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.router = router
        self.backends = dict(backends)
        self.store = store
        self.settings = settings
        self.state_dir = state_dir
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        if router.load_tracker is None:
            router.load_tracker = LoadTracker()
        self.tracker: LoadTracker = router.load_tracker
        self.breakers: dict[str, CircuitBreaker] = {}
        self._learn_lock = threading.Lock()  # feedback applied and checkpoints taken in turn
        self._applied_seq = _last_seq(store)
        self._since_checkpoint = 0
        self._retiring: set[asyncio.Task[None]] = set()

    # -- routing -------------------------------------------------------------------------------
    def profile(self, model: str) -> Profile:
        """The routing options of a request's ``model`` name: ``mixllm``, a profile, or one
        LLM's name (that LLM alone)."""
        if model == "mixllm":
            return self.settings.profiles.get("mixllm", Profile())
        if model in self.settings.profiles:
            return self.settings.profiles[model]
        if model in self.router.llms:
            return Profile(candidates=(model,))
        known = ["mixllm", *sorted(self.settings.profiles), *sorted(self.router.llms)]
        raise UnknownModelError(f"unknown model {model!r}; known: {known}")

    def decide(
        self, prompt: str, profile: Profile, options: Mapping[str, Any], key: ApiKey | None
    ) -> Decision:
        """Route ``prompt``; request options override the profile's."""
        lam = options.get("lam", profile.lam)
        wanted = options.get("candidates") or profile.candidates
        served = [m for m in self.router.llms if m in self.backends]
        if wanted is not None:
            unknown = sorted(set(wanted) - set(self.router.llms))
            if unknown:
                raise UnknownModelError(
                    f"unknown candidate LLMs {unknown}; known: {sorted(self.router.llms)}"
                )
            served = [m for m in wanted if m in self.backends]
        if not served:
            raise BackendError("no backend serves any of the candidate LLMs", retryable=False)
        max_cost = options.get("max_cost_usd", profile.max_cost_usd)
        decision = self.router.route(prompt, lam=lam, candidates=served, max_cost_usd=max_cost)
        self.metrics.decisions.labels(decision.llm).inc()
        return decision

    def fallback_order(self, decision: Decision) -> list[str]:
        """The chosen LLM, then the other candidates by score (the runner-up first)."""
        rest = sorted(
            (m for m in decision.scores if m != decision.llm),
            key=lambda m: (-decision.scores[m], m),
        )
        return [decision.llm, *rest]

    async def record(self, decision: Decision, key: ApiKey | None, model: str) -> None:
        """Make the decision durable (feedback on it must survive a crash)."""
        await run_in_threadpool(
            self.store.record_decision, decision, key_id=key.name if key else "",
            request_model=model,
        )  # fmt: skip

    async def reserve(self, key: ApiKey | None, decision: Decision) -> float:
        """Charge the key the chosen LLM's predicted cost, atomically within its limit."""
        cost = _usd(decision.predicted_cost_usd.get(decision.llm, 0.0))
        if key is None:
            return 0.0
        ok = await run_in_threadpool(
            self.store.add_spend, key.name, cost, limit_usd=key.spend_limit_usd
        )
        if not ok:
            raise SpendLimitError(
                f"key {key.name!r} would pass its spending limit of "
                f"${key.spend_limit_usd:g} (this request: ~${cost:.6f})"
            )
        return cost

    async def complete(
        self, decision: Decision, messages: list[dict[str, Any]], params: Mapping[str, Any],
        prompt: str, *, key: ApiKey | None = None, reserved_usd: float = 0.0,
    ) -> Answer:  # fmt: skip
        """Call the chosen LLM, falling back on retryable failures; the key is charged the
        answer's cost instead of the reservation."""

        async def call(llm: str) -> ChatResult:
            return await self._timed(
                llm, self._backend(llm).complete(messages, params, prompt=prompt)
            )

        llm, result, attempts = await self._with_fallbacks(decision, call)
        cost = await self._settle(decision, llm, result)
        if key is not None:
            await run_in_threadpool(self.store.settle_spend, key.name, reserved_usd, cost)
        return Answer(decision, llm, tuple(attempts), result)

    async def open_stream(
        self, decision: Decision, messages: list[dict[str, Any]], params: Mapping[str, Any],
        prompt: str,
    ) -> tuple[Answer, str, AsyncIterator[str]]:  # fmt: skip
        """Start a streamed answer: fall back until an LLM has produced its first delta (no
        fallback after that: the client is already reading)."""

        async def first(llm: str) -> tuple[str, AsyncIterator[str]]:
            stream = self._backend(llm).stream(messages, params, prompt=prompt).__aiter__()
            self._started(llm)
            started = time.perf_counter()
            try:
                delta = await stream.__anext__()
            except StopAsyncIteration:
                self._finished(llm, time.perf_counter() - started)
                raise BackendError(f"{llm}: upstream returned no answer", retryable=True) from None
            except BaseException:
                self._finished(llm, time.perf_counter() - started)
                raise
            return delta, _closing(self, decision, llm, started, stream)

        llm, (delta, rest), attempts = await self._with_fallbacks(decision, first)
        return Answer(decision, llm, tuple(attempts)), delta, rest

    def _backend(self, llm: str) -> Backend:
        backend = self.backends.get(llm)
        if backend is None:  # removed by the admin API since the decision
            raise BackendError(f"{llm} has left the pool", retryable=True)
        return backend

    async def refund(self, key: ApiKey | None, reserved_usd: float) -> None:
        """Give back a reservation when no answer came."""
        if key is not None and reserved_usd > 0:
            await run_in_threadpool(self.store.settle_spend, key.name, reserved_usd, 0.0)

    async def _with_fallbacks(self, decision: Decision, call: Any) -> Any:
        order = self.fallback_order(decision)
        for llm in order:
            self.breakers.setdefault(llm, self._breaker())
        llm, result, attempts = await call_with_fallbacks(
            order, call, breakers=self.breakers, max_attempts=self.settings.max_attempts,
            deadline_s=self.settings.deadline_s, clock=self.clock,
        )  # fmt: skip
        for a in attempts:
            if not a.ok:
                self.metrics.fallbacks.labels(a.llm).inc()
        self.metrics.answers.labels(llm).inc()
        return llm, result, attempts

    async def _timed(self, llm: str, work: Any) -> ChatResult:
        self._started(llm)
        started = time.perf_counter()
        tokens: int | None = None
        try:
            result: ChatResult = await work
            tokens = result.completion_tokens
            return result
        finally:
            self._finished(llm, time.perf_counter() - started, output_tokens=tokens)

    def _started(self, llm: str) -> None:
        self.tracker.started(llm)
        self.metrics.in_flight.labels(llm).inc()

    def _finished(self, llm: str, seconds: float, *, output_tokens: int | None = None) -> None:
        """Release ``llm``'s load; an answer's length with its time teaches the tracker how
        long answers take per token (streams carry no usage, so they teach only the wait)."""
        self.tracker.finished(
            llm,
            latency_s=seconds,
            output_tokens=None if output_tokens is None else float(output_tokens),
        )
        self.metrics.in_flight.labels(llm).dec()
        self.metrics.upstream_latency.labels(llm).observe(seconds)

    def _breaker(self) -> CircuitBreaker:
        s = self.settings
        return CircuitBreaker(
            failure_threshold=s.breaker_failures, reset_after_s=s.breaker_reset_s, clock=self.clock
        )

    async def _settle(self, decision: Decision, llm: str, result: ChatResult | None) -> float:
        cost = self.cost_of(decision, llm, result)
        self.metrics.spend.labels(llm).inc(cost)
        await run_in_threadpool(
            self.store.set_answer, decision.decision_id, answered_by=llm, cost_usd=cost
        )
        return cost

    def cost_of(self, decision: Decision, llm: str, result: ChatResult | None) -> float:
        """USD of an answer from its token usage and the LLM's prices (else as predicted)."""
        price = self.router.prices_.get(llm)
        if result is None or price is None or result.completion_tokens is None:
            return _usd(decision.predicted_cost_usd.get(llm, 0.0))
        prompt_tokens = result.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = (
                int(decision.prompt_tokens)
                if decision.prompt_tokens == decision.prompt_tokens
                else 0
            )
        return (
            prompt_tokens * price.price_in_per_mtok
            + result.completion_tokens * price.price_out_per_mtok
        ) / 1e6

    # -- feedback ------------------------------------------------------------------------------
    def feedback(self, decision_id: str, feedback: Feedback) -> str:
        """Store ``feedback`` durably, then learn from it: ``"applied"``, ``"duplicate"``
        (already stored: nothing changes) or ``"recorded"`` (stored, nothing to learn: its
        LLM has left the pool). Runs in a worker thread."""
        decision = self.store.get_decision(decision_id)
        if decision is None:
            raise UnknownDecisionError(
                f"unknown response id {decision_id!r}; expected the id of a response "
                "of this gateway"
            )
        with self._learn_lock:
            seq = self.store.record_feedback(decision_id, feedback)
            if seq is None:
                self.metrics.feedback.labels("duplicate").inc()
                return "duplicate"
            self.router.remember([decision_id])
            applied = self.router.learn_one(decision, feedback)
            self._applied_seq = max(self._applied_seq, seq)
            self._since_checkpoint += 1
            due = self._since_checkpoint >= self.settings.checkpoint_every
        if due and self.state_dir is not None:
            self.checkpoint()
        outcome = "applied" if applied else "recorded"
        self.metrics.feedback.labels(outcome).inc()
        return outcome

    def checkpoint(self) -> Path | None:
        """Save the router and record which feedback it includes; ``None`` without a state
        folder. Older checkpoints beyond the last two are deleted."""
        if self.state_dir is None:
            return None
        with self._learn_lock:
            folder = self.state_dir / "checkpoints"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"ckpt-{time.time_ns()}"
            self.router.save(path)
            self.store.record_checkpoint(str(path), self._applied_seq)
            self._since_checkpoint = 0
        for old in sorted(folder.glob("ckpt-*"))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("checkpoint %s (feedback up to #%d)", path.name, self._applied_seq)
        return path

    def retire(self, llm: str, backend: Backend, *, grace_s: float = 60.0) -> None:
        """Close a removed LLM's backend once its requests in flight have finished (or after
        ``grace_s``); call from the event loop."""

        async def close_when_idle() -> None:
            waited = 0.0
            while self.tracker.in_flight(llm) > 0 and waited < grace_s:
                await asyncio.sleep(0.05)
                waited += 0.05
            await backend.aclose()

        task = asyncio.get_running_loop().create_task(close_when_idle())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        """Close the backends' connections (those being retired too)."""
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await asyncio.gather(*(b.aclose() for b in self.backends.values()), return_exceptions=True)


class UnknownModelError(ConfigError):
    """A request named a model (profile or LLM) the gateway does not serve."""


async def _closing(
    gw: Gateway, decision: Decision, llm: str, started: float, stream: AsyncIterator[str]
) -> AsyncIterator[str]:
    """The rest of a stream; the LLM's load is released when it ends, however it ends, and a
    finished answer is recorded (at its predicted cost: streams carry no usage)."""
    try:
        async for delta in stream:
            yield delta
    finally:
        gw._finished(llm, time.perf_counter() - started)
    await gw._settle(decision, llm, None)


def _usd(value: float) -> float:
    """A cost to charge: finite and >= 0 (an unknown prediction charges nothing)."""
    x = float(value)
    return x if math.isfinite(x) and x > 0 else 0.0


def _last_seq(store: Store) -> int:
    """The last feedback seq the served router holds: the last checkpoint's, or that of the
    feedback stored after it, which :func:`restore_router` learned again. (The checkpoint's
    alone would make the next checkpoint claim less than it holds, and the restart after it
    learn that feedback twice once the router has forgotten those decisions.)"""
    last = store.last_checkpoint()
    seq = 0 if last is None else int(last[1])
    later = store.feedback_since(seq)
    return later[-1][0] if later else seq


def restore_router(router_dir: str | Path, store: Store) -> Router:
    """The router to serve: the last checkpoint if the store has one (else ``router_dir``),
    with the feedback stored after it learned again."""
    last = store.last_checkpoint()
    path, seq = (Path(last[0]), int(last[1])) if last else (Path(router_dir), 0)
    if last and not path.is_dir():
        raise ConfigError(
            f"the store's last checkpoint {str(path)!r} is missing; expected a router folder"
        )
    router = Router.load(path)
    replayed = 0
    for _, decision_id, feedback in store.feedback_since(seq):
        decision = store.get_decision(decision_id)
        if decision is None:
            continue
        router.remember([decision_id])
        replayed += router.learn_one(decision, feedback)
    logger.info("restored %s and learned %d feedback stored after it", path, replayed)
    return router
