"""What the gateway does per request, apart from HTTP: route among the LLMs able to serve it,
hold its worst-case cost (:mod:`~mixllm.serve.billing`), call with fallbacks, relay and charge
the answer; feedback and checkpoints are :mod:`~mixllm.serve.learning`'s.
:mod:`mixllm.serve.app` wraps it in FastAPI.

The router decides, the backends answer, and the store makes every decision durable before
its answer is sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from mixllm.clock import Clock, SystemClock
from mixllm.data.tokens import count_tokens
from mixllm.errors import BackendError
from mixllm.policy import LoadTracker
from mixllm.router import Router
from mixllm.serve._redis import RedisLink
from mixllm.serve.backends import Backend
from mixllm.serve.billing import Billing, Plan
from mixllm.serve.capabilities import Capabilities, capable
from mixllm.serve.chat import ChatResult, Chunk, Usage
from mixllm.serve.errors import (
    CapabilityError,
    RateLimitError,
    UnknownModelError,
    check_cost_cap,
)
from mixllm.serve.fallback import Attempt, CircuitBreaker, SkippedLLMError, call_with_fallbacks
from mixllm.serve.learning import Learning
from mixllm.serve.metrics import Metrics
from mixllm.serve.pacing import Pacing, WallClock, check_targets, request_lam, start_lam
from mixllm.serve.schemas import ChatRequest
from mixllm.serve.settings import ApiKey, Profile, Settings
from mixllm.serve.shadow import Shadow
from mixllm.serve.spend import RateLimiter
from mixllm.serve.store import Store
from mixllm.serve.streaming import OpenStream, carries_answer
from mixllm.types import LLM, Decision, resolve_llm

__all__ = ["Answer", "Gateway"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """A routed request's outcome: the decision, who answered, each attempt, and (not
    streamed) the answer and what it was charged."""

    decision: Decision
    llm: str
    attempts: tuple[Attempt, ...]
    result: ChatResult | None = None
    charged_usd: float | None = None


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
        redis: RedisLink | None = None,
    ) -> None:
        self.router = router
        self.redis = redis  # replicas share their load, breakers and rate limits through it
        self.backends = dict(backends)
        self.store = store
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.metrics = Metrics()
        tracker = router.load_tracker or (LoadTracker() if redis is None else redis.load_tracker())
        self.tracker: LoadTracker = tracker
        router.set_params(load_tracker=tracker)
        self.breakers: dict[str, CircuitBreaker] = {}
        self.limiter = (redis.rate_limiter if redis else RateLimiter)(clock=self.clock)
        self.billing = Billing(
            store, settings, self.metrics, price=self._price, capabilities=self.capabilities
        )
        check_targets(router, settings)
        self.pacing = Pacing(settings, store, self.metrics, clock=clock or WallClock(),
                             start_lam=lambda p: start_lam(router, p))  # fmt: skip
        self.billing.pacing = self.pacing
        self.backoff: dict[str, float] = {}  # LLM -> clock time until which it is left alone
        self.learning = Learning(router, store, settings, self.metrics, state_dir=state_dir)
        self._background: set[asyncio.Task[None]] = set()
        self.shadow = Shadow(self)  # after the backends: it checks its judge's

    # -- routing ---------------------------------------------------------------------------------
    def profile(self, model: str) -> Profile:
        """The routing options of a request's ``model`` name: ``mixllm``, a profile, or one
        served LLM's name, full or unambiguous short (that LLM alone)."""
        model = resolve_llm(model, self.model_names(), what="model")
        if model == "mixllm":
            return self.settings.profiles.get("mixllm", Profile())
        if model in self.settings.profiles:
            return self.settings.profiles[model]
        return Profile(candidates=(model,))

    def model_names(self) -> list[str]:
        """What a request's ``model`` may be: ``mixllm``, the profiles, the served LLMs."""
        served = [m for m in self.router.llms if m in self.backends]
        return list(dict.fromkeys(["mixllm", *sorted(self.settings.profiles), *sorted(served)]))

    def _price(self, llm: str) -> LLM | None:
        return self.router.prices.get(llm)

    def capabilities(self, llm: str) -> Capabilities:
        """What ``llm``'s backend declared (everything, when it declared nothing)."""
        caps = getattr(self.backends.get(llm), "capabilities", None)
        return caps if isinstance(caps, Capabilities) else Capabilities()

    async def plan(
        self, body: ChatRequest, key: ApiKey | None, *, session: str | None = None
    ) -> Plan:
        """Route a chat request and hold its worst-case cost on the key: rate limits, the
        candidates able to serve it, the router's choice (or the conversation's LLM), the
        answer's token limit, the reservation, and the durable decision."""
        if key is not None and key.requests_per_minute:
            self._rate(key, "requests", 1, key.requests_per_minute)
        options = body.mixllm.model_dump(exclude_none=True) if body.mixllm else {}
        profile = self.profile(body.model)
        prompt = body.prompt()
        media = self.settings.tokens_per_image * body.media_parts()
        wanted = options.get("candidates") or profile.candidates
        windows = any(self.capabilities(m).context_tokens for m in self.backends)
        # the prompt's tokens: counted here if a context window is checked, else by the router
        counted = float(count_tokens([prompt])[0]) + media if windows else None
        able = self._able(body, wanted, counted or 0.0)
        scopes = self.pacing.scopes(profile, key)
        lam = request_lam(self.router, options, profile, self.pacing.lam(scopes))
        max_cost = options.get("max_cost_usd", profile.max_cost_usd)
        decision = self.router.route(prompt, lam=lam, candidates=able, max_cost_usd=max_cost,
                                     explore_scale=self.shadow.explore_scale)  # fmt: skip
        if max_cost is not None:  # refused, or only LLMs under the cap to stay on or fall back to
            decision = check_cost_cap(decision, max_cost)
        routed = decision.prompt_tokens
        if counted is not None:
            prompt_tokens = counted
        elif math.isfinite(routed):
            prompt_tokens = routed + media
        else:
            prompt_tokens = float(count_tokens([prompt])[0]) + media
        sid = session or options.get("session") or body.conversation_id(key.name if key else "")
        decision, stayed = await self._conversation(body, decision, sid, key)
        self.metrics.decisions.labels(decision.llm).inc()
        answer = self.billing.answer_tokens(decision.llm, body.answer_cap())
        plan = Plan(
            decision=decision, key=key, order=tuple(self.fallback_order(decision)),
            messages=body.messages_out(), params=body.upstream_params(), prompt=prompt,
            prompt_tokens=prompt_tokens, answer_tokens=answer,
            cap_field="max_completion_tokens" if body.max_completion_tokens else "max_tokens",
            session=sid, stayed=stayed,
        )  # fmt: skip
        tokens = prompt_tokens + answer
        if key is not None and key.tokens_per_minute:
            self._rate(key, "tokens", tokens, key.tokens_per_minute)
        try:
            await self.pacing.hold(plan, scopes, lambda llm: self.billing.worst(plan, llm))
            await self.billing.reserve(plan)
        except BaseException:
            if key is not None and key.tokens_per_minute:  # refused: nothing was sent
                self.limiter.give_back(f"{key.name}/tokens", tokens)
            await self.billing.refund(plan)  # the pacing holds
            raise
        try:
            await run_in_threadpool(
                self.store.record_decision, plan.decision, key_id=key.name if key else "",
                request_model=body.model, session_id=sid,
                prompt=prompt if self.settings.store_prompts else None,
            )  # fmt: skip
        except BaseException:
            await self.billing.refund(plan)
            raise
        return plan

    def _able(
        self, body: ChatRequest, wanted: Sequence[str] | None, prompt_tokens: float
    ) -> list[str]:
        """The served candidates that have what the request needs (400 when none has)."""
        served = [m for m in self.router.llms if m in self.backends]
        if wanted is not None:
            wanted = [resolve_llm(m, served, what="candidate LLM") for m in wanted]
            served = [m for m in served if m in wanted]
        if not served:
            raise UnknownModelError("no LLM is served: the gateway has no backends")
        needs, room = body.needs(), body.answer_cap() or 1
        able, lacking = [], {}
        for llm in served:
            caps = self.capabilities(llm)
            why = capable(caps, needs, prompt_tokens=prompt_tokens, answer_tokens=room)
            if why is None:
                able.append(llm)
            else:
                lacking[llm] = why
        if not able:
            asked = ", ".join(f"{n} ({w})" for n, w in needs.items()) or "a larger context"
            raise CapabilityError(
                f"no LLM can serve this request: it needs {asked}; "
                + "; ".join(f"{m} lacks {w}" for m, w in lacking.items())
            )
        return able

    def _rate(self, key: ApiKey, what: str, amount: float, per_minute: int) -> None:
        wait = self.limiter.take(f"{key.name}/{what}", amount, per_minute=per_minute)
        if wait > 0:
            raise RateLimitError(
                f"this key may send {per_minute} {what} per minute; retry in {wait:.1f} s",
                retry_after_s=wait,
            )

    async def _conversation(
        self, body: ChatRequest, decision: Decision, sid: str, key: ApiKey | None
    ) -> tuple[Decision, bool]:
        """Keep a conversation on the LLM that answered its last turn unless another one's
        score beats it by more than ``session_margin``; a tool-call continuation never
        switches. Returns the decision to follow and whether it stayed."""
        if not any(m.role == "assistant" for m in body.messages):
            return decision, False  # a first turn
        previous = await run_in_threadpool(
            self.store.session_llm, sid, key_id=key.name if key else ""
        )
        if previous is None or previous == decision.llm or previous not in decision.scores:
            return decision, False
        gap = decision.scores[decision.llm] - decision.scores[previous]
        if not (body.tool_continuation() or gap <= self.settings.session_margin):
            return decision, False
        return replace(decision, llm=previous), True

    def fallback_order(self, decision: Decision) -> list[str]:
        """The chosen LLM, then the other candidates by score (the runner-up first)."""
        rest = sorted(
            (m for m in decision.scores if m != decision.llm),
            key=lambda m: (-decision.scores[m], m),
        )
        return [decision.llm, *rest]

    # -- calling the LLMs ------------------------------------------------------------------------
    def _params(self, plan: Plan, llm: str, *, stream: bool) -> dict[str, Any]:
        params = dict(plan.params)
        params.pop("max_tokens", None)
        params.pop("max_completion_tokens", None)
        params[plan.cap_field] = self.billing.answer_tokens(llm, plan.answer_tokens)
        if stream:  # always ask for usage: a stream is charged what it used
            params["stream_options"] = {"include_usage": True}
        return params

    async def _ready(self, plan: Plan, llm: str) -> Backend:
        backend = self.backends.get(llm)
        if backend is None:  # removed by the admin API since the decision
            raise SkippedLLMError(f"{llm} has left the pool")
        wait = self.backoff.get(llm, 0.0) - self.clock.now()
        if wait > 0:
            raise SkippedLLMError(
                f"{llm}: not tried (asked to wait {wait:.1f} s more)", retry_after_s=wait
            )
        await self.billing.cover(plan, llm)
        return backend

    def _note_failure(self, llm: str, exc: BaseException) -> None:
        if (
            isinstance(exc, BackendError)
            and exc.retry_after_s
            and not isinstance(exc, SkippedLLMError)
        ):
            self.backoff[llm] = self.clock.now() + exc.retry_after_s

    async def complete(self, plan: Plan) -> Answer:
        """Call the chosen LLM, falling back on retryable failures, and charge the answer."""

        async def call(llm: str) -> ChatResult:
            backend = await self._ready(plan, llm)
            params = self._params(plan, llm, stream=False)
            self._started(llm)
            started = self.clock.now()
            tokens: int | None = None
            try:
                result = await backend.complete(plan.messages, params, prompt=plan.prompt)
                tokens = result.completion_tokens
                return result
            except BaseException as exc:
                self._note_failure(llm, exc)
                raise
            finally:
                self._finished(llm, self.clock.now() - started, output_tokens=tokens)

        llm, result, attempts = await self._with_fallbacks(plan, call)
        usage = None
        if result.prompt_tokens is not None and result.completion_tokens is not None:
            usage = Usage(result.prompt_tokens, result.completion_tokens, result.cached_tokens)
        cost = await self.billing.settle(plan, llm, usage, result.usage_problem, result.text or "")
        return Answer(plan.decision, llm, tuple(attempts), result, cost)

    async def open_stream(self, plan: Plan) -> tuple[Answer, OpenStream]:
        """Start a streamed answer: fall back until an LLM has sent a chunk with an answer in
        it (no fallback after that: the client is already reading)."""

        async def first(llm: str) -> OpenStream:
            backend = await self._ready(plan, llm)
            params = self._params(plan, llm, stream=True)
            stream = backend.stream(plan.messages, params, prompt=plan.prompt).__aiter__()
            self._started(llm)
            started = self.clock.now()
            head: list[Chunk] = []
            try:
                while not head or not carries_answer(head[-1]):
                    head.append(await stream.__anext__())
            except StopAsyncIteration:
                self._finished(llm, self.clock.now() - started)
                raise BackendError(f"{llm}: upstream returned no answer", retryable=True) from None
            except BaseException as exc:
                self._finished(llm, self.clock.now() - started)
                self._note_failure(llm, exc)
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:  # e.g. cancelled by the deadline: free its connection
                    self.background(aclose())
                raise
            return OpenStream(self, plan, llm, started, head, stream)

        llm, stream, attempts = await self._with_fallbacks(plan, first)
        return Answer(plan.decision, llm, tuple(attempts)), stream

    async def _with_fallbacks(self, plan: Plan, call: Any) -> Any:
        for llm in plan.order:
            self.breakers.setdefault(llm, self._breaker(llm))
        llm, result, attempts = await call_with_fallbacks(
            plan.order, call, breakers=self.breakers, max_attempts=self.settings.max_attempts,
            deadline_s=self.settings.deadline_s, clock=self.clock,
        )  # fmt: skip
        for a in attempts:
            if not a.ok:
                self.metrics.fallbacks.labels(a.llm).inc()
        self.metrics.answers.labels(llm).inc()
        return llm, result, attempts

    def _started(self, llm: str) -> None:
        self.tracker.started(llm)
        self.metrics.in_flight.labels(llm).inc()

    def _finished(self, llm: str, seconds: float, *, output_tokens: int | None = None) -> None:
        """Release ``llm``'s load; an answer's length with its time teaches the tracker how
        long answers take per token."""
        self.tracker.finished(
            llm,
            latency_s=seconds,
            output_tokens=None if output_tokens is None else float(output_tokens),
        )
        self.metrics.in_flight.labels(llm).dec()
        self.metrics.upstream_latency.labels(llm).observe(seconds)

    def _breaker(self, llm: str) -> CircuitBreaker:
        s, redis = self.settings, self.redis
        make = CircuitBreaker if redis is None else partial(redis.breaker, llm)
        return make(
            failure_threshold=s.breaker_failures, reset_after_s=s.breaker_reset_s, clock=self.clock
        )

    # -- lifecycle -------------------------------------------------------------------------------
    def retire(self, llm: str, backend: Backend, *, grace_s: float = 60.0) -> None:
        """Close a removed LLM's backend once its requests in flight have finished (or after
        ``grace_s``); call from the event loop."""

        async def close_when_idle() -> None:
            waited = 0.0
            while self.tracker.local_in_flight(llm) > 0 and waited < grace_s:
                await asyncio.sleep(0.05)
                waited += 0.05
            await backend.aclose()

        self.background(close_when_idle())

    async def aclose(self) -> None:
        """Close the backends' connections (those being retired too)."""
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(b.aclose() for b in self.backends.values()), return_exceptions=True)

    def background(self, work: Any) -> asyncio.Task[None]:
        """Run ``work`` (a coroutine) on the event loop, kept until it ends and awaited on
        close (a stream's charge when its client went away, a shadow call); its task."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
