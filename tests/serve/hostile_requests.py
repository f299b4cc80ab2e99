"""Hostile requests against a real gateway: their generators, the check of every answer, and
one campaign function per family (the tests are in ``test_hostile.py``).

Every endpoint gets requests built from the pydantic schemas of :mod:`mixllm.serve.schemas`
(``model_json_schema()``, read at run time): valid-looking bodies with one field set to a
wrong type or value or removed, random JSON of any shape, raw bytes, invalid UTF-8, truncated
JSON, NaN/Infinity literals, huge strings, deep nesting, unknown models and LLM names, bodies
over the size limit, wrong, missing and garbage ``Authorization`` headers, wrong content
types, wrong methods and unknown paths; then tools, content parts and roles of OpenAI's chat
schema, and an upstream that reports hostile ``usage``. Each answer must be a 2xx that is a
proper success (and only with the right key) or a 4xx with a JSON ``{"error": {"message",
"type", "code"}}``: never a 5xx (a 503 JSON only where a campaign allows it), never a dropped
connection. The server must still answer ``/healthz`` afterwards.

A campaign ``<family>_campaign(target, n)`` sends at least ``n`` generated requests (and
asserts that it did), checks what each must be, checks that the family reached both sides of
the gateway (successes and refusals, scaled to ``n``), and returns how many it sent.
:data:`FULL_BUDGET` holds each family's full ``n``; the default run uses a quarter
(:func:`default_budget`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import assume
from hypothesis import strategies as st

from mixllm.serve import OpenAIBackend
from mixllm.serve.schemas import (
    AddLLMRequest,
    ChatRequest,
    DefaultsRequest,
    FeedbackRequest,
)
from tests.serve.hostile_base import (
    ADMIN,
    BUDGETED,
    CLIENT,
    FULL_BUDGET,
    LIMIT,
    Raw,
    dumps,
    more_than,
)
from tests.serve.hostile_checks import ROUTES, TEMPLATES, Req, check, endpoint_of
from tests.serve.hostile_target import Target
from tests.serve.hostile_values import (
    body_bytes,
    field_paths,
    json_values,
    mutated,
    pick,
    raw_bodies,
    repaired,
    requests,
    run_examples,
    valid_bodies,
    weighted,
)


# -- chat ------------------------------------------------------------------------------------
def chat_bodies(llms: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid chat bodies from the schema, with known models and candidates (mostly)."""
    models = st.sampled_from(["mixllm", "mixllm", *llms, "nope", "gpt-5", "MIXLLM"])
    candidates = st.lists(st.sampled_from(llms), min_size=1, max_size=4, unique=True)
    unknown = st.lists(st.sampled_from([*llms, "nope/llm", ""]), min_size=1, max_size=3)

    def fix(t: tuple[dict[str, Any], str, list[str], list[str], int]) -> dict[str, Any]:
        body, model, good, bad, which = t
        body["model"] = model
        if isinstance(body.get("mixllm"), dict) and "candidates" in body["mixllm"]:
            body["mixllm"]["candidates"] = bad if which == 0 else good
        return body

    generated = valid_bodies(ChatRequest)
    minimal = {"model": "mixllm", "messages": [{"role": "user", "content": "hi"}]}
    accepted = generated.map(repaired(ChatRequest, minimal))
    bodies = weighted((2, accepted), (1, generated))  # and some refused by its validators
    return st.tuples(bodies, models, candidates, unknown, st.integers(0, 5)).map(fix)


def chat_campaign(target: Target, n: int) -> int:
    before = target.sent
    valid = chat_bodies(target.llms)
    paths = field_paths(ChatRequest)
    deep = valid.map(dumps) | mutated(valid, paths).map(dumps)  # past auth to the router
    reqs = requests("POST", "/v1/chat/completions", body_bytes(valid, paths)) | requests(
        "POST", "/v1/chat/completions", deep, keyed=True
    )
    run_examples(n, reqs, target.send)
    target.chat_ok()
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    seen = target.outcomes
    assert seen["chat", 200] > more_than(n, 100, "chat"), seen
    assert seen["chat", 400] > more_than(n, 200, "chat"), seen
    assert seen["chat", 404] > more_than(n, 10, "chat"), seen
    return sent


# -- feedback --------------------------------------------------------------------------------
def feedback_campaign(target: Target, n: int) -> int:
    before = target.sent
    fresh = "@@fresh@@"  # replaced by the id of a new response: feedback that is learned
    ids = st.sampled_from(
        [
            fresh,
            fresh,
            *target.decision_ids,
            *(i.removeprefix("chatcmpl-") for i in target.decision_ids),
        ]
    )
    unknown_ids = st.text(min_size=1, max_size=60) | st.just("chatcmpl-nope")

    def fix(t: tuple[dict[str, Any], str, bool]) -> dict[str, Any]:
        body, id_, reward = t
        if all(body.get(k) is None for k in ("reward", "quality", "cost_usd")):
            body["reward"] = reward  # something to learn, mostly
        return {**body, "id": id_}

    valid = st.tuples(valid_bodies(FeedbackRequest), ids | ids | unknown_ids, st.booleans())
    valid = valid.map(fix)
    paths = field_paths(FeedbackRequest)
    deep = valid.map(dumps) | mutated(valid, paths).map(dumps)
    reqs = requests("POST", "/v1/feedback", body_bytes(valid, paths)) | requests(
        "POST", "/v1/feedback", deep, keyed=True
    )

    def send(req: Req) -> None:
        if req.body is not None and fresh.encode() in req.body:
            req = replace(req, body=req.body.replace(fresh.encode(), target.chat_ok().encode()))
        reply = target.send(req)
        if reply.status_code == 200 and reply.json()["status"] == "applied":
            target.chat_ok()  # what was learned leaves routing working

    applied_before = target.outcomes["feedback", 200]
    run_examples(n, reqs, send)
    target.chat_ok()  # what was learned from hostile feedback leaves routing working
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    answered = target.outcomes["feedback", 200] - applied_before
    assert answered > more_than(n, 20, "feedback"), target.outcomes
    return sent


# -- read-only endpoints ---------------------------------------------------------------------
QUERIES = ["", "?", "?a=1", "?a=%ff%fe", "?" + "x" * 4000, "?%00=%00", "?a=1&a=2&b", "?é=ü"]


def attacked_operations() -> set[tuple[str, str]]:
    """The operations of the OpenAPI schema that the campaigns attack."""
    return {k for k, v in ROUTES.items() if v != "docs"} | set(TEMPLATES)


def read_campaign(target: Target, n: int) -> int:
    before = target.sent
    paths = st.tuples(
        st.sampled_from(["/v1/models", "/healthz", "/metrics"]), st.sampled_from(QUERIES)
    ).map("".join)
    bodies = st.none() | raw_bodies(json_values)

    @st.composite
    def reqs(draw: st.DrawFn) -> Req:
        return draw(requests("GET", draw(paths), bodies))

    run_examples(n, reqs(), target.send)
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    return sent


# -- wrong methods, unknown paths ------------------------------------------------------------
KNOWN_PATHS = [
    "/v1/chat/completions", "/v1/feedback", "/v1/models", "/healthz", "/metrics", "/admin/llms",
    "/admin/llms/x", "/admin/defaults", "/admin/checkpoint", "/v1/completions",
    "/admin/keys/app/spend", "/admin/keys/app/spend/reset",
]  # fmt: skip


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO", "get"]


ODD_PATHS = [
    "/", "/v1", "/v1/", "/v1/chat", "/v1/chat/completions/", "/v1/models/", "/V1/MODELS",
    "/v1/embeddings", "/docs", "/openapi.json", "/redoc", "/admin", "/admin/", "/admin/llms/",
    "/admin/defaults/x", "/%2e%2e/%2e%2e/etc/passwd", "/v1/%00", "/v1/models%2F",
    "/" + "a" * 6000, "//v1//models", "/v1/chat/completions%20", "/healthz/../metrics",
    "/metrics.json", "/\u00e9t\u00e9", "/v1/feedback?id=1", "/admin/keys", "/admin/keys/app",
    "/admin/keys//spend",
]  # fmt: skip


_SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_characters="?#/", exclude_categories=["Cs"]),
    min_size=1,
    max_size=30,
)


def routes_campaign(target: Target, n: int) -> int:
    before = target.sent
    other_404, other_405 = target.outcomes["other", 404], target.outcomes["other", 405]
    generated = st.lists(_SEGMENT.map(lambda s: quote(s, safe="")), min_size=1, max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    )
    prefixed = st.tuples(st.sampled_from(["/v1/", "/admin/", "/v1/chat/"]), generated).map(
        lambda t: t[0] + t[1].lstrip("/")
    )
    known = st.sampled_from(KNOWN_PATHS)
    paths = weighted((2, known), (1, st.sampled_from(ODD_PATHS)), (1, generated), (1, prefixed))
    bodies = st.none() | raw_bodies(json_values)

    @st.composite
    def reqs(draw: st.DrawFn) -> Req:
        method, path = draw(st.sampled_from(METHODS)), draw(paths)
        served = endpoint_of(Req(method.upper(), path)) is not None
        if served or path == "/admin/llms/x":  # a wrong method for a known path
            method = draw(st.sampled_from(["PUT", "OPTIONS", "TRACE", "FOO"]))
        return draw(requests(method, path, bodies))

    run_examples(n, reqs(), target.send)
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    not_found = target.outcomes["other", 404] - other_404
    not_allowed = target.outcomes["other", 405] - other_405
    assert not_found > more_than(n, 50, "routes"), target.outcomes
    assert not_allowed > more_than(n, 50, "routes"), target.outcomes
    return sent


# -- admin -----------------------------------------------------------------------------------
def admin_campaign(target: Target, n: int) -> int:
    before = target.sent
    seen_before, statuses_before = Counter(target.outcomes), Counter(target.statuses)
    llms = list(target.llms)
    upstream = {"base_url": target.upstream, "model": "m", "timeout_s": 5.0}

    def fix_add(t: tuple[dict[str, Any], int]) -> dict[str, Any]:
        body, which = t
        if which or isinstance(body.get("upstream"), dict):  # the fake upstream: it answers
            body["upstream"] = {**(body.get("upstream") or {}), **upstream}
            body["upstream"].pop("api_key_env", None)  # (unset: a 400)
        return body

    valid_add = st.tuples(valid_bodies(AddLLMRequest), st.integers(0, 5)).map(fix_add)
    valid_defaults = valid_bodies(DefaultsRequest)
    names = pick([*llms, "nope", "", " ", "..", "%", "a/b/c", "\u00e9", "x" * 3000]) | _SEGMENT
    removes = names.map(lambda n: f"/admin/llms/{quote(n, safe='/')}")
    key_names = st.sampled_from([CLIENT.name, ADMIN.name, BUDGETED.name, "nope", "x" * 300])
    spends = (key_names | _SEGMENT).map(lambda n: f"/admin/keys/{quote(n, safe='')}/spend")
    raw = st.none() | raw_bodies(json_values)

    def admin(method: str, path: str, valid: st.SearchStrategy[Any] | None) -> Any:
        """Requests with any key and body, and with the admin key and a valid-looking body."""
        if valid is None:
            return requests(method, path, raw, ("admin",)) | requests(
                method, path, st.none(), ("admin",), keyed=True
            )
        paths = field_paths({"POST": AddLLMRequest, "PATCH": DefaultsRequest}[method])
        deep = valid.map(dumps) | mutated(valid, paths).map(dumps)
        return requests(method, path, body_bytes(valid, paths), ("admin",)) | requests(
            method, path, deep, ("admin",), keyed=True
        )

    reqs = st.one_of(
        admin("GET", "/admin/llms", None),
        admin("POST", "/admin/llms", valid_add),
        admin("POST", "/admin/llms", valid_add),
        removes.flatmap(lambda p: admin("DELETE", p, None)),
        admin("PATCH", "/admin/defaults", valid_defaults),
        admin("PATCH", "/admin/defaults", valid_defaults),
        admin("POST", "/admin/checkpoint", None),
        spends.flatmap(lambda p: admin("GET", p, None)),
        spends.flatmap(lambda p: admin("POST", p + "/reset", None)),
        st.sampled_from(["GET", "POST"]).flatmap(  # a client key is refused: 403
            lambda m: requests(
                m,
                "/admin/llms" if m == "GET" else "/admin/checkpoint",
                raw,
                ("client",),
                keyed=True,
            )
        ),
    )

    def send(req: Req) -> None:
        if endpoint_of(req) == "admin_remove":  # it would leak the backend's connections
            name = unquote(req.path.removeprefix("/admin/llms/"))
            assume(not isinstance(target.gateway.backends.get(name), OpenAIBackend))
        reply = target.send(req)
        if reply.is_success and req.method != "GET":
            target.chat_ok()  # the router still routes after what the admin changed

    run_examples(n, reqs, send)
    target.healthy()
    sent = target.sent - before
    assert sent >= n, (sent, n)
    seen = target.outcomes - seen_before
    statuses = target.statuses - statuses_before
    assert seen["admin_add", 201] > more_than(n, 0, "admin"), seen
    assert seen["admin_defaults", 200] > more_than(n, 10, "admin"), seen
    assert statuses[403] > more_than(n, 3, "admin"), statuses
    assert statuses[401] > more_than(n, 50, "admin"), statuses
    return sent


# -- huge and deeply nested bodies -----------------------------------------------------------
def huge_and_deep_bodies(target: Target) -> int:
    before = target.sent
    ask = {"model": "mixllm", "messages": [{"role": "user", "content": "hi"}]}
    big = dumps({**ask, "pad": "x" * (LIMIT + 10)})
    for path in ("/v1/chat/completions", "/v1/feedback"):
        for key in ("client", ""):
            reply = target.send(Req("POST", path, big, key=key))
            assert reply.status_code == 413, reply.text
    for method, path in [("POST", "/admin/llms"), ("PATCH", "/admin/defaults")]:
        assert target.send(Req(method, path, big, key="admin")).status_code == 413
    # the same without a declared length (chunked): caught while it streams in
    for path in ("/v1/chat/completions", "/v1/feedback"):
        req = Req("POST", path, big, key="client")
        target.sent += 1
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        reply = target.http.post(path, content=chunks, headers=req.headers())
        check(target, req, reply)
        assert reply.status_code == 413, reply.text
    # just under the limit: a huge prompt is answered
    long_prompt = {**ask, "messages": [{"role": "user", "content": "word " * 190_000}]}
    reply = target.send(Req("POST", "/v1/chat/completions", dumps(long_prompt), key="client"))
    assert reply.status_code == 200, reply.text
    many = {**ask, "messages": [{"role": "user", "content": "hi"}] * 10_001}
    reply = target.send(Req("POST", "/v1/chat/completions", dumps(many), key="client"))
    assert reply.status_code == 400, reply.text
    for depth in (1_000, 100_000, 450_000):
        deep = dumps(
            {**ask, "messages": [{"role": "user", "content": Raw("[" * depth + "]" * depth)}]}
        )
        reply = target.send(Req("POST", "/v1/chat/completions", deep, key="client"))
        assert reply.status_code == 400, reply.text
        nested = ("[" * depth + "]" * depth).encode()
        assert target.send(Req("POST", "/v1/feedback", nested, key="client")).status_code == 400
    target.healthy()
    sent = target.sent - before
    assert sent >= FULL_BUDGET["special"], sent
    return sent


def past_regressions(target: Target) -> int:
    """Each request that once gave a 5xx, dropped the connection, or broke every later one."""
    before = target.sent
    over_http = target.llms[1]  # served by the fake upstream: extra fields are sent on to it
    ask = {"model": over_http, "messages": [{"role": "user", "content": "hi"}]}
    bad_chats = [
        {**ask, "messages": [{"role": "user", "content": "\ud800"}]},  # UnicodeEncodeError
        {**ask, "messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]},
        {**ask, "\udc80": 1},
        {**ask, "top_k": float("nan")},  # not JSON: the upstream call failed to encode it
        {**ask, "messages": [{"role": "user", "content": "hi", "name": float("inf")}]},
        {**ask, "metadata": Raw("[" * 960 + "]" * 960)},  # parsed, but too deep to encode again
    ]
    for body in bad_chats:
        reply = target.send(Req("POST", "/v1/chat/completions", dumps(body), key="client"))
        assert reply.status_code == 400, reply.text
    learned = {"id": target.chat_ok(), "quality": 1.0}
    for cost in (1e308, 1e13):  # learned, 1e308 made every later score -inf: 500 for all
        reply = target.send(
            Req("POST", "/v1/feedback", dumps({**learned, "cost_usd": cost}), key="client")
        )
        assert reply.status_code == 400, reply.text
    reply = target.send(Req("POST", "/v1/feedback", dumps({"id": "x", "\ud800": 1}), key="client"))
    assert reply.status_code == 400 and "Unicode" in reply.json()["error"]["message"], reply.text
    upstream = {"base_url": target.upstream, "model": "m"}
    bad_llms = [
        {"name": "rich", "price_in_per_mtok": 1e308, "price_out_per_mtok": 1e308},  # inf costs
        {"name": "snow\u2603man", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0},  # header
        {"name": "new\nline", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0},  # header
        *(  # httpx fails on these outside its transport errors
            {"name": "odd", "price_in_per_mtok": 1.0, "price_out_per_mtok": 1.0,
             "upstream": {**upstream, "base_url": url}}
            for url in ("http://xn--a", "http://[::1", "http://99843:99843", "http://\u00ad")
        ),
    ]  # fmt: skip
    for body in bad_llms:
        body.setdefault("upstream", upstream)
        reply = target.send(Req("POST", "/admin/llms", dumps(body), key="admin"))
        assert reply.status_code == 400, reply.text
    target.chat_ok()
    target.healthy()
    sent = target.sent - before
    assert sent >= FULL_BUDGET["regressions"], sent
    return sent
