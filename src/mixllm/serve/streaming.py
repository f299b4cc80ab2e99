"""A streamed answer once it has started: its chunks relayed, its load released and its
cost charged once, however it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from mixllm.serve.chat import Chunk, Usage, has_answer, read_usage

if TYPE_CHECKING:
    from mixllm.serve.billing import Plan
    from mixllm.serve.gateway import Gateway

__all__ = ["OpenStream", "carries_answer"]


class OpenStream:
    """A streamed answer once it has started: the rest of the upstream's chunks
    (:meth:`chunks`), and :meth:`close`, which releases the LLM's load and charges the answer
    from the usage chunk (or our count of the text streamed) once, however the stream ends:
    at its end, when the client goes away, or never iterated at all."""

    def __init__(
        self, gw: Gateway, plan: Plan, llm: str, started: float, head: list[Chunk],
        upstream: AsyncIterator[Chunk],
    ) -> None:  # fmt: skip
        self.gw, self.plan, self.llm, self.started = gw, plan, llm, started
        self.head, self.upstream = head, upstream
        self.usage: Usage | None = None
        self.problem: str | None = None
        self._text = [_delta_text(c) for c in head]
        self._closed = False

    def text(self) -> str:
        """The answer's text streamed so far."""
        return "".join(self._text)

    async def chunks(self) -> AsyncIterator[Chunk]:
        """The chunks after :attr:`head`, as the upstream sends them."""
        try:
            async for chunk in self.upstream:
                if chunk.get("usage") is not None:
                    self.usage, self.problem = read_usage(chunk["usage"])
                self._text.append(_delta_text(chunk))
                yield chunk
        except BaseException:
            self.close()
            raise
        self._release()
        await self.gw.billing.settle(self.plan, self.llm, self.usage, self.problem, self.text())

    def _release(self) -> bool:
        if self._closed:
            return False
        self._closed = True
        tokens = None if self.usage is None else self.usage.completion_tokens
        self.gw._finished(self.llm, self.gw.clock.now() - self.started, output_tokens=tokens)
        return True

    def close(self) -> None:
        """Release the load and charge what was streamed (in the background); idempotent."""
        if self._release():
            self.gw.background(self._close_upstream())

    async def aclose(self) -> None:
        """:meth:`close` for an async caller (a response's background task: a sync one would
        take a trip through the thread pool for every stream)."""
        self.close()

    async def _close_upstream(self) -> None:
        aclose = getattr(self.upstream, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            await self.gw.billing.settle(self.plan, self.llm, self.usage, self.problem, self.text())


def _choice(chunk: Chunk) -> dict[str, Any]:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return {}


def carries_answer(chunk: Chunk) -> bool:
    return has_answer(_choice(chunk).get("delta"))


def _delta_text(chunk: Chunk) -> str:
    delta = _choice(chunk).get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""
