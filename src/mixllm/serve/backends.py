"""Backends: what answers a chat request once the router has picked an LLM.

:class:`OpenAIBackend` calls an OpenAI-compatible ``/chat/completions`` endpoint over httpx;
:class:`~mixllm.serve.replay.ReplayBackend` answers from the responses recorded in a
:class:`~mixllm.data.Dataset`, :class:`~mixllm.serve.fake.FakeBackend` answers (or fails) on
command for tests. Every failure is a
:class:`~mixllm.errors.BackendError` whose ``retryable`` says whether trying again or trying the
next LLM may help: timeouts, connection errors, 429 and 5xx are retryable, other 4xx are not.
A backend never returns an empty answer: a message with no text, tool call, function call,
refusal or audio is a retryable error. Answers keep the upstream's JSON, so the gateway relays
every field (tool calls, logprobs, usage details, system fingerprint, ...) as it was sent.
Error messages name the LLM, never the upstream's URL or key.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import httpx

from mixllm.errors import BackendError, ConfigError
from mixllm.serve.capabilities import Capabilities
from mixllm.serve.chat import (
    UNREADABLE_USAGE,
    ChatResult,
    Chunk,
    Messages,
    Params,
    _short,
    has_answer,
    read_usage,
    relayable_json,
)

__all__ = ["Backend", "OpenAIBackend", "make_backend", "retry_after"]

logger = logging.getLogger(__name__)

_RETRY_AFTER_MAX_S = 3600.0
_DETAIL_CHARS = 200
_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=2.0)


@runtime_checkable
class Backend(Protocol):
    """Answers chat requests for one router LLM (``llm``).

    ``stream`` is an async generator of the upstream's chunks (:data:`Chunk`). A failure
    before the first chunk that carries an answer raises :class:`BackendError` (so the caller
    can still fall back); a failure after it raises ``BackendError(retryable=False)``.
    ``capabilities`` says what the LLM can do (everything, when nothing was declared).
    """

    llm: str
    capabilities: Capabilities

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult: ...

    def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[Chunk]: ...

    async def aclose(self) -> None: ...


def _status_error(
    where: str, status: int, detail: str, retry_after_s: float | None = None
) -> BackendError:
    """The error for an HTTP error status: 408, 429 and 5xx are retryable, the rest are not."""
    retryable = status in (408, 429) or status >= 500
    return BackendError(
        f"{where} returned HTTP {status}: {detail}", retryable=retryable, status=status,
        retry_after_s=retry_after_s,
    )  # fmt: skip


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), within [0, 3600].

    >>> retry_after("7"), retry_after("soon"), retry_after("99999")
    (7.0, None, 3600.0)
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_MAX_S)


def _no_answer(where: str, why: str) -> BackendError:
    return BackendError(f"{where} returned no answer ({why})", retryable=True)


class OpenAIBackend:
    """An OpenAI-compatible upstream (OpenAI, vLLM, llama.cpp, ...) reached over httpx.

    Parameters
    ----------
    llm:
        The router's name for the LLM this backend serves.
    base_url, model:
        Upstream root (requests go to ``{base_url}/chat/completions``) and its model name.
    api_key:
        Sent as ``Authorization: Bearer``; never logged nor put in an error message.
    timeout_s:
        Time limit for each network phase of a request (connect, write, each read).
    client:
        A shared ``httpx.AsyncClient``; by default one is made on first use and closed by
        :meth:`aclose` (an injected client is left open).
    extra_headers:
        More headers for every request.
    capabilities:
        What the LLM can do (default: everything).
    stream_usage:
        Ask for the usage chunk of every stream (``stream_options.include_usage``), so that a
        stream is charged what it used; turn off for servers that reject the option.
    """

    def __init__(
        self,
        llm: str,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        client: httpx.AsyncClient | None = None,
        extra_headers: Mapping[str, str] | None = None,
        capabilities: Capabilities | None = None,
        stream_usage: bool = True,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not timeout_s > 0:
            raise ConfigError(f"timeout_s must be a number > 0, got {timeout_s!r}")
        self.llm, self.base_url, self.model = llm, base_url.rstrip("/"), model
        self.timeout_s = float(timeout_s)
        self._api_key = api_key
        self._client, self._owns_client = client, client is None
        self._extra_headers = dict(extra_headers or {})
        self.capabilities = capabilities or Capabilities()
        self.stream_usage = stream_usage

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.llm!r}, base_url={self.base_url!r}, model={self.model!r})"

    @property
    def _where(self) -> str:  # what clients may see: the LLM, never the URL
        return f"LLM {self.llm!r}"

    def _request(
        self, messages: Messages, params: Params, *, stream: bool
    ) -> tuple[httpx.AsyncClient, httpx.Request]:
        body = {**params, "model": self.model, "messages": messages, "stream": stream}
        if not stream or not self.stream_usage:
            body.pop("stream_options", None)  # not asked of servers that reject it
        else:
            body["stream_options"] = {**params.get("stream_options", {}), "include_usage": True}
        headers = dict(self._extra_headers)
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        # Idle connections are dropped after 2 s, before uvicorn-style upstreams close theirs
        # (5 s), so a request never goes out on a connection the server is closing.
        self._client = self._client or httpx.AsyncClient(limits=_LIMITS)
        url, timeout = f"{self.base_url}/chat/completions", self.timeout_s
        request = self._client.build_request(
            "POST", url, json=body, headers=headers, timeout=timeout
        )
        return self._client, request

    def _transport_error(self, exc: httpx.RequestError, *, retryable: bool) -> BackendError:
        if isinstance(exc, httpx.TimeoutException):
            msg = f"{self._where} timed out after {self.timeout_s:g} s"
        else:
            msg = f"{self._where}: connection failed ({type(exc).__name__})"
        logger.info("%s (upstream %s)", msg, self.base_url)  # the URL for operators only
        return BackendError(msg, retryable=retryable)

    def _http_error(self, resp: httpx.Response) -> BackendError:
        logger.info(
            "LLM %r: upstream %s answered HTTP %d", self.llm, self.base_url, resp.status_code
        )
        wait = retry_after(resp.headers.get("retry-after"))
        return _status_error(self._where, resp.status_code, self._detail(resp.text), wait)

    def _detail(self, text: str) -> str:
        """The upstream's error message, short, with the API key blanked out if echoed."""
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            body = None
        if isinstance(body, dict):
            err = body.get("error", body.get("detail", body.get("message", text)))
            text = str(err.get("message", err) if isinstance(err, dict) else err)
        text = " ".join(text.split())
        if self._api_key:
            text = text.replace(self._api_key, "***")
        text = text.replace(self.base_url, "<upstream>")
        return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "…"

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        """One answer from ``POST {base_url}/chat/completions``, with its JSON body."""
        client, request = self._request(messages, params, stream=False)
        try:
            resp = await client.send(request)
        except httpx.RequestError as exc:
            raise self._transport_error(exc, retryable=True) from exc
        if not resp.is_success:
            raise self._http_error(resp)
        try:
            body, garbled = relayable_json(resp.content)
            choice = body["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _no_answer(self._where, f"malformed body: {type(exc).__name__}") from exc
        if not isinstance(body, dict) or not has_answer(message):
            content = message.get("content") if isinstance(message, dict) else message
            raise _no_answer(self._where, f"content is {_short(content)}")
        result = _result(body, choice, message, default_model=self.model)
        return result if garbled is None else replace(result, usage_problem=garbled)

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[Chunk]:
        """The chunks of a ``"stream": true`` request, parsed from its server-sent events."""
        client, request = self._request(messages, params, stream=True)
        started = finished = False
        try:
            resp = await client.send(request, stream=True)
            try:
                if not resp.is_success:
                    await resp.aread()
                    raise self._http_error(resp)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, "event:" lines
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        finished = True
                        continue  # read to the end, so the connection can be reused
                    try:
                        chunk = self._parse_event(payload, started=started)
                    except BackendError:
                        if not started:
                            raise
                        # once the answer has started, a garbled event (e.g. a usage chunk
                        # nested too deep to read) is skipped: the answer is charged its
                        # reservation, as for any usage that cannot be believed
                        logger.info("LLM %r: unreadable stream event skipped", self.llm)
                        chunk = {"choices": [], "usage": UNREADABLE_USAGE}
                    if chunk is None:
                        continue
                    choices = chunk.get("choices") or [{}]
                    first = choices[0] if isinstance(choices[0], dict) else {}
                    finished = finished or first.get("finish_reason") is not None
                    if not started and not has_answer(first.get("delta")):
                        if chunk.get("usage") is None and not first.get("delta"):
                            continue  # nothing to pass on yet
                    else:
                        started = True
                    yield chunk
            finally:
                await resp.aclose()
        except httpx.RequestError as exc:
            raise self._transport_error(exc, retryable=not started) from exc
        if not started:
            raise _no_answer(self._where, "the stream had no answer")
        if not finished:
            raise BackendError(f"{self._where}: stream ended before [DONE]", retryable=False)

    def _parse_event(self, payload: str, *, started: bool) -> Chunk | None:
        """One ``data:`` event as a chunk (``None``: nothing in it to pass on)."""
        try:
            event, _ = relayable_json(payload)  # a garbled usage becomes UNREADABLE_USAGE
        except ValueError:
            event = None
        if not isinstance(event, dict) or "error" in event:
            detail = self._detail(payload)
            raise BackendError(f"{self._where}: bad stream event: {detail}", retryable=not started)
        choices = event.get("choices")
        if choices is not None and not (
            isinstance(choices, list) and all(isinstance(c, dict) for c in choices)
        ):
            raise BackendError(
                f"{self._where}: bad stream event: choices={_short(choices)}", retryable=not started
            )
        if not choices and event.get("usage") is None:
            return None
        return event

    async def aclose(self) -> None:
        """Close the httpx client if this backend made it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def _result(
    body: Mapping[str, Any], choice: Mapping[str, Any], message: Mapping[str, Any], *,
    default_model: str,
) -> ChatResult:  # fmt: skip
    usage, problem = read_usage(body.get("usage"))
    content = message.get("content")
    return ChatResult(
        text=content if isinstance(content, str) else None,
        prompt_tokens=None if usage is None else usage.prompt_tokens,
        completion_tokens=None if usage is None else usage.completion_tokens,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        upstream_model=str(body.get("model") or default_model),
        body=body,
        cached_tokens=0 if usage is None else usage.cached_tokens,
        usage_problem=problem,
    )


def make_backend(config: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Backend:
    """An :class:`OpenAIBackend` from a config mapping.

    Keys: ``llm``, ``base_url``, ``model`` (required), ``api_key_env`` (the name of the
    environment variable that holds the API key), ``timeout_s``, ``extra_headers``,
    ``capabilities`` (a table: see :class:`~mixllm.serve.capabilities.Capabilities`),
    ``stream_usage``, ``price_in_per_mtok`` and ``price_out_per_mtok`` (USD per million tokens,
    numbers >= 0: checked here, used by ``mixllm collect``, ignored by the gateway).
    ``environ`` defaults to ``os.environ``.

    >>> make_backend({"llm": "small", "base_url": "http://localhost:8000/v1", "model": "m"})
    OpenAIBackend('small', base_url='http://localhost:8000/v1', model='m')
    """
    required = ["llm", "base_url", "model"]
    optional = ["api_key_env", "timeout_s", "extra_headers", "capabilities", "stream_usage"]
    optional += ["price_in_per_mtok", "price_out_per_mtok"]
    unknown = sorted(set(config) - {*required, *optional})
    missing = [k for k in required if not config.get(k)]
    if unknown or missing:
        raise ConfigError(
            f"backend config for {config.get('llm')!r}: unknown keys {unknown}, missing keys "
            f"{missing}; expected keys {required} and optionally {optional}"
        )
    for name in ("price_in_per_mtok", "price_out_per_mtok"):
        price = config.get(name, 0.0)
        if isinstance(price, bool) or not (
            isinstance(price, int | float) and 0 <= price < math.inf
        ):
            raise ConfigError(
                f"backend {config['llm']!r}: {name}={price!r}; expected a number >= 0 (USD)"
            )
    env = os.environ if environ is None else environ
    key_env = config.get("api_key_env")
    if key_env and key_env not in env:
        raise ConfigError(
            f"backend {config['llm']!r}: environment variable {key_env!r} (api_key_env) is not set"
        )
    timeout_s = config.get("timeout_s", 60.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise ConfigError(
            f"backend {config['llm']!r}: timeout_s must be a number, got {timeout_s!r}"
        )
    return OpenAIBackend(
        str(config["llm"]),
        base_url=str(config["base_url"]),
        model=str(config["model"]),
        api_key=env[key_env] if key_env else None,
        timeout_s=timeout_s,
        extra_headers=config.get("extra_headers"),
        capabilities=Capabilities.from_config(
            config.get("capabilities"), where=f"upstream {config['llm']!r} capabilities"
        ),
        stream_usage=_flag(config, "stream_usage", True),
    )


def _flag(config: Mapping[str, Any], name: str, default: bool) -> bool:
    value = config.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(f"backend {config['llm']!r}: {name}={value!r}; expected true or false")
    return value
