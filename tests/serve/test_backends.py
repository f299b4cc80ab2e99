"""Backends: OpenAIBackend against a real local upstream; ReplayBackend; FakeBackend."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from mixllm.data.dataset import Dataset, Outcome
from mixllm.embed import HashingEmbedder
from mixllm.errors import BackendError, ConfigError, UnknownLLMError
from mixllm.serve.backends import Backend, OpenAIBackend, make_backend
from mixllm.serve.chat import ChatResult
from mixllm.serve.fake import FakeBackend
from mixllm.serve.replay import ReplayBackend

SECRET = "sk-test-SECRET-1234567890"
MESSAGES = [{"role": "user", "content": "hello"}]
DELTAS = ["Hel", "lo, ", "wörld", "\n", "  and ", "more."]
TIMEOUT_S = 0.3
SLOW_S = 3.0


def _upstream() -> tuple[FastAPI, list[dict[str, Any]]]:
    """An OpenAI-like upstream whose behaviour is picked by the first path segment."""
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    def sse(events: list[str]) -> StreamingResponse:
        async def gen() -> AsyncIterator[str]:
            for e in events:
                yield f"data: {e}\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream")

    def chunk(content: str | None, finish: str | None = None) -> str:
        delta = {} if content is None else {"content": content}
        return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    @app.post("/{mode}/v1/chat/completions")
    async def chat(mode: str, request: Request) -> Response:
        body = await request.json()
        seen.append({"mode": mode, "auth": request.headers.get("authorization"), "body": body})
        if mode == "ok" and body.get("stream"):
            events = [json.dumps({"choices": [{"delta": {"role": "assistant"}}]})]
            events += [chunk(d) for d in DELTAS] + [chunk(None, "stop")]
            events += [json.dumps({"choices": [], "usage": {"completion_tokens": 6}}), "[DONE]"]
            return sse(events)
        if mode == "ok":
            message = {"role": "assistant", "content": "Hi there!"}
            return JSONResponse(
                {
                    "model": "upstream-model-v2",
                    "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3},
                }
            )
        if mode in ("500", "429", "400"):
            err = {"error": {"message": f"boom {mode} " + "x" * 500, "type": "t"}}
            return JSONResponse(err, status_code=int(mode))
        if mode == "401":
            msg = f"Incorrect API key provided: {SECRET}."
            return JSONResponse({"error": {"message": msg}}, status_code=401)
        if mode == "slow":  # answers after SLOW_S, or stops when the client hangs up
            end = time.monotonic() + SLOW_S
            while time.monotonic() < end and not await request.is_disconnected():
                await asyncio.sleep(0.02)
            return JSONResponse({"choices": [{"message": {"content": "late"}}]})
        if mode == "null":
            return JSONResponse({"choices": [{"message": {"role": "assistant", "content": None}}]})
        if mode == "nochoices":
            return JSONResponse({"choices": []})
        if mode == "badjson":
            return Response("{not json", media_type="application/json")
        if mode == "midbad":
            return sse([chunk("first "), "{not json"])
        if mode == "notext":
            return sse([chunk(None, "stop"), "[DONE]"])
        if mode == "truncated":
            return sse([chunk("partial ")])
        return JSONResponse({"error": f"unknown mode {mode}"}, status_code=404)

    return app, seen


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Run the upstream with uvicorn on a free local port in a thread; yield (root url, seen)."""
    app, seen = _upstream()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", ws="none", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "upstream did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", seen
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()
    assert not thread.is_alive()


def _backend(root: str, mode: str, **kw: Any) -> OpenAIBackend:
    return OpenAIBackend(
        "small", base_url=f"{root}/{mode}/v1", model="m1", api_key=SECRET, timeout_s=TIMEOUT_S, **kw
    )


def _complete(backend: Backend, prompt: str = "hello", **params: Any) -> ChatResult:
    async def go() -> ChatResult:
        try:
            return await asyncio.wait_for(backend.complete(MESSAGES, params, prompt=prompt), 5)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def _stream(backend: Backend, prompt: str = "hello") -> tuple[list[str], BackendError | None]:
    """The text deltas streamed before the end or the error (returned, not raised)."""
    got: list[str] = []

    async def go() -> BackendError | None:
        try:
            async for chunk in backend.stream(MESSAGES, {"temperature": 0}, prompt=prompt):
                choices = chunk.get("choices") or [{}]
                text = (choices[0].get("delta") or {}).get("content")
                if text:
                    got.append(text)
        except BackendError as exc:
            return exc
        finally:
            await backend.aclose()
        return None

    return got, asyncio.run(asyncio.wait_for(go(), 5))


def _fails(backend: Backend) -> BackendError:
    with pytest.raises(BackendError) as info:
        _complete(backend)
    return info.value


# -- OpenAIBackend against a real local upstream ----------------------------------------------
def test_openai_complete_sends_model_params_and_key(upstream: tuple[str, list[Any]]) -> None:
    root, seen = upstream
    result = _complete(_backend(root, "ok"), temperature=0.2, max_tokens=5)
    assert result == ChatResult("Hi there!", 7, 3, "length", "upstream-model-v2")
    sent = seen[-1]
    assert sent["auth"] == f"Bearer {SECRET}"
    assert sent["body"]["model"] == "m1"
    assert sent["body"]["messages"] == MESSAGES
    assert sent["body"]["temperature"] == 0.2 and sent["body"]["max_tokens"] == 5


def test_openai_stream_reassembles_text_exactly(upstream: tuple[str, list[Any]]) -> None:
    root, seen = upstream
    got, err = _stream(_backend(root, "ok"))
    assert err is None
    assert got == DELTAS and "".join(got) == "".join(DELTAS)
    assert seen[-1]["body"]["stream"] is True


@pytest.mark.parametrize(
    ("mode", "retryable", "status"),
    [("500", True, 500), ("429", True, 429), ("400", False, 400), ("401", False, 401)],
)
def test_openai_http_errors(
    upstream: tuple[str, list[Any]], mode: str, retryable: bool, status: int
) -> None:
    root, _ = upstream
    backend = _backend(root, mode)
    err = _fails(backend)
    assert (err.retryable, err.status) == (retryable, status)
    assert f"HTTP {status}" in str(err)
    assert f"boom {mode}" in str(err) or mode == "401"
    assert len(str(err)) < 400, "the upstream message is truncated"
    assert SECRET not in str(err) and SECRET not in repr(backend)
    # the same error before the first delta when streaming: nothing was yielded
    got, stream_err = _stream(_backend(root, mode))
    assert got == [] and stream_err is not None
    assert (stream_err.retryable, stream_err.status) == (retryable, status)
    assert SECRET not in str(stream_err)


@pytest.mark.parametrize("mode", ["null", "nochoices", "badjson"])
def test_openai_ok_without_text_is_a_retryable_error(
    upstream: tuple[str, list[Any]], mode: str
) -> None:
    err = _fails(_backend(upstream[0], mode))
    assert err.retryable and "no answer" in str(err)


def test_openai_timeout_is_retryable(upstream: tuple[str, list[Any]]) -> None:
    t0 = time.monotonic()
    err = _fails(_backend(upstream[0], "slow"))
    assert err.retryable and err.status is None and "timed out" in str(err)
    assert time.monotonic() - t0 < TIMEOUT_S + 1.5  # bounded by timeout_s, not by the upstream
    assert SECRET not in str(err)


def test_openai_connection_refused_is_retryable() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    err = _fails(_backend(f"http://127.0.0.1:{port}", "ok"))
    assert err.retryable and "connection failed" in str(err)
    assert SECRET not in str(err)


@pytest.mark.parametrize(
    ("mode", "deltas", "retryable"),
    [("notext", [], True), ("midbad", ["first "], False), ("truncated", ["partial "], False)],
)
def test_openai_stream_failures(
    upstream: tuple[str, list[Any]], mode: str, deltas: list[str], retryable: bool
) -> None:
    got, err = _stream(_backend(upstream[0], mode))
    assert got == deltas
    assert err is not None and err.retryable is retryable
    assert SECRET not in str(err)


def test_openai_injected_client_is_left_open(upstream: tuple[str, list[Any]]) -> None:
    import httpx

    async def go() -> str:
        async with httpx.AsyncClient() as client:
            backend = _backend(upstream[0], "ok", client=client)
            result = await backend.complete(MESSAGES, {}, prompt="hello")
            await backend.aclose()
            assert not client.is_closed
            return result.text

    assert asyncio.run(go()) == "Hi there!"


def test_openai_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="localhost:8000"):
        OpenAIBackend("a", base_url="localhost:8000", model="m")
    with pytest.raises(ConfigError, match="timeout_s"):
        OpenAIBackend("a", base_url="http://x", model="m", timeout_s=0)


# -- make_backend --------------------------------------------------------------------------
def test_make_backend_reads_key_from_environment() -> None:
    config = {"llm": "big", "base_url": "https://u/v1/", "model": "m", "api_key_env": "MY_KEY"}
    backend = make_backend({**config, "timeout_s": 30}, environ={"MY_KEY": SECRET})
    assert isinstance(backend, OpenAIBackend) and isinstance(backend, Backend)
    assert (backend.llm, backend.base_url, backend.timeout_s) == ("big", "https://u/v1", 30.0)
    assert SECRET not in repr(backend)


def test_make_backend_errors_name_the_problem() -> None:
    config = {"llm": "big", "base_url": "https://u/v1", "model": "m", "api_key_env": "MY_KEY"}
    with pytest.raises(ConfigError, match="'MY_KEY'") as info:
        make_backend(config, environ={"OTHER": SECRET})
    assert SECRET not in str(info.value)
    with pytest.raises(ConfigError, match=r"unknown keys \['modle'\], missing keys \['model'\]"):
        make_backend({"llm": "big", "base_url": "https://u/v1", "modle": "m"}, environ={})


# -- ReplayBackend -------------------------------------------------------------------------
@pytest.fixture
def replay_data() -> Dataset:
    prompts = ["red apple banana fruit salad", "quantum photon laser atom", "what is 2+2"]
    long = " ".join(f"word{i}" for i in range(20))
    responses = np.array(
        [["Fruit answer.", "Big fruit answer."], [long, None], ["4", "Four."]], dtype=object
    )
    return Dataset(
        query_ids=np.array(["q0", "q1", "q2"], dtype=object),
        prompts=np.array(prompts, dtype=object),
        llms=("small", "big"),
        quality=np.ones((3, 2)),
        cost_usd=np.full((3, 2), 0.001),
        prompt_tokens=np.array([5.0, 4.0, np.nan]),
        output_tokens=np.array([[2.0, 3.0], [20.0, np.nan], [1.0, np.nan]]),
        latency_s=np.full((3, 2), np.nan),
        tasks=np.array([None, None, None], dtype=object),
        responses=responses,
        name="tiny",
    )


def test_replay_exact_prompt(replay_data: Dataset) -> None:
    result = _complete(ReplayBackend("small", replay_data), prompt="red apple banana fruit salad")
    assert result == ChatResult("Fruit answer.", 5, 2, "stop", "replay:small")
    assert (
        _complete(ReplayBackend("big", replay_data), prompt="what is 2+2").completion_tokens is None
    )


def test_replay_nearest_prompt_with_embedder(replay_data: Dataset) -> None:
    backend = ReplayBackend("small", replay_data, embedder=HashingEmbedder(256))
    result = _complete(backend, prompt="a laser and a photon")
    assert result.text.startswith("word0 word1") and result.completion_tokens == 20
    assert result.prompt_tokens is None  # the recorded prompt's count does not apply


def test_replay_nearest_prompt_skips_missing_responses(replay_data: Dataset) -> None:
    backend = ReplayBackend("big", replay_data, embedder=HashingEmbedder(256))
    assert _complete(backend, prompt="quantum photon laser atoms").text != ""


def test_replay_unknown_prompt_without_embedder(replay_data: Dataset) -> None:
    err = _fails(ReplayBackend("small", replay_data))
    assert not err.retryable and "'hello' is not in the replay data of 'tiny'" in str(err)


def test_replay_missing_response_is_retryable(replay_data: Dataset) -> None:
    with pytest.raises(BackendError, match=r"no recorded response by 'big' to query 'q1'") as info:
        _complete(ReplayBackend("big", replay_data), prompt="quantum photon laser atom")
    assert info.value.retryable


def test_replay_stream_chunks_join_to_the_recording(replay_data: Dataset) -> None:
    got, err = _stream(ReplayBackend("small", replay_data), prompt="quantum photon laser atom")
    assert err is None and len(got) == 3
    assert "".join(got) == " ".join(f"word{i}" for i in range(20))


def test_replay_config_errors(replay_data: Dataset) -> None:
    with pytest.raises(UnknownLLMError, match="'huge'"):
        ReplayBackend("huge", replay_data)
    no_text = Dataset.from_outcomes([Outcome("q1", "2+2?", "small", 1.0, 0.001)], name="bare")
    with pytest.raises(ConfigError, match="dataset 'bare' has no recorded responses"):
        ReplayBackend("small", no_text)


# -- FakeBackend ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fail", "retryable", "status"),
    [
        ("500", True, 500),
        ("429", True, 429),
        ("400", False, 400),
        ("timeout", True, None),
        ("connection", True, None),
        ("empty", True, None),
        ("mid_stream", True, None),
    ],
)
def test_fake_failures(fail: str, retryable: bool, status: int | None) -> None:
    backend = FakeBackend("small", fail=fail)
    err = _fails(backend)
    assert (err.retryable, err.status) == (retryable, status)
    got, stream_err = _stream(backend)
    assert stream_err is not None and backend.calls == 2 and backend.closed
    if fail == "mid_stream":
        assert got == ["fake answer from small"] and not stream_err.retryable
    else:
        assert got == [] and (stream_err.retryable, stream_err.status) == (retryable, status)


def test_fake_fail_times_then_healthy() -> None:
    backend = FakeBackend("small", text="one two three", fail="429", fail_times=2)
    assert _fails(backend).status == 429
    assert _stream(backend)[1] is not None
    assert _complete(backend).text == "one two three"
    assert _stream(backend) == (["one two three"], None)
    assert backend.calls == 4


def test_fake_is_a_backend_and_rejects_unknown_kinds() -> None:
    assert isinstance(FakeBackend("a"), Backend)
    with pytest.raises(ConfigError, match=r"unknown fail kind '503'; known: \['500'"):
        FakeBackend("a", fail="503")
