"""The campaign of an upstream that reports hostile ``usage``: what the gateway relays and
charges for it (see :mod:`tests.serve.hostile_requests`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import strategies as st

from tests.serve.hostile_base import BUDGETED, MISSING, Raw, dumps
from tests.serve.hostile_checks import Req
from tests.serve.hostile_openai import plain_chat
from tests.serve.hostile_target import HostileUsage, Target
from tests.serve.hostile_values import json_values, pick, run_examples, weighted

# -- hostile usage from the upstream ---------------------------------------------------------
USAGE_NUMBERS = [
    "-1", "-100000", "1.5", "0.5", "1e9", "1000000000", "100000001", "100000000", "1e308",
    "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "-0", "0", "3", "2e2", '"12"', '"abc"',
    '""', "true", "false", "null", "[]", "{}", "[1, 2]", '{"n": {"m": [1, {"k": null}]}}',
    "1" * 400, "-" + "9" * 400, "1" * 5000, "0.1e-999", "12345678901234567890",
]  # fmt: skip


DEEP = (
    "[" * 100_000 + "]" * 100_000,
    "[" * 2_000 + "]" * 2_000,
    '{"a":' * 3_000 + "1" + "}" * 3_000,
)


def hostile_usages() -> st.SearchStrategy[Any]:
    """Usage objects an upstream should not send: negative, fractional, string, 400-digit,
    huge, null, missing counts, nested garbage, junk ``prompt_tokens_details``."""
    number = st.one_of(
        pick(USAGE_NUMBERS).map(Raw),
        st.integers(-(10**12), 10**12),
        st.floats(allow_nan=False, allow_infinity=False),
        json_values,
    )
    details = st.one_of(
        st.fixed_dictionaries(
            {}, optional={"cached_tokens": number, "audio_tokens": number, "x": json_values}
        ),
        number,
        pick(DEEP).map(Raw),
    )
    fields = st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": number,
            "completion_tokens": number,
            "total_tokens": number,
            "prompt_tokens_details": details,
            "completion_tokens_details": details,
        },
    )
    believable = st.fixed_dictionaries(
        {"prompt_tokens": st.integers(0, 50), "completion_tokens": st.integers(0, 50)},
        optional={"prompt_tokens_details": details, "completion_tokens_details": details},
    )
    whole = st.one_of(
        pick([MISSING, None, "12", 5, -1, [], [1, 2], True, {}]),
        pick([*USAGE_NUMBERS, *DEEP]).map(Raw),
        json_values,
    )
    return weighted((2, fields), (1, believable), (1, whole))


def usage_campaign(target: Target, holder: HostileUsage, n: int) -> int:
    """Chat requests (streamed or not, with the client or a metered key) answered by an
    upstream reporting hostile usage: a proper answer or a 4xx/503 JSON each time; then every
    LLM's in-flight count back to 0 and the metered key's spend a finite number >= 0."""
    before = target.sent
    seen_before = Counter(target.outcomes)
    calls_before = holder.calls
    placements = st.sampled_from(["chunk", "chunk", "finish", "every"])
    options = st.sampled_from([MISSING, {"include_usage": True}, {"include_usage": False}])
    cases = st.tuples(plain_chat(target), hostile_usages(), placements, options, st.booleans())

    def send(case: tuple[dict[str, Any], Any, str, Any, bool]) -> None:
        body, holder.usage, holder.placement, stream_options, metered = case
        if stream_options is not MISSING and body["stream"]:
            body = {**body, "stream_options": stream_options}
        key = "metered" if metered else "client"
        target.send(Req("POST", "/v1/chat/completions", dumps(body), key=key))

    try:
        run_examples(n, cases, send)
    finally:  # whatever the answers were, nothing may stay in flight
        holder.usage, holder.placement = {"prompt_tokens": 5, "completion_tokens": 14}, "chunk"
        target.settled()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    assert holder.calls - calls_before > n / 2, (holder.calls, n)  # most reached the upstream
    seen = target.outcomes - seen_before
    answered = sum(c for (e, status), c in seen.items() if e == "chat" and status < 300)
    assert answered > n / 2, seen
    spend = target.send(Req("GET", f"/admin/keys/{BUDGETED.name}/spend", key="admin")).json()
    assert isinstance(spend["spent_usd"], float) and 0 <= spend["spent_usd"] < 1e6, spend
    target.chat_ok()
    target.healthy()
    return sent
