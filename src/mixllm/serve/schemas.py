"""Request bodies of the gateway's HTTP API (pydantic: the only place it is used).

The chat request follows OpenAI's chat completions schema; routing options come in a ``mixllm``
object (the OpenAI client's ``extra_body={"mixllm": {...}}``), never parsed out of strings.
Other OpenAI parameters (``temperature``, ``max_tokens``, ``stop``, ...) are checked where their
type is known and passed on to the upstream.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
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
Name = Annotated[str, Field(min_length=1, max_length=200)]
#: A new LLM's name goes into response headers: printable ASCII, spaces only inside.
LLMName = Annotated[Name, Field(pattern=r"^[!-~](?:[ -~]*[!-~])?$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DEPTH = 100  # nesting of a request body: OpenAI's schema needs a few levels, tools a few more


class _Body(BaseModel):
    """A whole request body, checked once for what Python's JSON parser lets through but
    nothing after it can handle (extra fields are passed on upstream as they are): lone
    surrogates (a ``"\\ud800"`` escape: no UTF-8 for it), ``NaN`` and ``Infinity`` (not JSON)
    and nesting too deep to encode again."""

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


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message; ``content`` is text or a list of text parts (images are not routed)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content)
        return self.content or ""


class RoutingOptions(_Strict):
    """``extra_body={"mixllm": {...}}``: per-request λ, candidate LLMs, cost ceiling."""

    lam: NonNegative | None = None
    candidates: Annotated[list[Name], Field(min_length=1, max_length=1000)] | None = None
    max_cost_usd: NonNegative | None = None


class ChatRequest(_Body):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")
    model: Name
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=10_000)]
    stream: bool = False
    n: Literal[1] = 1
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    stop: str | Annotated[list[str], Field(max_length=16)] | None = None
    mixllm: RoutingOptions | None = None

    def prompt(self) -> str:
        """The text the router sees: every message's text, in order."""
        return "\n\n".join(t for t in (m.text() for m in self.messages) if t)

    def upstream_params(self) -> dict[str, Any]:
        """OpenAI parameters to pass on (everything but the routing fields)."""
        skip = {"model", "messages", "stream", "mixllm", "n"}
        return {k: v for k, v in self.model_dump(exclude_none=True).items() if k not in skip}


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
