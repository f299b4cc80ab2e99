"""Shadow traffic: a share of the chat requests is also sent, once the client has its whole
answer, to one other LLM, picked for what the router would learn from it; the shadow answer is
graded (by a judge LLM, or against the served answer) and learned like client feedback.

The LLM picked is the one with the widest uncertainty (the predictor's
:attr:`~mixllm.types.Prediction.uncertainty` for the query) among those that have a backend,
can serve the request (the gateway's capability filter), did not answer it and whose circuit is
closed; a predictor without uncertainty picks one of them at random (seeded). With a judge, the
LLM that answered is a candidate too: when it is the one picked, the judge grades the served
answer itself (no other LLM is called) and that grade is learned for it, so an LLM the clients
are sent to keeps learning without their feedback. Each call, the
shadow answer's and the judge's, first holds its worst case on the day's shadow budget
(:meth:`Store.reserve_shadow_spend <mixllm.serve.store.Store.reserve_shadow_spend>`, kept in the
store so a restart does not reset it) and then charges what it used.

The shadow call and its feedback are stored (:meth:`Learning.shadow
<mixllm.serve.learning.Learning.shadow>`) before they are learned, so a restart learns them
again. The client never waits for any of it: it runs in :meth:`Gateway.background
<mixllm.serve.gateway.Gateway.background>`, at most ``max_in_flight`` at once (more are dropped
and counted), and its errors are logged and counted, never raised.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mixllm.data.tokens import count_tokens
from mixllm.errors import ConfigError, DataError
from mixllm.serve.billing import Plan
from mixllm.serve.capabilities import capable
from mixllm.serve.chat import ChatResult
from mixllm.serve.schemas import ChatRequest
from mixllm.serve.spend import charge, worst_case_usd
from mixllm.types import LLM, Feedback

if TYPE_CHECKING:
    from mixllm.serve.gateway import Gateway

__all__ = ["ANSWERS", "OUTCOMES", "Shadow"]

logger = logging.getLogger(__name__)

#: The outcomes counted by ``mixllm_shadow_requests_total``.
OUTCOMES = ("learned", "unknown_quality", "over_budget", "dropped", "failed", "no_candidate")
#: Its ``answer`` label: what was graded, a shadow answer or the served one ('' when none).
ANSWERS = ("shadow", "served")
_DONE = b"data: [DONE]\n\n"


class _OverBudgetError(Exception):
    """A shadow call's worst case does not fit in the day's shadow budget."""


@dataclass
class _Job:
    """One shadowed request: what the client asked and was answered."""

    plan: Plan
    needs: Mapping[str, str]
    served_by: str
    served: str
    day: str


class Shadow:
    """The shadow traffic of one gateway (its ``[shadow]`` settings); a no-op when
    ``share`` is 0. ``wall`` gives Unix seconds (the shadow budget's UTC day)."""

    def __init__(self, gw: Gateway, *, wall: Callable[[], float] = time.time) -> None:
        self.gw, self.settings, self.wall = gw, gw.settings.shadow, wall
        self._rng = random.Random(self.settings.seed)
        self._tasks: set[asyncio.Task[None]] = set()
        self.template = ""
        judge = self.settings.judge
        if judge is not None and judge not in gw.backends:
            raise ConfigError(
                f"[shadow] judge={judge!r} is not an upstream; expected one of "
                f"{sorted(gw.backends)}"
            )
        if self.settings.on:
            from mixllm import grade

            if self.settings.judge_template is not None:
                self.template = grade.load_template(self.settings.judge_template)
            else:
                self.template = grade.DEFAULT_JUDGE_TEMPLATE

    @property
    def explore_scale(self) -> float:
        """What the router's bonus for LLMs added without data is scaled by on client requests
        (:meth:`Router.route <mixllm.Router.route>`): the share of served answers that shadow
        traffic grades. Off, 1 (the clients' feedback is what teaches a newcomer); with a judge,
        ``share`` (the judge grades a served answer when the newcomer that gave it is the most
        uncertain LLM, so exploring on clients teaches only that share of the time); without
        one, 0 (the grader needs another LLM's answer: a newcomer is taught by shadow calls to
        it, never by serving clients)."""
        if not self.settings.on:
            return 1.0
        return float(self.settings.share) if self.settings.judge is not None else 0.0

    # -- hooks the app calls once the client has its answer --------------------------------------
    def task(self, body: ChatRequest, plan: Plan, llm: str, result: ChatResult | None) -> Any:
        """A response's background task that shadows the request (``None`` when off)."""
        if not self.settings.on or result is None:
            return None
        return BackgroundTask(self._after, body, plan, llm, result.text)

    def follow(
        self, parts: AsyncIterator[bytes], body: ChatRequest, plan: Plan, llm: str, stream: Any
    ) -> AsyncIterator[bytes]:
        """A streamed response's ``parts``, relayed, then the request shadowed if the stream
        ended with its answer complete (``[DONE]``); ``stream`` is its
        :class:`~mixllm.serve.streaming.OpenStream`. ``parts`` itself when shadowing is off."""
        return self._follow(parts, body, plan, llm, stream) if self.settings.on else parts

    async def _follow(
        self, parts: AsyncIterator[bytes], body: ChatRequest, plan: Plan, llm: str, stream: Any
    ) -> AsyncIterator[bytes]:
        last = b""
        try:
            async for part in parts:
                last = part
                yield part
        finally:  # the client went away: the relay is closed now, not when it is collected
            aclose = getattr(parts, "aclose", None)
            if aclose is not None:
                await aclose()
        if last == _DONE:
            await self._after(body, plan, llm, stream.text())

    async def _after(self, body: ChatRequest, plan: Plan, llm: str, served: str | None) -> None:
        if not served or self._rng.random() >= self.settings.share:
            return  # a tool call or refusal without text cannot be graded against
        if len(self._tasks) >= self.settings.max_in_flight:
            self._count("", "dropped", "")
            return
        day = dt.datetime.fromtimestamp(self.wall(), dt.timezone.utc).date().isoformat()
        job = _Job(plan, body.needs(), llm, served, day)
        task = self.gw.background(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def in_flight(self) -> int:
        """Shadow calls running now."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait until the shadow calls in flight have ended (tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- one shadow call -----------------------------------------------------------------------
    async def _run(self, job: _Job) -> None:
        llm, answer = "", ""
        try:
            llm = await self._pick(job)
            if not llm:
                self._count("", "no_candidate", "")
                return
            if llm == job.served_by:
                answer = "served"
                self._count(llm, await self._grade_served(job), answer)
            else:
                answer = "shadow"
                self._count(llm, await self._shadow(job, llm), answer)
        except _OverBudgetError:
            self._count(llm, "over_budget", answer)
        except Exception as exc:  # never raised into a request: logged (rate-limited), counted
            logger.warning("shadow call to %s failed: %s: %s", llm or "?", type(exc).__name__, exc)
            self._count(llm, "failed", answer)

    async def _pick(self, job: _Job) -> str:
        """The candidate with the widest uncertainty for the query ('' when none): an eligible
        other LLM, or with a judge the one that answered (its answer is graded, no call)."""
        gw, room = self.gw, self.settings.max_tokens
        eligible = [
            m for m in gw.router.llms
            if m in gw.backends and m != job.served_by
            and (m not in gw.breakers or gw.breakers[m].state == "closed")
            and capable(gw.capabilities(m), job.needs, prompt_tokens=job.plan.prompt_tokens,
                        answer_tokens=room) is None
        ]  # fmt: skip
        if self.settings.judge is not None and job.served_by in gw.router.llms:
            eligible.append(job.served_by)
        if not eligible:
            return ""
        pred = gw.router.predict([job.plan.prompt])  # on the loop, like a route: sub-ms
        if pred.uncertainty is None:
            return self._rng.choice(sorted(eligible))
        width = dict(zip(pred.llms, pred.uncertainty[0].tolist()))
        known = sorted(m for m in eligible if m in width)
        return max(known, key=lambda m: width[m]) if known else ""

    async def _grade_served(self, job: _Job) -> str:
        """The judge grades the served answer (no reference); the grade is stored as a shadow
        decision of the LLM that answered and learned. Its outcome."""
        gw, plan = self.gw, job.plan
        quality = await self._judge(job, job.served, reference=None)
        if quality is None:
            return "unknown_quality"  # nothing bought but the verdict: nothing to store
        decision = replace(plan.decision, llm=job.served_by, decision_id=uuid.uuid4().hex)
        learned = await run_in_threadpool(
            gw.learning.shadow, decision, Feedback(quality=quality),
            shadow_of=plan.decision.decision_id, cost_usd=0.0, served=True,
            prompt=plan.prompt if gw.settings.store_prompts else None,
        )  # fmt: skip
        if not learned:
            logger.warning(
                "grade of %s's answer stored, not learned: it left the pool", job.served_by
            )
            return "failed"
        return "learned"

    async def _shadow(self, job: _Job, llm: str) -> str:
        gw, plan = self.gw, job.plan
        price = gw.router.prices.get(llm)
        caps = gw.capabilities(llm)
        room = min(self.settings.max_tokens, caps.max_output_tokens or self.settings.max_tokens)
        worst = worst_case_usd(price, prompt_tokens=plan.prompt_tokens, answer_tokens=room)
        await self._reserve(job.day, worst)
        params = {k: v for k, v in plan.params.items() if k not in _NOT_SHADOWED}
        params[plan.cap_field] = room
        started = gw.clock.now()
        gw.tracker.started(llm)
        tokens: float | None = None
        try:
            result = await asyncio.wait_for(
                gw.backends[llm].complete(plan.messages, params, prompt=plan.prompt),
                gw.settings.deadline_s,
            )
            tokens = None if result.completion_tokens is None else float(result.completion_tokens)
        except BaseException:
            await self._settle(job.day, worst, 0.0, "answer")
            raise
        finally:
            seconds = gw.clock.now() - started
            gw.tracker.finished(llm, latency_s=seconds, output_tokens=tokens)
        cost = await self._settle(job.day, worst, _charge(price, worst, plan, result), "answer")
        quality: float | None = None
        try:
            if result.text:
                quality = await self._grade(job, result.text)
        finally:  # the answer is paid for: stored even when the judge is over budget or fails
            decision = replace(plan.decision, llm=llm, decision_id=uuid.uuid4().hex)
            feedback = None if quality is None else Feedback(quality=quality, cost_usd=cost)
            learned = await run_in_threadpool(
                gw.learning.shadow, decision, feedback, shadow_of=plan.decision.decision_id,
                cost_usd=cost, prompt=plan.prompt if gw.settings.store_prompts else None,
                output_tokens=tokens, latency_s=seconds,
            )  # fmt: skip
        if quality is None:
            return "unknown_quality"
        if not learned:
            logger.warning("shadow answer of %s stored, not learned: it has left the pool", llm)
            return "failed"
        return "learned"

    async def _grade(self, job: _Job, answer: str) -> float | None:
        """The shadow answer's quality in [0, 1], ``None`` when the judge could not say."""
        from mixllm import grade

        if self.settings.judge is None:
            name = self.settings.grader or "auto"
            try:
                return await run_in_threadpool(grade.grade, answer, job.served, name)
            except DataError:  # the served answer names no letter or number to compare with
                return None
        return await self._judge(job, answer, reference=job.served)

    async def _judge(self, job: _Job, answer: str, *, reference: str | None) -> float | None:
        """The judge's quality for ``answer`` to the query (``None``: it could not say)."""
        from mixllm import grade

        judge = self.settings.judge
        assert judge is not None

        async def ask(text: str) -> str:
            return await self._ask_judge(job.day, judge, text)

        judgement = await grade.judge_answer(
            ask, template=self.template, prompt=job.plan.prompt, answer=answer,
            reference=reference,
        )  # fmt: skip
        return judgement.quality

    async def _ask_judge(self, day: str, judge: str, text: str) -> str:
        """Send ``text`` to the judge LLM within the day's budget; its reply."""
        gw, s = self.gw, self.settings
        price = gw.router.prices.get(judge) or LLM(
            judge, s.judge_price_in_per_mtok, s.judge_price_out_per_mtok
        )
        tokens = float(count_tokens([text])[0])
        worst = worst_case_usd(price, prompt_tokens=tokens, answer_tokens=s.max_tokens)
        await self._reserve(day, worst)
        try:
            result = await asyncio.wait_for(
                gw.backends[judge].complete(
                    [{"role": "user", "content": text}], {"max_tokens": s.max_tokens}, prompt=text
                ),
                gw.settings.deadline_s,
            )
        except BaseException:
            await self._settle(day, worst, 0.0, "judge")
            raise
        used = charge(
            price, reserved_usd=worst, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, problem=result.usage_problem,
            counted=(tokens, float(count_tokens([result.text or ""])[0])),
        )  # fmt: skip
        await self._settle(day, worst, used.usd, "judge")
        return result.text or ""

    # -- the day's budget ------------------------------------------------------------------------
    async def _reserve(self, day: str, usd: float) -> None:
        budget = self.settings.budget_usd_per_day
        assert budget is not None  # checked by ShadowSettings when the share is > 0
        store = self.gw.store

        def hold() -> tuple[bool, float]:
            return store.reserve_shadow_spend(day, usd, limit_usd=budget), store.shadow_spent(day)

        ok, spent = await run_in_threadpool(hold)
        self.gw.metrics.shadow_spend_today.set(spent)
        if not ok:
            raise _OverBudgetError(day)

    async def _settle(self, day: str, reserved: float, actual: float, kind: str) -> float:
        store = self.gw.store

        def settle() -> float:
            store.settle_shadow_spend(day, reserved, actual)
            return store.shadow_spent(day)

        spent = await run_in_threadpool(settle)
        self.gw.metrics.shadow_spend_today.set(spent)
        self.gw.metrics.shadow_spend.labels(kind).inc(actual)
        return actual

    def _count(self, llm: str, outcome: str, answer: str) -> None:
        self.gw.metrics.shadow_requests.labels(llm, outcome, answer).inc()


#: Request fields a shadow call does not pass on (it is never streamed; its own answer limit).
_NOT_SHADOWED = frozenset({"stream", "stream_options", "max_tokens", "max_completion_tokens", "n"})


def _charge(price: LLM | None, worst: float, plan: Plan, result: ChatResult) -> float:
    """The shadow answer's cost: its usage (else our count of its tokens) at ``price``."""
    counted = None
    if result.prompt_tokens is None or result.completion_tokens is None:
        counted = (plan.prompt_tokens, float(count_tokens([result.text or ""])[0]))
    return charge(
        price, reserved_usd=worst, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, cached_tokens=result.cached_tokens,
        counted=counted, problem=result.usage_problem,
    ).usd  # fmt: skip
