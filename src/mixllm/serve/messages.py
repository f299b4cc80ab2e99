"""The parts of a chat request in OpenAI's chat schema: messages of every role, their content
parts (text, image, audio, file, refusal), tool calls, tools and output formats. Each is
strict (an unknown field is refused); the router reads the text, and everything is passed on
to the LLM as sent. :class:`~mixllm.serve.schemas.ChatRequest` puts them together."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ChatMessage",
    "ContentPart",
    "FunctionDef",
    "NamedTool",
    "ResponseFormat",
    "StreamOptions",
    "Tool",
    "ToolName",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


# -- messages and their content parts (OpenAI's chat schema) -------------------------------------
Text = Annotated[str, Field(max_length=10_000_000)]
ShortText = Annotated[str, Field(max_length=1_000)]
ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class TextPart(_Strict):
    type: Literal["text"]
    text: Text


class RefusalPart(_Strict):
    type: Literal["refusal"]
    refusal: Text


class ImageURL(_Strict):
    url: Annotated[str, Field(min_length=1, max_length=20_000_000)]  # https:// or data:
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Strict):
    data: Annotated[str, Field(max_length=20_000_000)]  # base64
    format: Literal["wav", "mp3"]


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(_Strict):
    file_data: Annotated[str, Field(max_length=20_000_000)] | None = None
    file_id: ShortText | None = None
    filename: ShortText | None = None


class FilePart(_Strict):
    type: Literal["file"]
    file: FileRef


ContentPart = Annotated[
    TextPart | RefusalPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")
]


class FunctionCall(_Strict):
    name: ToolName
    arguments: Text = ""


class ToolCall(_Strict):
    """An assistant message's tool call, sent back with the conversation."""

    id: ShortText
    type: Literal["function", "custom"] = "function"
    function: FunctionCall | None = None
    custom: dict[str, Any] | None = None


class ChatMessage(_Strict):
    """One message of any role of OpenAI's chat schema. ``content`` is text or a list of
    parts (text, image, audio, file, refusal); the router reads the text, the rest is passed
    on to the LLM as sent."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | Annotated[list[ContentPart], Field(max_length=10_000)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=1_000)] | None = None
    tool_call_id: ShortText | None = None
    function_call: FunctionCall | None = None
    refusal: Text | None = None
    audio: dict[str, ShortText] | None = None

    @model_validator(mode="after")
    def _by_role(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs tool_call_id (the call it answers)")
        if self.role == "function" and not self.name:
            raise ValueError("a 'function' message needs the function's name")
        if self.role != "assistant":
            for name in ("tool_calls", "function_call", "refusal", "audio"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} is only for assistant messages, not {self.role!r}")
        return self

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if isinstance(p, TextPart))
        return self.content or ""

    def media(self) -> Counter[str]:
        """Non-text parts by kind (``image``, ``audio``, ``file``)."""
        kinds: Counter[str] = Counter()
        if isinstance(self.content, list):
            for part in self.content:
                kind = _MEDIA.get(part.type)
                if kind is not None:
                    kinds[kind] += 1
        return kinds


_MEDIA = {"image_url": "image", "input_audio": "audio", "file": "file"}


# -- tools and output formats --------------------------------------------------------------------
class FunctionDef(_Strict):
    name: ToolName
    description: Text | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function", "custom"]
    function: FunctionDef | None = None
    custom: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _defined(self) -> Tool:
        if getattr(self, self.type) is None:
            raise ValueError(f"a {self.type!r} tool needs its {self.type!r} object")
        return self


class NamedTool(_Strict):
    type: Literal["function", "custom", "allowed_tools"]
    function: dict[str, Any] | None = None
    custom: dict[str, Any] | None = None
    allowed_tools: dict[str, Any] | None = None


class JSONSchemaFormat(_Strict):
    name: ToolName
    description: Text | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type 'json_schema' needs 'json_schema'")
        return self


class StreamOptions(_Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None
