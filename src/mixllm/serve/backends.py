"""Backends: what answers a chat request once the router has picked an LLM.

:class:`OpenAIBackend` calls an OpenAI-compatible ``/chat/completions`` endpoint over httpx;
:class:`~mixllm.serve.replay.ReplayBackend` answers from the responses recorded in a
:class:`~mixllm.data.Dataset`, :class:`~mixllm.serve.fake.FakeBackend` answers (or fails) on
command for tests. Every failure is a
:class:`~mixllm.errors.BackendError` whose ``retryable`` says whether trying again or trying the
next LLM may help: timeouts, connection errors, 429 and 5xx are retryable, other 4xx are not.
A backend never returns an empty answer: no text is a retryable error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

import httpx

from mixllm.errors import BackendError, ConfigError

__all__ = ["Backend", "ChatResult", "Messages", "OpenAIBackend", "Params", "make_backend"]

Messages: TypeAlias = list[dict[str, Any]]  # OpenAI chat messages, passed on as they are
Params: TypeAlias = Mapping[str, Any]  # OpenAI sampling params: temperature, max_tokens, ...

_DETAIL_CHARS = 200
_WORDS_PER_CHUNK = 8


_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=2.0)


@dataclass(frozen=True)
class ChatResult:
    """One complete answer: its text, token counts (``None`` if unknown) and where it came from."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str = "stop"
    upstream_model: str = ""


@runtime_checkable
class Backend(Protocol):
    """Answers chat requests for one router LLM (``llm``).

    ``stream`` is an async generator of text deltas. A failure before the first delta raises
    :class:`BackendError` before anything is yielded (so the caller can still fall back); a
    failure after it raises ``BackendError(retryable=False)``.
    """

    llm: str

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult: ...

    def stream(self, messages: Messages, params: Params, *, prompt: str) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


def _status_error(where: str, status: int, detail: str) -> BackendError:
    """The error for an HTTP error status: 408, 429 and 5xx are retryable, the rest are not."""
    retryable = status in (408, 429) or status >= 500
    return BackendError(
        f"{where} returned HTTP {status}: {detail}", retryable=retryable, status=status
    )


def _no_answer(where: str, why: str) -> BackendError:
    return BackendError(f"{where} returned no answer ({why})", retryable=True)


def _chunks(text: str, words: int = _WORDS_PER_CHUNK) -> list[str]:
    """``text`` split on whitespace into pieces of ``words`` words that join back to it."""
    pieces = re.split(r"(?<=\s)(?=\S)", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]


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

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.llm!r}, base_url={self.base_url!r}, model={self.model!r})"

    @property
    def _where(self) -> str:
        return f"upstream {self.model!r} at {self.base_url}"

    def _request(
        self, messages: Messages, params: Params, *, stream: bool
    ) -> tuple[httpx.AsyncClient, httpx.Request]:
        body = {**params, "model": self.model, "messages": messages, "stream": stream}
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
        return BackendError(msg, retryable=retryable)

    def _detail(self, text: str) -> str:
        """The upstream's error message, short, with the API key blanked out if echoed."""
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict):
            err = body.get("error", body.get("detail", body.get("message", text)))
            text = str(err.get("message", err) if isinstance(err, dict) else err)
        text = " ".join(text.split())
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + "…"

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        """One answer from ``POST {base_url}/chat/completions``."""
        client, request = self._request(messages, params, stream=False)
        try:
            resp = await client.send(request)
        except httpx.RequestError as exc:
            raise self._transport_error(exc, retryable=True) from exc
        if not resp.is_success:
            raise _status_error(self._where, resp.status_code, self._detail(resp.text))
        try:
            body = resp.json()
            choice = body["choices"][0]
            text = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _no_answer(self._where, f"malformed body: {type(exc).__name__}") from exc
        if not isinstance(text, str) or not text:
            raise _no_answer(self._where, f"content is {text!r}")
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        tokens = [usage.get(k) for k in ("prompt_tokens", "completion_tokens")]
        p_tok, c_tok = (t if isinstance(t, int) else None for t in tokens)
        reason, model = choice.get("finish_reason") or "stop", body.get("model") or self.model
        return ChatResult(text, p_tok, c_tok, str(reason), str(model))

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[str]:
        """Text deltas of a ``"stream": true`` request, parsed from its server-sent events."""
        client, request = self._request(messages, params, stream=True)
        started = finished = False
        try:
            resp = await client.send(request, stream=True)
            try:
                if not resp.is_success:
                    await resp.aread()
                    raise _status_error(self._where, resp.status_code, self._detail(resp.text))
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, "event:" lines
                    payload = line[5:].strip()
                    if payload == "[DONE]" or finished:
                        finished = True
                        continue  # read to the end, so the connection can be reused
                    delta, done = self._parse_event(payload, started=started)
                    finished = finished or done
                    if delta:
                        started = True
                        yield delta
            finally:
                await resp.aclose()
        except httpx.RequestError as exc:
            raise self._transport_error(exc, retryable=not started) from exc
        if not started:
            raise _no_answer(self._where, "the stream had no text")
        if not finished:
            raise BackendError(f"{self._where}: stream ended before [DONE]", retryable=False)

    def _parse_event(self, payload: str, *, started: bool) -> tuple[str, bool]:
        """(text delta, whether a finish_reason was given) of one ``data:`` event."""
        try:
            event = json.loads(payload)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "error" in event:
            detail = self._detail(payload)
            raise BackendError(f"{self._where}: bad stream event: {detail}", retryable=not started)
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return "", False  # e.g. a final usage-only chunk
        delta = choices[0].get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        done = choices[0].get("finish_reason") is not None
        return (content if isinstance(content, str) else ""), done

    async def aclose(self) -> None:
        """Close the httpx client if this backend made it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None


def make_backend(config: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Backend:
    """An :class:`OpenAIBackend` from a config mapping.

    Keys: ``llm``, ``base_url``, ``model`` (required), ``api_key_env`` (the name of the
    environment variable that holds the API key), ``timeout_s``, ``extra_headers``.
    ``environ`` defaults to ``os.environ``.

    >>> make_backend({"llm": "small", "base_url": "http://localhost:8000/v1", "model": "m"})
    OpenAIBackend('small', base_url='http://localhost:8000/v1', model='m')
    """
    required, optional = ["llm", "base_url", "model"], ["api_key_env", "timeout_s", "extra_headers"]
    unknown = sorted(set(config) - {*required, *optional})
    missing = [k for k in required if not config.get(k)]
    if unknown or missing:
        raise ConfigError(
            f"backend config for {config.get('llm')!r}: unknown keys {unknown}, missing keys "
            f"{missing}; expected keys {required} and optionally {optional}"
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
    )
