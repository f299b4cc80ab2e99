"""Request bodies of the gateway's HTTP API (pydantic: the only place it is used).

The chat request follows OpenAI's chat completions schema (every role and content part);
routing options come in a ``mixllm`` object (the OpenAI client's ``extra_body={"mixllm":
{...}}``), never parsed out of strings. The OpenAI parameters of :data:`UPSTREAM_FIELDS` are
checked and passed on to the upstream; any other field is refused, so nothing unchecked
(``api_base``, ``service_tier``, ``store``, ...) reaches an upstream.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mixllm.serve.messages import (
    ChatMessage,
    FunctionDef,
    NamedTool,
    ResponseFormat,
    StreamOptions,
    Tool,
    ToolName,
    _Strict,
)

__all__ = [
    "UPSTREAM_FIELDS",
    "AddLLMRequest",
    "ChatMessage",
    "ChatRequest",
    "DefaultsRequest",
    "FeedbackRequest",
    "RoutingOptions",
    "UpstreamRequest",
]

#: Bounded, so that a product of two (λ·cost, a price times tokens) stays finite: an inf from
#: one request or one feedback would be in every later score and answer (not valid JSON).
NonNegative = Annotated[float, Field(ge=0.0, le=1e12, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
#: A new LLM's name goes into response headers: printable ASCII, spaces only inside.
LLMName = Annotated[Name, Field(pattern=r"^[!-~](?:[ -~]*[!-~])?$")]


_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DEPTH = 100  # nesting of a request body: OpenAI's schema needs a few levels, tools a few more


class _Body(BaseModel):
    """A whole request body, checked once for what Python's JSON parser lets through but
    nothing after it can handle: lone surrogates (a ``"\\ud800"`` escape: no UTF-8 for it),
    ``NaN`` and ``Infinity`` (not JSON) and nesting too deep to encode again."""

    @model_validator(mode="before")
    @classmethod
    def _plain_json(cls, data: Any) -> Any:
        todo: list[tuple[int, Any, Any]] = [(0, None, data)]  # no recursion: it nests deeply
        while todo:
            depth, where, node = todo.pop()  # where: (parent's where, key), or None
            if depth > MAX_DEPTH:
                raise ValueError(f"{_path(where)}: nested deeper than {MAX_DEPTH} levels")
            if isinstance(node, dict):
                items: Any = node.items()
                for key in node:
                    if isinstance(key, str) and _SURROGATE.search(key):
                        raise ValueError(f"{_path((where, key))}: {_NOT_UNICODE}")
            elif isinstance(node, list):
                items = enumerate(node)
            else:
                continue
            for key, value in items:
                if isinstance(value, (dict, list)):
                    if value:
                        todo.append((depth + 1, (where, key), value))
                elif isinstance(value, str):
                    if _SURROGATE.search(value):
                        raise ValueError(f"{_path((where, key))}: {_NOT_UNICODE}")
                elif isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(f"{_path((where, key))} is {value}; expected a finite number")
        return data


_NOT_UNICODE = "not valid Unicode (a lone surrogate escape)"


def _path(where: Any) -> str:
    keys = []
    while where is not None:
        where, key = where
        keys.append(_SURROGATE.sub("?", str(key)))
    return ".".join(reversed(keys)) or "body"


class RoutingOptions(_Strict):
    """``extra_body={"mixllm": {...}}``: per-request λ or target (``cost_share``,
    ``budget_per_query``, ``strong_share``, ``min_quality_share`` with ``confidence`` and
    ``over``, the queries its guarantee is about, or ``"inf"``; checked
    by :func:`mixllm.policy.targets.parse_target`), candidate LLMs, cost ceiling, and the
    conversation (session) the request belongs to."""

    lam: NonNegative | None = None
    cost_share: Finite | None = None
    budget_per_query: Finite | None = None
    strong_share: Finite | None = None
    min_quality_share: Finite | None = None
    confidence: Finite | None = None
    over: Annotated[int, Field(ge=1, le=10**12)] | Literal["inf"] | None = None
    candidates: Annotated[list[Name], Field(min_length=1, max_length=1000)] | None = None
    max_cost_usd: NonNegative | None = None
    session: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[!-~]+$")] | None = None


Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
#: Request fields passed on to the upstream, as sent (bounded above); ``max_tokens`` may be
#: lowered to what the key's budget or the LLM allows. Any other field is a 400.
UPSTREAM_FIELDS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "user", "tools",
    "tool_choice", "parallel_tool_calls", "functions", "function_call", "response_format",
    "reasoning_effort", "verbosity", "prompt_cache_key", "safety_identifier",
)  # fmt: skip


class ChatRequest(_Body):
    """``POST /v1/chat/completions``: OpenAI's chat request; fields outside
    :data:`UPSTREAM_FIELDS` and the routing ones (``model``, ``messages``, ``stream``,
    ``stream_options``, ``n``, ``mixllm``) are refused."""

    model_config = ConfigDict(extra="forbid")
    model: Name
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=10_000)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: (
        Annotated[dict[str, Annotated[float, Field(ge=-100, le=100)]], Field(max_length=1024)]
        | None
    ) = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), lt=2**63)] | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    tools: Annotated[list[Tool], Field(max_length=512)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedTool | None = None
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[FunctionDef], Field(max_length=512)] | None = None
    function_call: Literal["none", "auto"] | dict[str, ToolName] | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    prompt_cache_key: Annotated[str, Field(max_length=256)] | None = None
    safety_identifier: Annotated[str, Field(max_length=256)] | None = None
    mixllm: RoutingOptions | None = None

    def prompt(self) -> str:
        """The text the router sees: every message's text, in order."""
        return "\n\n".join(t for t in (m.text() for m in self.messages) if t)

    def upstream_params(self) -> dict[str, Any]:
        """The request's fields to pass on, as sent (``by_alias``: a json_schema's
        ``schema``)."""
        return self.model_dump(include=set(UPSTREAM_FIELDS), exclude_unset=True, by_alias=True)

    def messages_out(self) -> list[dict[str, Any]]:
        """The messages to pass on, as sent."""
        return [m.model_dump(exclude_unset=True, by_alias=True) for m in self.messages]

    def answer_cap(self) -> int | None:
        """The answer's token limit the client set (``max_completion_tokens`` first)."""
        return self.max_completion_tokens or self.max_tokens

    def conversation_id(self, key_name: str) -> str:
        """A conversation's id when the client gives none: a hash of the key's name and the
        first messages (the instructions and the first user message), the same on every turn."""
        first: list[Any] = []
        for m in self.messages:
            first.append(m.model_dump(include={"role", "content", "name"}, exclude_unset=True))
            if m.role == "user":
                break
        text = json.dumps([key_name, first], sort_keys=True, ensure_ascii=True)
        return "h-" + hashlib.sha256(text.encode()).hexdigest()[:32]

    def needs(self) -> dict[str, str]:
        """The capabilities this request needs, each with why: ``tools``, ``json_schema``,
        ``vision``, ``audio``, ``files``."""
        needs: dict[str, str] = {}
        if self.tools or self.functions:
            needs["tools"] = "the request carries tools"
        elif any(m.role in ("tool", "function") or m.tool_calls for m in self.messages):
            needs["tools"] = "the conversation has tool calls"
        if self.response_format is not None and self.response_format.type == "json_schema":
            needs["json_schema"] = "response_format is json_schema"
        media: Counter[str] = Counter()
        for m in self.messages:
            media.update(m.media())
        for kind, capability in (("image", "vision"), ("audio", "audio"), ("file", "files")):
            if media[kind]:
                needs[capability] = f"{media[kind]} {kind} part(s)"
        return needs

    def media_parts(self) -> int:
        """How many image, audio and file parts the messages carry."""
        return sum(sum(m.media().values()) for m in self.messages)

    def tool_continuation(self) -> bool:
        """The last message answers a tool call (or the last assistant turn called tools):
        the conversation must stay on its LLM."""
        last = self.messages[-1]
        return last.role in ("tool", "function") or bool(last.tool_calls or last.function_call)


class FeedbackRequest(_Body, _Strict):
    """``POST /v1/feedback``: the response ``id`` and a reward and/or a measured quality."""

    id: Name
    reward: bool | None = None
    quality: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    cost_usd: NonNegative | None = None

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.reward is None and self.quality is None and self.cost_usd is None:
            raise ValueError("feedback carries nothing; expected reward, quality or cost_usd")
        return self


_HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")


def _upstream_url(url: str) -> str:
    """http(s), a host of ASCII letters, digits, dots and dashes (httpx fails outside its
    transport errors on some others: IDNA, IPv6), a valid port, no user info."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not _HOST.fullmatch(host) or "xn--" in host or parts.username is not None:
        raise ValueError(f"host {host!r}; expected a name or IPv4 address in ASCII")
    if parts.port == 0:  # parts.port raises a ValueError itself past 65535
        raise ValueError("port 0; expected 1 to 65535")
    return url


class UpstreamRequest(_Strict):
    """An OpenAI-compatible upstream for an LLM added at run time."""

    base_url: Annotated[
        str,
        Field(min_length=1, max_length=2000, pattern=r"^https?://[!-~]+$"),
        AfterValidator(_upstream_url),
    ]
    model: Name
    api_key_env: Name | None = None
    timeout_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 60.0
    capabilities: dict[str, bool | int | float] | None = None  # see Capabilities
    stream_usage: bool | None = None


class AddLLMRequest(_Body, _Strict):
    """``POST /admin/llms``."""

    name: LLMName
    price_in_per_mtok: NonNegative
    price_out_per_mtok: NonNegative
    upstream: UpstreamRequest | None = None


class DefaultsRequest(_Body, _Strict):
    """``PATCH /admin/defaults``: the router's defaults for requests that do not set them."""

    lam: NonNegative | None = None
    alpha: NonNegative | None = None
    beta: NonNegative | None = None
    tau_s: Annotated[float, Field(gt=0.0)] | None = None
