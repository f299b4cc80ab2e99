"""A request's money: the answer's token limit, the worst-case reservation on the key, a
fallback's top-up, the refund when nothing answered, and the charge from the answer's usage
(see :mod:`mixllm.serve.spend` for the arithmetic and the guarantee)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from mixllm.data.tokens import count_tokens
from mixllm.serve.capabilities import Capabilities
from mixllm.serve.chat import Usage
from mixllm.serve.errors import SpendLimitError
from mixllm.serve.fallback import SkippedLLMError
from mixllm.serve.metrics import Metrics
from mixllm.serve.settings import ApiKey, Settings
from mixllm.serve.spend import affordable_tokens, charge, worst_case_usd
from mixllm.serve.store import Store
from mixllm.types import LLM, Decision

if TYPE_CHECKING:
    from mixllm.serve.pacing import Pacing

__all__ = ["Billing", "Plan"]

logger = logging.getLogger("mixllm.serve.gateway")


@dataclass
class Plan:
    """A chat request once routed and paid for: what to send, to whom, and what is held."""

    decision: Decision
    key: ApiKey | None
    order: tuple[str, ...]  # the LLMs that may answer, the chosen one first
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    prompt: str
    prompt_tokens: float
    answer_tokens: int  # the answer's token limit sent upstream (before per-LLM limits)
    cap_field: str  # "max_tokens" or "max_completion_tokens"
    reserved_usd: float = 0.0  # held on the key's spend now
    session: str = ""
    stayed: bool = False  # kept on the conversation's LLM
    settled: bool = False
    paced: list[list[Any]] = field(default_factory=list)  # pacing holds: [scope, period, usd]


class Billing:
    """Holds and charges the keys' money for the gateway's requests.

    ``price`` gives an LLM's prices (``None``: free), ``capabilities`` its declared limits
    and cached-prompt price; both are asked at each use, as LLMs come and go."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        *,
        price: Callable[[str], LLM | None],
        capabilities: Callable[[str], Capabilities],
    ) -> None:
        self.store, self.settings, self.metrics = store, settings, metrics
        self.price = price
        self.capabilities = capabilities
        self.pacing: Pacing | None = None  # the gateway's pacing budgets, held alongside

    def answer_tokens(self, llm: str, wanted: int | None) -> int:
        """The answer's token limit: the request's, else the default, within the LLM's."""
        most = self.capabilities(llm).max_output_tokens
        cap = wanted or self.settings.default_max_tokens
        return min(cap, most) if most else cap

    def worst(self, plan: Plan, llm: str) -> float:
        return worst_case_usd(
            self.price(llm), prompt_tokens=plan.prompt_tokens,
            answer_tokens=self.answer_tokens(llm, plan.answer_tokens),
        )  # fmt: skip

    async def reserve(self, plan: Plan) -> None:
        """Hold the chosen LLM's worst case on the key, lowering the answer's token limit to
        what the key's remaining budget affords; 429 when it affords no answer. Reading the
        budget and holding are one transaction: concurrent requests never pass the limit."""
        key, llm = plan.key, plan.decision.llm
        if key is None:
            return
        short: list[float] = []  # what was left when nothing could be held

        def worst_affordable(left: float | None) -> float | None:
            if left is not None:
                price = self.price(llm)
                afford = affordable_tokens(price, prompt_tokens=plan.prompt_tokens, budget_usd=left)
                if afford < 1:
                    short.append(left)
                    return None
                plan.answer_tokens = min(plan.answer_tokens, afford)
            return self.worst(plan, llm)

        held = await run_in_threadpool(
            self.store.reserve_spend, key.name, worst_affordable, limit_usd=key.spend_limit_usd
        )
        if held is None:
            why = f"${max(short[0], 0.0):.6f} left" if short else "this request would pass it"
            raise SpendLimitError(
                f"this key's spending limit of ${key.spend_limit_usd:g} is reached: {why}, "
                f"not enough for an answer from {llm}"
            )
        plan.reserved_usd = held

    async def cover(self, plan: Plan, llm: str) -> None:
        """Before calling a fallback LLM: hold its worst case if that is more than is held."""
        if self.pacing is not None:
            await self.pacing.cover(plan, llm, self.worst(plan, llm))
        if plan.key is None:
            return
        more = self.worst(plan, llm) - plan.reserved_usd
        if more <= 0:
            return
        ok = await run_in_threadpool(
            self.store.add_spend, plan.key.name, more, limit_usd=plan.key.spend_limit_usd
        )
        if not ok:
            raise SkippedLLMError(
                f"{llm}: not tried (the key's remaining budget does not cover it)"
            )
        plan.reserved_usd += more

    async def refund(self, plan: Plan) -> None:
        """Give back the reservation when no answer came."""
        if self.pacing is not None and not plan.settled:
            await self.pacing.settle(plan, 0.0)
        if plan.key is not None and plan.reserved_usd > 0 and not plan.settled:
            plan.settled = True
            await run_in_threadpool(self.store.settle_spend, plan.key.name, plan.reserved_usd, 0.0)

    async def settle(
        self, plan: Plan, llm: str, usage: Usage | None, problem: str | None, text: str
    ) -> float:
        """Charge an answer: its reported usage, else our own count of its tokens, never more
        than its reservation; the rest of the reservation goes back to the key."""
        if plan.settled:
            return 0.0
        plan.settled = True
        counted = None
        if usage is None and problem is None:  # count the answer only when nothing else says
            counted = (plan.prompt_tokens, float(count_tokens([text])[0]) if text else 0.0)
        result = charge(
            self.price(llm), reserved_usd=self.worst(plan, llm),
            prompt_tokens=None if usage is None else usage.prompt_tokens,
            completion_tokens=None if usage is None else usage.completion_tokens,
            cached_tokens=0 if usage is None else usage.cached_tokens,
            cached_price_per_mtok=self.capabilities(llm).price_cached_in_per_mtok,
            counted=counted, problem=problem,
        )  # fmt: skip
        if result.problem is not None:
            logger.warning("LLM %r: usage not believed (%s); charged its reservation",
                           llm, result.problem)  # fmt: skip
        self.metrics.spend.labels(llm).inc(result.usd)
        if self.pacing is not None:
            await self.pacing.settle(plan, result.usd)
        if plan.key is not None:
            await run_in_threadpool(
                self.store.settle_spend, plan.key.name, plan.reserved_usd, result.usd
            )
        await run_in_threadpool(
            self.store.set_answer,
            plan.decision.decision_id,
            answered_by=llm,
            cost_usd=result.usd,
            output_tokens=None if usage is None else usage.completion_tokens,
        )
        return result.usd
