"""A backend for tests: answers or fails on command, without any network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mixllm.errors import BackendError, ConfigError
from mixllm.serve.backends import ChatResult, Messages, Params, _chunks

__all__ = ["FakeBackend", "fake_openai_upstream"]

_FAKE_ERRORS: dict[str, tuple[str, bool, int | None]] = {  # FakeBackend fail kind -> error
    "500": ("returned HTTP 500: internal error", True, 500),
    "429": ("returned HTTP 429: rate limited", True, 429),
    "400": ("returned HTTP 400: bad request", False, 400),
    "timeout": ("timed out", True, None),
    "connection": ("connection failed", True, None),
    "empty": ("returned no answer (content is None)", True, None),
    "mid_stream": ("lost the connection mid-answer", True, None),
}


class FakeBackend:
    """A backend that answers ``text`` (or fails on command) without any network, for tests.

    ``fail`` (``None``: healthy) is one of ``"500"``, ``"429"``, ``"400"``, ``"timeout"``,
    ``"connection"``, ``"empty"``, ``"mid_stream"``, and raises the :class:`BackendError` that
    :class:`OpenAIBackend` would. ``"mid_stream"`` streams one delta, then fails (non-retryable);
    in :meth:`complete` it is a retryable lost connection. With ``fail_times=N`` only the first
    N calls fail. ``calls`` counts the calls; each first waits ``latency_s`` (real time).

    >>> b = FakeBackend("small", text="hi there", fail="500", fail_times=1)
    >>> asyncio.run(b.complete([], {}, prompt="q"))
    Traceback (most recent call last):
    ...
    mixllm.errors.BackendError: fake upstream for 'small' returned HTTP 500: internal error
    >>> asyncio.run(b.complete([], {}, prompt="q")).text, b.calls
    ('hi there', 2)
    """

    def __init__(
        self,
        llm: str,
        *,
        text: str | None = None,
        latency_s: float = 0.0,
        fail: str | None = None,
        fail_times: int | None = None,
    ) -> None:
        if fail is not None and fail not in _FAKE_ERRORS:
            raise ConfigError(f"unknown fail kind {fail!r}; known: {list(_FAKE_ERRORS)}")
        if not latency_s >= 0:
            raise ConfigError(f"latency_s must be a number >= 0, got {latency_s!r}")
        self.llm = llm
        self.text = f"fake answer from {llm}" if text is None else text
        self.latency_s, self.fail, self.fail_times = float(latency_s), fail, fail_times
        self.calls = 0
        self.closed = False

    async def _start(self) -> str | None:
        """Count the call, wait, and say which failure (if any) this call has."""
        self.calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        failing = self.fail_times is None or self.calls <= self.fail_times
        return self.fail if failing else None

    def _error(self, fail: str) -> BackendError:
        what, retryable, status = _FAKE_ERRORS[fail]
        return BackendError(
            f"fake upstream for {self.llm!r} {what}", retryable=retryable, status=status
        )

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        """``text``, or the configured failure."""
        if (fail := await self._start()) is not None:
            raise self._error(fail)
        n_out = len(self.text.split())
        return ChatResult(self.text, len(prompt.split()), n_out, upstream_model=f"fake:{self.llm}")

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[str]:
        """``text`` in chunks of a few words, or the configured failure."""
        fail = await self._start()
        if fail is not None and fail != "mid_stream":
            raise self._error(fail)
        for chunk in _chunks(self.text):
            yield chunk
            if fail == "mid_stream":
                raise BackendError(
                    f"fake upstream for {self.llm!r} lost the connection mid-stream",
                    retryable=False,
                )

    async def aclose(self) -> None:
        """Mark the backend closed."""
        self.closed = True


def fake_openai_upstream(
    answer: Callable[[str, str], str],
    *,
    first_token_delay_s: float = 0.0,
    chunk_delay_s: float = 0.0,
    words_per_chunk: int = 4,
) -> Starlette:
    """An OpenAI-compatible ``POST /v1/chat/completions`` app for tests and benchmarks: it
    answers ``answer(model, last user message)`` after ``first_token_delay_s``, streamed (in
    chunks of ``words_per_chunk`` words, ``chunk_delay_s`` apart) or not, with usage counted in
    words. Serve it with :func:`mixllm.serve.run.serve_in_thread`."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        model, question = str(body["model"]), str(body["messages"][-1]["content"])
        text = answer(model, question)
        if first_token_delay_s:
            await asyncio.sleep(first_token_delay_s)
        base = {"id": "chatcmpl-fake", "created": 0, "model": model}
        if not body.get("stream"):
            usage = {"prompt_tokens": len(question.split()), "completion_tokens": len(text.split())}
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        async def events() -> AsyncIterator[str]:
            def event(delta: dict[str, str], finish: str | None = None) -> str:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                chunk = {**base, "object": "chat.completion.chunk", "choices": [choice]}
                return f"data: {json.dumps(chunk)}\n\n"

            for i, piece in enumerate(_chunks(text, words_per_chunk)):
                yield event(
                    {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                )
                if chunk_delay_s:
                    await asyncio.sleep(chunk_delay_s)
            yield event({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
