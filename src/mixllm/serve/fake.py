"""A backend for tests: answers or fails on command, without any network."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mixllm.errors import BackendError, ConfigError
from mixllm.serve.capabilities import Capabilities
from mixllm.serve.chat import ChatResult, Chunk, Messages, Params, Usage, _chunks, text_chunks

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
    ``capabilities`` (default: everything) is what the gateway may route to it; ``seen`` keeps
    the messages and parameters of each call.

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
        capabilities: Capabilities | None = None,
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
        self.capabilities = capabilities or Capabilities()
        self.seen: list[tuple[Messages, dict[str, Any]]] = []

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
        self.seen.append((messages, dict(params)))
        if (fail := await self._start()) is not None:
            raise self._error(fail)
        n_out = len(self.text.split())
        return ChatResult(self.text, len(prompt.split()), n_out, upstream_model=f"fake:{self.llm}")

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[Chunk]:
        """``text`` in chunks of a few words (with a usage chunk when ``stream_options`` asks
        for it), or the configured failure."""
        self.seen.append((messages, dict(params)))
        fail = await self._start()
        if fail is not None and fail != "mid_stream":
            raise self._error(fail)
        options = params.get("stream_options")
        wants_usage = isinstance(options, Mapping) and options.get("include_usage")
        usage = Usage(len(prompt.split()), len(self.text.split())) if wants_usage else None
        for chunk in text_chunks(self.text, usage=usage):
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
    message: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    usage: Callable[[dict[str, Any]], Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    seen: list[dict[str, Any]] | None = None,
) -> Starlette:
    """An OpenAI-compatible ``POST /v1/chat/completions`` app for tests and benchmarks: it
    answers ``answer(model, last user message's text)`` after ``first_token_delay_s``,
    streamed (in chunks of ``words_per_chunk`` words, ``chunk_delay_s`` apart) or not, with
    usage counted in words. ``message(request body)`` may give the whole assistant message
    instead (e.g. ``tool_calls``; ``None``: answer as usual), ``usage(request body)`` the usage
    object to report, ``extra`` more top-level fields (``system_fingerprint``, ...); ``seen``
    collects the request bodies. A stream sends a usage chunk when
    ``stream_options.include_usage`` asks for one. Serve it with
    :func:`mixllm.serve.run.serve_in_thread`."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        if seen is not None:
            seen.append(body)
        model, question = str(body["model"]), _text(body["messages"][-1].get("content"))
        msg = message(body) if message is not None else None
        if msg is None:
            msg = {"role": "assistant", "content": answer(model, question)}
        text = msg.get("content") or ""
        if first_token_delay_s:
            await asyncio.sleep(first_token_delay_s)
        finish = "tool_calls" if msg.get("tool_calls") else "stop"
        counted = {"prompt_tokens": len(question.split()), "completion_tokens": len(text.split())}
        counted["total_tokens"] = counted["prompt_tokens"] + counted["completion_tokens"]
        reported = usage(body) if usage is not None else counted
        base = {"id": "chatcmpl-fake", "created": 0, "model": model, **(extra or {})}
        if not body.get("stream"):
            choice = {"index": 0, "message": msg, "finish_reason": finish}
            return JSONResponse(
                {**base, "object": "chat.completion", "choices": [choice], "usage": reported}
            )
        options = body.get("stream_options") or {}

        async def events() -> AsyncIterator[str]:
            def event(choices: list[Any], **more: Any) -> str:
                chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **more}
                return f"data: {json.dumps(chunk)}\n\n"

            def delta(d: dict[str, Any], finish_reason: str | None = None) -> str:
                return event([{"index": 0, "delta": d, "finish_reason": finish_reason}])

            yield delta({"role": "assistant", "content": ""})
            for piece in _chunks(text, words_per_chunk) if text else []:
                yield delta({"content": piece})
                if chunk_delay_s:
                    await asyncio.sleep(chunk_delay_s)
            for i, call in enumerate(msg.get("tool_calls") or []):
                yield delta({"tool_calls": [{"index": i, **call}]})
            yield delta({}, finish)
            if options.get("include_usage"):
                yield event([], usage=reported)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")
