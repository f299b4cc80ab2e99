"""What the gateway relays and accepts: tool calls, usage and the usage chunk, content parts,
capabilities, request fields; through the official openai client, in process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from mixllm import Router
from mixllm.serve import Settings
from mixllm.serve.capabilities import Capabilities

from .inprocess import gateway, openai_client, run, upstream_backend

TOOL_CALLS = [
    {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'},
    },
    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
USAGE = {
    "prompt_tokens": 31,
    "completion_tokens": 9,
    "total_tokens": 40,
    "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 4},
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def _tool_backends(router: Router, seen: list[dict[str, Any]]) -> dict[str, Any]:
    message = {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS}
    return {
        m: upstream_backend(
            m,
            message=lambda body: message,
            usage=lambda body: USAGE,
            seen=seen,
            extra={"system_fingerprint": "fp_test_42", "service_tier": "default"},
        )
        for m in router.llms
    }


def test_tool_calls_come_back_as_the_upstream_sent_them(router: Router, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def go() -> None:
        async with gateway(router, _tool_backends(router, seen), tmp_path) as (_, http):
            client = openai_client(http)
            raw = await client.chat.completions.with_raw_response.create(
                model="mixllm", messages=ASK, tools=TOOLS, tool_choice="auto"
            )
            body = json.loads(raw.http_response.text)
            choice = body["choices"][0]
            assert choice["message"] == {"role": "assistant", "content": None,
                                         "tool_calls": TOOL_CALLS}  # fmt: skip
            assert choice["finish_reason"] == "tool_calls"
            assert body["usage"] == USAGE and body["system_fingerprint"] == "fp_test_42"
            assert body["model"] == raw.headers["x-mixllm-llm"]
            assert body["id"] == f"chatcmpl-{raw.headers['x-mixllm-decision-id']}"
            parsed = raw.parse().choices[0].message.tool_calls
            assert parsed is not None and [c.function.name for c in parsed] == [
                "get_weather", "get_time",
            ]  # fmt: skip
            # the tools went upstream as sent
            assert seen[-1]["tools"] == TOOLS and seen[-1]["tool_choice"] == "auto"

            # streamed: the tool-call deltas, then the finish reason
            stream = await client.chat.completions.create(
                model="mixllm", messages=ASK, tools=TOOLS, stream=True
            )
            calls: list[dict[str, Any]] = []
            finish = None
            async for chunk in stream:
                for c in chunk.choices:
                    for call in c.delta.tool_calls or []:
                        calls.append(call.model_dump(exclude_none=True, exclude={"index"}))
                    finish = c.finish_reason or finish
            assert calls == TOOL_CALLS and finish == "tool_calls"
            assert seen[-1]["stream_options"] == {"include_usage": True}

    run(go)


def test_the_usage_chunk_arrives_when_asked_for(router: Router, tmp_path: Path) -> None:
    backends = {m: upstream_backend(m, usage=lambda body: USAGE) for m in router.llms}

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            client = openai_client(http)
            chunks = [
                c
                async for c in await client.chat.completions.create(
                    model="mixllm",
                    messages=ASK,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            ]
            assert chunks[-1].choices == [] and chunks[-1].usage is not None
            assert chunks[-1].usage.model_dump(exclude_none=True) == USAGE
            assert all(c.usage is None for c in chunks[:-1])
            plain = [
                c
                async for c in await client.chat.completions.create(
                    model="mixllm", messages=ASK, stream=True
                )
            ]
            assert all(c.usage is None for c in plain) and all(c.choices for c in plain)
            text = "".join(c.choices[0].delta.content or "" for c in plain)
            assert text.startswith("answer from ")

    run(go)


def test_usage_chunk_is_counted_when_the_upstream_sends_none(
    router: Router, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []
    backends = {m: upstream_backend(m, seen=seen) for m in router.llms}
    for b in backends.values():
        b.stream_usage = False  # an upstream that rejects stream_options

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            chunks = [
                c
                async for c in await openai_client(http).chat.completions.create(
                    model="mixllm",
                    messages=ASK,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            ]
            usage = chunks[-1].usage
            assert "stream_options" not in seen[-1]
            assert usage is not None and usage.completion_tokens > 0
            assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    run(go)


def test_images_reach_a_vision_llm_and_never_another(router: Router, tmp_path: Path) -> None:
    vision, *blind = router.llms
    seen: dict[str, list[dict[str, Any]]] = {m: [] for m in router.llms}
    backends = {
        m: upstream_backend(
            m, seen=seen[m], capabilities=Capabilities(vision=(m == vision), tools=False)
        )
        for m in router.llms
    }
    image = {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "low"},
    }
    parts = [{"type": "text", "text": "What is in this picture?"}, image]

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            client = openai_client(http)
            for _ in range(5):
                raw = await client.chat.completions.with_raw_response.create(
                    model="mixllm", messages=[{"role": "user", "content": parts}]
                )
                assert raw.headers["x-mixllm-llm"] == vision
            assert len(seen[vision]) == 5 and all(not seen[m] for m in blind)
            assert seen[vision][-1]["messages"][0]["content"] == parts  # passed on as sent
            # asked of blind LLMs only: 400 naming what was needed
            r = await http.post(
                "/v1/chat/completions",
                json={
                    "model": "mixllm",
                    "messages": [{"role": "user", "content": parts}],
                    "mixllm": {"candidates": blind},
                },
            )
            assert (
                r.status_code == 400 and "vision (1 image part(s))" in r.json()["error"]["message"]
            )
            # tools: nobody declared them here but... the vision LLM said tools=False too
            r = await http.post(
                "/v1/chat/completions", json={"model": "mixllm", "messages": ASK, "tools": TOOLS}
            )
            assert r.status_code == 400 and "tools" in r.json()["error"]["message"]
            assert all(len(seen[m]) == (5 if m == vision else 0) for m in router.llms)

    run(go)


def test_a_failing_vision_llm_falls_back_to_no_blind_one(router: Router, tmp_path: Path) -> None:
    vision, *blind = router.llms
    seen: dict[str, list[dict[str, Any]]] = {m: [] for m in router.llms}
    backends = {
        m: upstream_backend(m, seen=seen[m], capabilities=Capabilities(vision=(m == vision)))
        for m in router.llms
    }

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise httpx.ConnectError("refused")

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            backends[vision]._client.send = down  # type: ignore[method-assign,union-attr]
            image = {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}
            r = await http.post(
                "/v1/chat/completions",
                json={"model": "mixllm", "messages": [{"role": "user", "content": [image]}]},
            )
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert all(not seen[m] for m in blind)

    run(go)


def test_long_prompts_go_only_to_llms_whose_window_holds_them(
    router: Router, tmp_path: Path
) -> None:
    small, *large = router.llms
    backends = {
        m: upstream_backend(m, capabilities=Capabilities(context_tokens=64 if m == small else None))
        for m in router.llms
    }
    long_prompt = "word " * 200

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            for _ in range(4):
                r = await http.post(
                    "/v1/chat/completions",
                    json={
                        "model": "mixllm",
                        "messages": [{"role": "user", "content": long_prompt}],
                    },
                )
                assert r.status_code == 200 and r.headers["x-mixllm-llm"] in large
            r = await http.post(
                "/v1/chat/completions",
                json={"model": small, "messages": [{"role": "user", "content": long_prompt}]},
            )
            assert r.status_code == 400 and "context window" in r.json()["error"]["message"]

    run(go)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api_base", "http://169.254.169.254/"),
        ("service_tier", "priority"),
        ("store", True),
        ("max_completion_tokens", 10_000_000),
        ("max_completion_tokens", -5),
        ("max_tokens", 0),
        ("top_logprobs", 99),
        ("logit_bias", {"50256": 1000}),
    ],
)
def test_fields_outside_the_allowlist_or_bounds_are_refused(
    router: Router, tmp_path: Path, field: str, value: Any
) -> None:
    seen: list[dict[str, Any]] = []
    backends = {m: upstream_backend(m, seen=seen) for m in router.llms}

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            r = await http.post(
                "/v1/chat/completions", json={"model": "mixllm", "messages": ASK, field: value}
            )
            assert r.status_code == 400, r.text
            assert field in r.json()["error"]["message"]
            assert seen == []

    run(go)


def test_every_role_and_part_is_accepted_and_passed_on(router: Router, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    backends = {m: upstream_backend(m, seen=seen) for m in router.llms}
    messages = [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "system", "content": [{"type": "text", "text": "You are helpful."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "Transcribe and compare."},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "JVBERi0="}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS[:1]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]},
        {"role": "function", "name": "get_time", "content": "noon"},
        {"role": "user", "content": "And now?", "name": "ana"},
    ]  # fmt: skip

    async def go() -> None:
        async with gateway(router, backends, tmp_path) as (_, http):
            r = await http.post(
                "/v1/chat/completions",
                json={
                    "model": "mixllm",
                    "messages": messages,
                    "tools": TOOLS,
                    "seed": 7,
                    "response_format": {
                        "type": "json_schema",
                        "json_schema": {
                            "name": "reply",
                            "schema": {"type": "object"},
                            "strict": True,
                        },
                    },
                },
            )
            assert r.status_code == 200, r.text
            sent = seen[-1]
            assert sent["messages"] == messages and sent["seed"] == 7
            assert sent["response_format"]["json_schema"]["schema"] == {"type": "object"}
            assert sent["max_tokens"] == Settings().default_max_tokens  # the reserved cap
            for bad in (
                {"role": "tool", "content": "x"},  # no tool_call_id
                {"role": "user", "content": [{"type": "video", "video": {}}]},
                {"role": "robot", "content": "x"},
                {"role": "user", "content": "x", "tool_calls": TOOL_CALLS},
            ):
                r = await http.post(
                    "/v1/chat/completions", json={"model": "mixllm", "messages": [bad]}
                )
                assert r.status_code == 400, (bad, r.text)

    run(go)


def test_legacy_completions_is_a_clear_404(router: Router, tmp_path: Path) -> None:
    async def go() -> None:
        backends = {m: upstream_backend(m) for m in router.llms}
        async with gateway(router, backends, tmp_path) as (_, http):
            r = await http.post("/v1/completions", json={"model": "mixllm", "prompt": "hi"})
            assert r.status_code == 404
            assert "/v1/chat/completions" in r.json()["error"]["message"]

    run(go)
