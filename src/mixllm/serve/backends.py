"""Backends: what answers a chat request once the router has picked an LLM.

:class:`OpenAIBackend` calls an OpenAI-compatible ``/chat/completions`` endpoint over httpx,
:class:`ReplayBackend` answers from the responses recorded in a :class:`~mixllm.data.Dataset`,
:class:`FakeBackend` answers (or fails) on command for tests. Every failure is a
:class:`~mixllm.errors.BackendError` whose ``retryable`` says whether trying again or trying the
next LLM may help: timeouts, connection errors, 429 and 5xx are retryable, other 4xx are not.
A backend never returns an empty answer: no text is a retryable error.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

import httpx
import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.embed.base import Embedder
from mixllm.errors import BackendError, ConfigError

__all__ = [
    "Backend",
    "ChatResult",
    "FakeBackend",
    "Messages",
    "OpenAIBackend",
    "Params",
    "ReplayBackend",
    "make_backend",
]

Messages: TypeAlias = list[dict[str, Any]]  # OpenAI chat messages, passed on as they are
Params: TypeAlias = Mapping[str, Any]  # OpenAI sampling params: temperature, max_tokens, ...

_DETAIL_CHARS = 200
_WORDS_PER_CHUNK = 8
_FAKE_ERRORS: dict[str, tuple[str, bool, int | None]] = {  # FakeBackend fail kind -> error
    "500": ("returned HTTP 500: internal error", True, 500),
    "429": ("returned HTTP 429: rate limited", True, 429),
    "400": ("returned HTTP 400: bad request", False, 400),
    "timeout": ("timed out", True, None),
    "connection": ("connection failed", True, None),
    "empty": ("returned no answer (content is None)", True, None),
    "mid_stream": ("lost the connection mid-answer", True, None),
}


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


class ReplayBackend:
    """Answers with the responses that ``llm`` gave in ``dataset`` (offline demos and tests).

    The prompt's own recorded response when the prompt is in the dataset; otherwise, with an
    ``embedder``, the response to the most similar recorded prompt (cosine); otherwise a
    non-retryable :class:`BackendError`. No recorded response by ``llm`` is a retryable error,
    so the gateway falls back to another LLM. ``latency_s`` is waited before each answer.

    >>> from mixllm.data import Outcome
    >>> ds = Dataset.from_outcomes([Outcome("q1", "2+2?", "small", 1.0, 0.001, response="4")])
    >>> asyncio.run(ReplayBackend("small", ds).complete([], {}, prompt="2+2?")).text
    '4'
    """

    def __init__(
        self,
        llm: str,
        dataset: Dataset,
        *,
        embedder: Embedder | None = None,
        latency_s: float = 0.0,
    ) -> None:
        self._col = dataset.llm_index(llm)
        if dataset.responses is None:
            raise ConfigError(f"dataset {dataset.name!r} has no recorded responses to replay")
        if not latency_s >= 0:
            raise ConfigError(f"latency_s must be a number >= 0, got {latency_s!r}")
        self.llm, self.dataset, self.embedder = llm, dataset, embedder
        self.latency_s = float(latency_s)
        self._rows: dict[str, int] | None = None  # prompt -> first row, built on first use
        self._vectors: tuple[list[int], NDArray[np.float32]] | None = None

    def _response(self, row: int) -> str | None:
        assert self.dataset.responses is not None
        text = self.dataset.responses[row, self._col]
        return text if isinstance(text, str) and text else None

    def _find(self, prompt: str) -> tuple[int, bool]:
        """(dataset row to answer from, whether it holds the prompt itself)."""
        if self._rows is None:
            pairs = reversed(list(enumerate(self.dataset.prompts)))
            self._rows = {str(p).strip(): i for i, p in pairs}
        if (row := self._rows.get(prompt.strip())) is not None:
            return row, True
        if self.embedder is None:
            raise BackendError(
                f"prompt {prompt[:60]!r} is not in the replay data of {self.dataset.name!r} "
                "(give ReplayBackend an embedder to answer with the nearest recorded prompt)",
                retryable=False,
            )
        if self._vectors is None:
            rows = [i for i in range(len(self.dataset)) if self._response(i) is not None]
            if not rows:
                name = self.dataset.name
                raise BackendError(
                    f"no recorded responses by {self.llm!r} in {name!r}", retryable=True
                )
            texts = [str(self.dataset.prompts[i]) for i in rows]
            self._vectors = rows, _unit(self.embedder.embed(texts))
        rows, vectors = self._vectors
        similarity = vectors @ _unit(self.embedder.embed([prompt]))[0]
        return rows[int(np.argmax(similarity))], False

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        """The recorded answer for ``prompt`` (the text the gateway routed on)."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        row, exact = self._find(prompt)
        text = self._response(row)
        if text is None:
            raise BackendError(
                f"no recorded response by {self.llm!r} to query "
                f"{self.dataset.query_ids[row]!r} in {self.dataset.name!r}",
                retryable=True,
            )
        p_tok = float(self.dataset.prompt_tokens[row])
        c_tok = float(self.dataset.output_tokens[row, self._col])
        return ChatResult(
            text=text,
            prompt_tokens=round(p_tok) if exact and np.isfinite(p_tok) else None,
            completion_tokens=round(c_tok) if np.isfinite(c_tok) else None,
            upstream_model=f"replay:{self.llm}",
        )

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[str]:
        """The recorded answer in chunks of a few words."""
        result = await self.complete(messages, params, prompt=prompt)
        for chunk in _chunks(result.text):
            yield chunk

    async def aclose(self) -> None:
        """Nothing to release."""


def _unit(m: NDArray[np.float32]) -> NDArray[np.float32]:
    m = np.asarray(m, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.asarray(m / np.maximum(norms, 1e-12), dtype=np.float32)


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
