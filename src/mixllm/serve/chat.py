"""What a backend answers, and its parts: OpenAI messages, request fields and stream
chunks as plain JSON objects; :class:`ChatResult` (a whole answer, its upstream JSON kept to
be relayed); :class:`Usage` read from an upstream and checked (:func:`read_usage`); whether a
message or delta carries an answer (:func:`has_answer`); a text as stream chunks
(:func:`text_chunks`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_TOKENS_BELIEVED",
    "UNREADABLE_USAGE",
    "ChatResult",
    "Chunk",
    "Messages",
    "Params",
    "Usage",
    "has_answer",
    "read_usage",
    "relayable_json",
    "strict_json",
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


#: Nesting an upstream's JSON may have (OpenAI's answers need a handful of levels; tool
#: arguments are strings): deeper is not an answer, and could not be encoded again.
MAX_JSON_DEPTH = 64


def strict_json(text: str | bytes) -> Any:
    """An upstream's JSON, strictly: ``NaN``, ``Infinity``, numbers that overflow to infinity
    and nesting deeper than :data:`MAX_JSON_DEPTH` are a ``ValueError`` (none of them can be
    relayed as JSON).

    >>> strict_json('{"usage": {"prompt_tokens": 3}}')
    {'usage': {'prompt_tokens': 3}}
    >>> strict_json('{"x": NaN}')
    Traceback (most recent call last):
    ...
    ValueError: NaN is not JSON
    """
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    _check_tree(value)
    return value


#: What stands for an upstream's usage that could not be read (it is charged its reservation).
UNREADABLE_USAGE = "unreadable"


def relayable_json(text: str | bytes) -> tuple[Any, str | None]:
    """An upstream's JSON and ``None``; or, when only its ``usage`` cannot be relayed (``NaN``,
    ``Infinity``, an overflowing number), the rest with :data:`UNREADABLE_USAGE` as its usage,
    and why. Anything else that is not strict JSON is a ``ValueError``.

    >>> relayable_json('{"choices": [], "usage": {"prompt_tokens": NaN}}')
    ({'choices': [], 'usage': 'unreadable'}, 'usage: NaN is not JSON')
    """
    try:
        return strict_json(text), None
    except ValueError as exc:
        why = str(exc)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError(why) from None
    if not (isinstance(value, dict) and "usage" in value):
        raise ValueError(why)
    rest = {k: v for k, v in value.items() if k != "usage"}
    _check_tree(rest)  # the problem was elsewhere too: ValueError
    return {**rest, "usage": UNREADABLE_USAGE}, f"usage: {why}"


def _check_tree(value: Any) -> None:
    """``ValueError`` for a non-finite number or nesting deeper than MAX_JSON_DEPTH."""
    todo: list[tuple[int, Any]] = [(0, value)]
    while todo:
        depth, node = todo.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{node} is not JSON")
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        todo.extend((depth + 1, c) for c in children)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:20]} is out of range")
    return number
