"""Hostile requests in OpenAI's chat schema: tools, content parts and roles (campaigns; see
:mod:`tests.serve.hostile_requests`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import strategies as st

from mixllm.serve.schemas import (
    ChatRequest,
)
from tests.serve.hostile_base import MISSING, Raw, dumps
from tests.serve.hostile_checks import Req
from tests.serve.hostile_target import Target
from tests.serve.hostile_values import (
    hostile_values,
    pick,
    run_examples,
    schema_values,
    weighted,
)


# -- OpenAI's chat schema: tools, content parts, roles ---------------------------------------
def plain_chat(target: Target) -> st.SearchStrategy[dict[str, Any]]:
    """A minimal chat body for an answering LLM (by name, or ``mixllm`` with candidates),
    streamed or not."""
    llms = target.answering()
    by_name = st.sampled_from(llms).map(lambda m: {"model": m})
    routed = st.lists(st.sampled_from(llms), min_size=1, max_size=3, unique=True).map(
        lambda c: {"model": "mixllm", "mixllm": {"candidates": c}}
    )
    return st.tuples(by_name | routed, st.booleans()).map(
        lambda t: {**t[0], "messages": [{"role": "user", "content": "hi"}], "stream": t[1]}
    )


def _chat_requests(bodies: st.SearchStrategy[Any]) -> st.SearchStrategy[Req]:
    """Chat requests with a client key (so that they reach the schema and the router)."""
    return bodies.map(lambda b: Req("POST", "/v1/chat/completions", dumps(b), key="client"))


def _schema_campaign(
    target: Target, n: int, family: str, bodies: st.SearchStrategy[dict[str, Any]]
) -> int:
    """Send ``n`` chat requests of ``bodies``; both answers and refusals must come back."""
    before = target.sent
    seen_before = Counter(target.outcomes)
    run_examples(n, _chat_requests(bodies), target.send)
    target.chat_ok()
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    seen = target.outcomes - seen_before
    answered = sum(c for (e, status), c in seen.items() if e == "chat" and status < 300)
    refused = sum(c for (e, status), c in seen.items() if e == "chat" and status >= 400)
    assert answered > n / 10 and refused > n / 10, (family, seen)
    return sent


def _with(
    base: st.SearchStrategy[dict[str, Any]], fields: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(base, fields).map(lambda t: {**t[0], **t[1]})


NAMES = [
    "get_weather", "a", "x" * 64, "x" * 129, "", " ", "has space", "dots.and:colons-ok",
    "naïve", "\u202e", "\x00", "get_weather", "1", "😀", "__proto__",
]  # fmt: skip


JSON_SCHEMAS: list[Any] = [
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    {}, {"type": "object"}, {"type": "string"}, {"$ref": "#/definitions/nope"},
    {"type": "object", "properties": {"a": {"$ref": "#"}}}, {"anyOf": [{"type": "null"}] * 50},
    {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(300)}},
    None, "object", [], 5, True, Raw("[" * 90 + "]" * 90), Raw("NaN"), Raw("[" * 200 + "]" * 200),
]  # fmt: skip


def _function(name: Any, parameters: Any = MISSING, **more: Any) -> dict[str, Any]:
    out = {"name": name, **more}
    if parameters is not MISSING:
        out["parameters"] = parameters
    return out


def tool_fields() -> st.SearchStrategy[dict[str, Any]]:
    """``tools``, ``tool_choice``, ``functions``, ``function_call`` and
    ``parallel_tool_calls``: valid by the schema (where it has them), valid-looking by hand,
    and malformed."""
    names = st.sampled_from(NAMES)
    params = pick(JSON_SCHEMAS)
    function = st.builds(
        _function, names, params,
        description=pick(["", "Weather by city.", "d" * 5000, None, 5]),
        strict=st.sampled_from([True, False, None, "yes", 1]),
    )  # fmt: skip
    tool = st.one_of(
        function.map(lambda f: {"type": "function", "function": f}),
        function.map(lambda f: {"type": "function", "function": f}),
        st.just({"type": "function"}),  # no function object
        st.just({"type": "custom", "custom": {"name": "grammar", "format": {"type": "text"}}}),
        st.just({"type": "custom"}),
        function.map(lambda f: {"type": "retrieval", "function": f}),
        function.map(lambda f: {"function": f}),  # no type
        function.map(lambda f: {"type": "function", "function": f, "extra": 1}),
        st.just({"type": "function", "function": "get_weather"}),
        hostile_values,
    )
    tools = st.one_of(
        st.lists(tool, min_size=1, max_size=4),
        st.lists(tool, max_size=0),
        st.sampled_from([None, "get_weather", {"type": "function"}, 5, True, Raw("NaN")]),
        st.integers(500, 600).map(
            lambda k: [
                {"type": "function", "function": {"name": f"f{i}", "parameters": {}}}
                for i in range(k)
            ]
        ),
        hostile_values,
    )
    choice = st.one_of(
        st.sampled_from(["none", "auto", "required", "any", "", None, "AUTO", 1, [], {}]),
        names.map(lambda n: {"type": "function", "function": {"name": n}}),
        st.just({"type": "function"}),
        st.just({"type": "function", "function": {"name": 123}}),
        st.just({"type": "custom", "custom": {"name": "grammar"}}),
        st.just({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}),
        st.just({"type": "tool", "name": "get_weather"}),
        hostile_values,
    )
    functions = st.one_of(
        st.lists(function, min_size=1, max_size=3), st.lists(function, max_size=0), hostile_values
    )
    function_call = st.one_of(
        st.sampled_from(["none", "auto", "required", "", None, 0]),
        names.map(lambda n: {"name": n}),
        st.just({"name": "get_weather", "arguments": "{}"}),
        st.just({"nom": "get_weather"}),
        hostile_values,
    )
    parallel = st.sampled_from([True, False, None, "true", 1, 0, [], {}, Raw("NaN")])
    by_hand = {
        "tools": tools,
        "tool_choice": choice,
        "functions": functions,
        "function_call": function_call,
        "parallel_tool_calls": parallel,
    }
    by_schema = {k: s for k in by_hand if (s := schema_values(ChatRequest, k)) is not None}

    @st.composite
    def fields(draw: st.DrawFn) -> dict[str, Any]:
        """One to three of the fields, each by hand (mostly) or by the schema."""
        names = draw(st.lists(st.sampled_from(sorted(by_hand)), min_size=1, max_size=3))
        out = {}
        for name in names:
            from_schema = name in by_schema and draw(st.integers(0, 3)) == 0
            out[name] = draw(by_schema[name] if from_schema else by_hand[name])
        return out

    return fields()


def tools_campaign(target: Target, n: int) -> int:
    return _schema_campaign(target, n, "tools", _with(plain_chat(target), tool_fields()))


URLS = [
    "https://example.com/cat.png", "http://127.0.0.1:1/x.png", "data:image/png;base64,iVBORw0K",
    "data:image/png;base64,!!!not-base64!!!", "data:,", "data:text/html,<script>1</script>",
    "javascript:alert(1)", "file:///etc/passwd", "ftp://x/y.png", "", " ", "not a url",
    "https://" + "a" * 5000 + ".com/x.png", "https://ex\u00e4mple.com/\u00e9.png",
    "https://example.com/\x00.png", "data:image/png;base64," + "A" * 300_000,
    "//example.com/x.png", "https://[::1/x.png",
]  # fmt: skip


AUDIO = [
    "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=", "", "!!!", "====",
    "not base64 at all", "A", "\x00\xff", "QUJD" * 50_000,
]  # fmt: skip


def content_parts() -> st.SearchStrategy[list[Any]]:
    """Lists of content parts: text, image_url (odd URLs and detail values), input_audio (bad
    base64 and formats), file, refusal, unknown types, parts of wrong types, huge lists."""
    text = pick(["hi", "", "x" * 10_000, "\u202e", None, 5, ["hi"]]).map(
        lambda t: {"type": "text", "text": t}
    )
    detail = st.sampled_from(["auto", "low", "high", "ultra", "", None, 5, MISSING])
    image = st.tuples(pick([*URLS, None, 5, {}]), detail).map(
        lambda t: {
            "type": "image_url",
            "image_url": {"url": t[0], **({} if t[1] is MISSING else {"detail": t[1]})},
        }
    )
    odd_image = st.sampled_from(
        [
            {"type": "image_url", "image_url": "https://example.com/cat.png"},  # a bare string
            {"type": "image_url"},
            {"type": "image_url", "image_url": {}},
            {"type": "image_url", "image_url": {"url": "https://e.com/x.png", "extra": 1}},
            {"type": "image", "image_url": {"url": "https://e.com/x.png"}},
        ]
    )
    fmt = st.sampled_from(["wav", "mp3", "ogg", "WAV", "", None, 5, MISSING])
    audio = st.tuples(pick([*AUDIO, None, 5]), fmt).map(
        lambda t: {
            "type": "input_audio",
            "input_audio": {"data": t[0], **({} if t[1] is MISSING else {"format": t[1]})},
        }
    )
    file = st.sampled_from(
        [
            {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
            {"file_id": "file-abc123"},
            {"file_id": ""},
            {},
            {"filename": "../../etc/passwd"},
            {"file_data": "!!!", "file_id": "f", "filename": "x" * 2000},
            {"file_data": None},
            {"unknown": 1},
        ]
    ).map(lambda f: {"type": "file", "file": f})
    refusal = st.sampled_from(["I can't help.", "", None, 5]).map(
        lambda r: {"type": "refusal", "refusal": r}
    )
    unknown = st.sampled_from(
        [
            {"type": "video", "video": {"url": "https://e.com/v.mp4"}},
            {"type": ""},
            {"type": None, "text": "hi"},
            {"type": "TEXT", "text": "hi"},
            {"type": "text"},
            {"text": "no type"},
            {"type": ["text"], "text": "hi"},
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
        ]
    )
    wrong = st.sampled_from(["hi", 5, None, True, [], [{"type": "text", "text": "hi"}], 1.5])
    part = weighted(
        (2, text), (1, image), (1, odd_image), (1, audio), (1, file), (1, refusal), (1, unknown),
        (1, wrong),
    )  # fmt: skip
    parts = st.lists(part, min_size=1, max_size=5)
    huge = st.sampled_from([1_000, 9_999, 10_000, 10_001, 20_000]).flatmap(
        lambda k: pick(
            [
                [{"type": "text", "text": "hi"}] * k,
                [{"type": "image_url", "image_url": {"url": "https://e.com/x.png"}}] * k,
            ]
        )
    )
    by_schema = schema_values(ChatRequest, "messages")  # valid messages, parts and all
    valid_parts = [] if by_schema is None else [(1, by_schema.map(_first_parts))]
    return weighted((3, parts), (1, st.lists(part, max_size=0)), (1, huge), *valid_parts)


def _first_parts(messages: list[dict[str, Any]]) -> list[Any]:
    """The first list of content parts among ``messages`` (a text part if none)."""
    parts = (m["content"] for m in messages if isinstance(m.get("content"), list))
    return next(parts, [{"type": "text", "text": "hi"}])


def parts_campaign(target: Target, n: int) -> int:
    def put(t: tuple[dict[str, Any], list[Any], str, bool]) -> dict[str, Any]:
        body, parts, role, text_too = t
        message: dict[str, Any] = {"role": role, "content": parts}
        messages = [message] if role == "user" else [message, {"role": "user", "content": "hi"}]
        if text_too:
            messages.append({"role": "user", "content": [{"type": "text", "text": "and?"}]})
        return {**body, "messages": messages}

    roles = st.sampled_from(["user", "user", "user", "system", "developer", "assistant"])
    bodies = st.tuples(plain_chat(target), content_parts(), roles, st.booleans()).map(put)
    return _schema_campaign(target, n, "parts", bodies)


ROLES = ["system", "developer", "user", "assistant", "tool", "function"]


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}


def messages_of_every_role() -> st.SearchStrategy[list[Any]]:
    """Conversations with every role: tool with and without ``tool_call_id``, function with
    and without ``name``, assistant with ``tool_calls`` and null content, unknown roles,
    messages without a role, fields of one role on another."""
    content = st.sampled_from(["hi", "", None, [{"type": "text", "text": "hi"}], 5, {}])
    known = st.tuples(st.sampled_from(ROLES), content).map(
        lambda t: {"role": t[0], "content": t[1]}
    )
    tool = st.sampled_from(
        [
            {"role": "tool", "content": "18°C", "tool_call_id": "call_1"},
            {"role": "tool", "content": "18°C"},
            {"role": "tool", "content": "18°C", "tool_call_id": ""},
            {"role": "tool", "content": None, "tool_call_id": "call_1"},
            {"role": "tool", "content": [{"type": "text", "text": "18"}], "tool_call_id": "c"},
            {"role": "tool", "content": "x", "tool_call_id": 5},
            {"role": "tool", "content": "x", "tool_call_id": "x" * 5000},
        ]
    )
    function = st.sampled_from(
        [
            {"role": "function", "name": "get_weather", "content": "18°C"},
            {"role": "function", "content": "18°C"},
            {"role": "function", "name": "", "content": "18°C"},
            {"role": "function", "name": "get_weather", "content": None},
        ]
    )
    assistant = pick(
        [
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "assistant", "content": "calling", "tool_calls": [CALL, {**CALL, "id": "2"}]},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "assistant", "content": None},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
            {"role": "assistant", "content": None, "tool_calls": [{**CALL, "type": "other"}]},
            {"role": "assistant", "content": None, "tool_calls": "get_weather"},
            {"role": "assistant", "content": None, "tool_calls": [CALL] * 1001},
            {"role": "assistant", "content": None, "function_call": CALL["function"]},
            {"role": "assistant", "content": None, "function_call": {"name": "bad name"}},
            {"role": "assistant", "content": None, "refusal": "I can't."},
            {"role": "assistant", "content": None, "audio": {"id": "audio_1"}},
            {"role": "assistant", "content": "hi", "name": "bot"},
        ]
    )
    odd = st.sampled_from(
        [
            {"role": "robot", "content": "hi"},
            {"role": "", "content": "hi"},
            {"role": "USER", "content": "hi"},
            {"role": None, "content": "hi"},
            {"role": 5, "content": "hi"},
            {"role": ["user"], "content": "hi"},
            {"content": "no role"},
            {},
            {"role": "user"},
            {"role": "user", "content": "hi", "tool_calls": [CALL]},
            {"role": "user", "content": "hi", "tool_call_id": "call_1"},
            {"role": "system", "content": "hi", "function_call": CALL["function"]},
            {"role": "user", "content": "hi", "name": ""},
            {"role": "user", "content": "hi", "name": "x" * 300},
            {"role": "user", "content": "hi", "extra": 1},
            "user: hi",
            None,
            ["user", "hi"],
        ]
    )
    message = weighted(
        (2, known), (1, tool), (1, function), (2, assistant), (1, odd), (1, hostile_values)
    )
    turn = st.sampled_from(
        [
            [{"role": "user", "content": "weather?"},
             {"role": "assistant", "content": None, "tool_calls": [CALL]},
             {"role": "tool", "content": "18°C", "tool_call_id": "call_1"}],
            [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}],
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"role": "user", "content": "again"}],
            [{"role": "user", "content": "w?"}, {"role": "assistant", "content": None,
             "function_call": CALL["function"]},
             {"role": "function", "name": "get_weather", "content": "18°C"}],
        ]
    )  # fmt: skip
    return st.one_of(
        turn,
        st.lists(message, min_size=1, max_size=4),
        st.lists(message, min_size=1, max_size=4).map(
            lambda ms: [*ms, {"role": "user", "content": "hi"}]
        ),
        st.sampled_from([[], None, "hi", {"role": "user", "content": "hi"}]),
    )


def roles_campaign(target: Target, n: int) -> int:
    bodies = st.tuples(plain_chat(target), messages_of_every_role()).map(
        lambda t: {**t[0], "messages": t[1]}
    )
    by_schema = schema_values(ChatRequest, "messages")
    if by_schema is not None:  # valid conversations by the schema, every role among them
        bodies = bodies | st.tuples(plain_chat(target), by_schema).map(
            lambda t: {**t[0], "messages": t[1]}
        )
    return _schema_campaign(target, n, "roles", bodies)
