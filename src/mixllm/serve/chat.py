"""What a backend answers, and its parts: OpenAI messages, request fields and stream
chunks as plain JSON objects; :class:`ChatResult` (a whole answer, its upstream JSON kept to
be relayed); :class:`Usage` read from an upstream and checked (:func:`read_usage`); whether a
message or delta carries an answer (:func:`has_answer`); a text as stream chunks
(:func:`text_chunks`)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "MAX_TOKENS_BELIEVED",
    "ChatResult",
    "Chunk",
    "Messages",
    "Params",
    "Usage",
    "has_answer",
    "read_usage",
    "text_chunks",
]

Messages: TypeAlias = list[dict[str, Any]]  # OpenAI chat messages, passed on as they are
Params: TypeAlias = Mapping[str, Any]  # OpenAI request fields: temperature, max_tokens, tools...
Chunk: TypeAlias = dict[str, Any]  # one ``chat.completion.chunk`` event of a stream, as sent

#: Token counts above this are not believed (a billing bug or a hostile upstream).
MAX_TOKENS_BELIEVED = 100_000_000


@dataclass(frozen=True)
class Usage:
    """Token counts an upstream reported, checked: whole numbers in [0, 10^8]."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


def read_usage(raw: object) -> tuple[Usage | None, str | None]:
    """``(usage, None)`` for valid counts, ``(None, None)`` when there are none, ``(None,
    why)`` when they are not believable (negative, not whole numbers, absurdly large).

    >>> read_usage({"prompt_tokens": 12, "completion_tokens": 3})
    (Usage(prompt_tokens=12, completion_tokens=3, cached_tokens=0), None)
    >>> read_usage({"prompt_tokens": -1, "completion_tokens": 3})[1]
    'usage.prompt_tokens=-1; expected an integer in [0, 100000000]'
    """
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        return None, f"usage={_short(raw)}; expected an object"
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = raw.get(name)
        if not (isinstance(value, int) and _count(value)):
            bound = f"[0, {MAX_TOKENS_BELIEVED}]"
            return None, f"usage.{name}={_short(value)}; expected an integer in {bound}"
        counts.append(value)
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if not (isinstance(cached, int) and _count(cached) and cached <= counts[0]):
        cached = 0  # unknown or unbelievable: no discount
    return Usage(counts[0], counts[1], cached), None


def _count(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS_BELIEVED
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


@dataclass(frozen=True)
class ChatResult:
    """One complete answer: its text (``None`` for a tool call), checked token counts
    (``None`` if unknown or unbelievable: ``usage_problem`` says why), where it came from, and
    the upstream's whole JSON body (``body``) to relay."""

    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str = "stop"
    upstream_model: str = ""
    body: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    cached_tokens: int = 0
    usage_problem: str | None = None


def has_answer(message: object) -> bool:
    """Whether a message (or a stream delta) carries an answer: text, a tool or function
    call, a refusal or audio."""
    if not isinstance(message, dict):
        return False
    content = message.get("content")
    if isinstance(content, str) and content:
        return True
    if isinstance(content, list) and content:
        return True
    return any(message.get(k) for k in ("tool_calls", "function_call", "refusal", "audio"))


def text_chunks(text: str, *, usage: Usage | None = None, words: int = 8) -> Iterator[Chunk]:
    """``text`` as OpenAI stream chunks (``choices`` and ``delta``; the gateway sets ``id``
    and ``model``): the role with the first words, a few words each, the finish reason, and
    a usage chunk when ``usage`` is given."""
    for i, piece in enumerate(_chunks(text, words)):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        yield {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if usage is not None:
        yield {"choices": [], "usage": _usage_json(usage)}


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _chunks(text: str, words: int = 8) -> list[str]:
    """``text`` split on whitespace into pieces of ``words`` words that join back to it."""
    pieces = re.split(r"(?<=\s)(?=\S)", text)
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]
