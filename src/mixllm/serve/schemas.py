"""Request bodies of the gateway's HTTP API (pydantic: the only place it is used).

The chat request follows OpenAI's chat completions schema; routing options come in a ``mixllm``
object (the OpenAI client's ``extra_body={"mixllm": {...}}``), never parsed out of strings.
Other OpenAI parameters (``temperature``, ``max_tokens``, ``stop``, ...) are checked where their
type is known and passed on to the upstream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AddLLMRequest",
    "ChatMessage",
    "ChatRequest",
    "DefaultsRequest",
    "FeedbackRequest",
    "RoutingOptions",
    "UpstreamRequest",
]

NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


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


class ChatRequest(BaseModel):
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


class FeedbackRequest(_Strict):
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


class UpstreamRequest(_Strict):
    """An OpenAI-compatible upstream for an LLM added at run time."""

    base_url: Annotated[str, Field(min_length=1, max_length=2000, pattern=r"^https?://")]
    model: Name
    api_key_env: Name | None = None
    timeout_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 60.0


class AddLLMRequest(_Strict):
    """``POST /admin/llms``."""

    name: Name
    price_in_per_mtok: NonNegative
    price_out_per_mtok: NonNegative
    upstream: UpstreamRequest | None = None


class DefaultsRequest(_Strict):
    """``PATCH /admin/defaults``: the router's defaults for requests that do not set them."""

    lam: NonNegative | None = None
    alpha: NonNegative | None = None
    beta: NonNegative | None = None
    tau_s: Annotated[float, Field(gt=0.0)] | None = None
