"""Generated values for the hostile requests (hypothesis strategies): bodies from the pydantic
schemas with one field wrong or removed, random JSON, raw bytes, hostile strings, headers and
content types."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.serve.hostile_base import ADMIN, CLIENT, HYPOTHESIS, Raw, dumps
from tests.serve.hostile_checks import Req

RAW_VALUES = [
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 5000, "-0", "0.0e-999",
    "[" * 20_000 + "]" * 20_000, '{"a":' * 5_000 + "1" + "}" * 5_000, '"\\ud800"',
    '"\\udfff\\ud800"', '"\\u0000"', "tru", "nul", "'single'", '"\\x41"', "01", "0x10", "[1,]",
    '{"a" 1}', "+1", ".5", '"unterminated', "[", "}", "", "\u00a0", '"\\uZZZZ"',
]  # fmt: skip


SPECIAL_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 0.5, -0.0, 1e-320, 1e308, -1e308, 2**63, -(2**63), 10**30,
    "", " ", "\x00", "\ud800", "\n\r", "mixllm", "chatcmpl-", "gpt-5", "../../etc/passwd",
    "${jndi:ldap://x}", "<script>", "' OR 1=1 --", "😀" * 50, "\u202e", [], {}, [[]], [None],
    {"": None}, {"role": "user"}, float("nan"), float("inf"), float("-inf"),
]  # fmt: skip


HOSTILE_STRINGS = [
    "", " ", "\x00", "\ud800", "\udfff\ud800", "\n\r\t", "mixllm", "gpt-5", "..", "%00", "\\",
    "😀" * 50, "\u202e\u2066", "\ufeff", "Ω≈ç√∫", "ﷺ" * 20, "\U0010ffff", "x" * 200, "x" * 201,
    "y" * 100_000, "word " * 50_000, "<|endoftext|>", "{{7*7}}", "\x1b[31m", "NaN",
]  # fmt: skip


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
)  # fmt: skip


json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``st.one_of`` with each strategy ``weight`` times (``one_of(s, s)`` is ``one_of(s)``:
    Hypothesis drops the same strategy given twice, so each copy is a new ``map``)."""
    return st.one_of(
        [strategy.map(lambda v: v) for weight, strategy in options for _ in range(weight)]
    )


def pick(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """``st.sampled_from(values)`` whose repr does not hold the values (some are hundreds of
    kB: Hypothesis warns when it writes such a repr, and warnings are errors here)."""
    return st.integers(0, len(values) - 1).map(lambda i: values[i])


huge_strings = st.sampled_from([10_000, 100_000, 400_000]).map(lambda n: "x" * n)


hostile_values = st.one_of(
    json_values,
    pick(SPECIAL_VALUES),
    pick(RAW_VALUES).map(Raw),
    huge_strings,
)


def from_schema(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid for the JSON schema ``schema`` (the subset pydantic writes for schemas.py)."""
    if "$ref" in schema:
        return from_schema(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, defs) for s in schema.get("anyOf", schema.get("oneOf"))])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 10**9)
        if "pattern" in schema:
            pattern = st.from_regex(schema["pattern"], fullmatch=True)
            return pattern.filter(lambda s: low <= len(s) <= high)
        odd = [s for s in HOSTILE_STRINGS if low <= len(s) <= high]
        return st.text(min_size=low, max_size=min(high, 40)) | pick(odd)
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if kind == "integer":
            return st.integers(low, high)
        return st.floats(
            low, high, allow_nan=False, allow_infinity=False,
            exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
        )  # fmt: skip
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", 3), max(low, 3))
        return st.lists(from_schema(schema.get("items", {}), defs), min_size=low, max_size=high)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v, defs) for k, v in props.items() if k in required},
            optional={k: from_schema(v, defs) for k, v in props.items() if k not in required},
        )
    return json_values  # no type: anything


def valid_bodies(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    schema = model.model_json_schema()
    return from_schema(schema, schema.get("$defs", {}))


def repaired(model: type[BaseModel], minimal: dict[str, Any]) -> Any:
    """A map: a generated body that ``model`` accepts, with as many of its fields as it can
    keep. The schema says nothing of the model's validators (e.g. that a ``tool`` message
    needs ``tool_call_id``): each field they refuse is left out, or set to its value in
    ``minimal`` if required; a body refused as a whole becomes ``minimal`` with what was
    accepted before."""

    def repair(body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        for _ in range(len(body) + 1):
            try:
                model.model_validate(body)
            except ValidationError as exc:
                fields = {e["loc"][0] for e in exc.errors() if e["loc"]}
                if not fields:
                    return dict(minimal)
                for name in fields:
                    if name in minimal:
                        body[name] = copy.deepcopy(minimal[name])
                    else:
                        body.pop(name, None)
            else:
                return body
        return dict(minimal)

    return repair


def schema_values(model: type[BaseModel], *path: str) -> st.SearchStrategy[Any] | None:
    """Values valid for the property at ``path`` of ``model``'s schema (``None`` if the schema
    has no such property: then only the hand-written values of a family are sent)."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    node: Any = schema
    for name in path:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = node.get("properties", {}).get(name)
        if node is None:
            return None
    return from_schema(node, defs)


def field_paths(model: type[BaseModel]) -> list[tuple[Any, ...]]:
    """Every field of ``model``'s schema as a path (nested models and list items included),
    plus an unknown field at each level."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def walk(s: dict[str, Any], prefix: tuple[Any, ...], depth: int) -> list[tuple[Any, ...]]:
        if "$ref" in s:
            s = defs[s["$ref"].rsplit("/", 1)[-1]]
        paths: list[tuple[Any, ...]] = []
        for sub in (*s.get("anyOf", ()), *s.get("oneOf", ())):
            paths += walk(sub, prefix, depth)
        if s.get("type") == "array" and depth < 3:
            paths += [(*prefix, 0), *walk(s.get("items", {}), (*prefix, 0), depth + 1)]
        if "properties" in s and depth < 3:
            paths.append((*prefix, "zz_unknown"))
            for name, sub in s["properties"].items():
                paths += [(*prefix, name), *walk(sub, (*prefix, name), depth + 1)]
        return paths

    return sorted(set(walk(schema, (), 0)), key=repr)


_DELETE = object()


def mutated(
    bases: st.SearchStrategy[dict[str, Any]], paths: Sequence[tuple[Any, ...]]
) -> st.SearchStrategy[Any]:
    """A valid-looking body with the value at one path replaced by a hostile one, or removed."""
    values = st.one_of(hostile_values, st.just(_DELETE))
    return st.tuples(bases, st.sampled_from(list(paths)), values).map(lambda t: _set(*t))


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> Any:
    body = copy.deepcopy(body)
    node: Any = body
    for step, nxt in pairwise(path):
        empty: Any = [] if isinstance(nxt, int) else {}
        if isinstance(node, list):
            while len(node) <= step:
                node.append(copy.deepcopy(empty))
            if not isinstance(node[step], (list, dict)):
                node[step] = empty
        elif not isinstance(node.get(step), (list, dict)):
            node[step] = empty
        node = node[step]
    last = path[-1]
    if isinstance(node, list):
        while len(node) <= last:
            node.append(None)
    if value is _DELETE:
        if isinstance(node, dict):
            node.pop(last, None)
        else:
            del node[last]
    else:
        node[last] = value
    return body


def raw_bodies(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes that are not a valid request body: random, invalid UTF-8, truncated JSON, JSON
    values of any shape, literals."""
    truncated = st.tuples(valid.map(dumps), st.floats(0, 1)).map(
        lambda t: t[0][: int(len(t[0]) * t[1])]
    )
    bad_utf8 = st.tuples(valid.map(dumps), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
    return st.one_of(
        st.binary(max_size=200),
        truncated,
        bad_utf8.map(lambda t: t[0].replace(b'"', b'"' + t[1], 1)),
        hostile_values.map(dumps),
        pick([r.encode() for r in RAW_VALUES]),
        st.just(b""),
    )


CONTENT_TYPES = [
    b"application/json", b"application/json", b"application/json", None, b"text/plain",
    b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
    b"application/json; charset=latin-1", b"application/vnd.api+json", b"application/xml",
    b"application/json; charset=\xff", b"", b"*/*", b"application/", b"json",
]  # fmt: skip


_HEADER_BYTES = st.binary(max_size=120).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c != 127).strip(b" \t")
)


def auths(
    good: Sequence[str], *, keyed: bool = False
) -> st.SearchStrategy[tuple[str, bytes | None]]:
    """(which key, ``Authorization`` value): the ``good`` keys, often, or a bad header."""
    secrets = {"client": CLIENT.secret, "admin": ADMIN.secret}
    valid = [(k, f"{scheme} {s}".encode()) for k, s in secrets.items()
             for scheme in ("Bearer", "bearer", "BEARER")]  # fmt: skip
    bad: list[tuple[str, bytes | None]] = [
        ("", None), ("", b""), ("", b"Bearer"), ("", b"Bearer ,"), ("", b"Bearer sk-wrong"),
        ("", b"Bearer sk-client-12"), ("", b"Bearer sk-client-1234"), ("", b"sk-client-123"),
        ("", b"Basic c2stY2xpZW50LTEyMzo="), ("", b"Token sk-admin-456"),
        ("", "Bearer sk-clïent-123".encode()), ("", "Bearer sk-clïent-123".encode("latin-1")),
        ("", "Bearer 🔑🔑".encode()), ("", b"Bearer \xff\xfe\xfd"), ("", b"Bearer " + b"x" * 8000),
        ("", b"Bearer sk-client-123" + b"0" * 4000), ("", b"Bearer sk-admin-456 sk-admin-456"),
        ("", b"Bearer\tsk-admin-456"),
    ]  # fmt: skip
    good_keys = st.sampled_from([v for v in valid if v[0] in good])
    if keyed:
        return good_keys
    return st.one_of(
        good_keys,
        good_keys,
        st.sampled_from(bad),
        _HEADER_BYTES.map(lambda b: ("", b)),
        _HEADER_BYTES.map(lambda b: ("", b"Bearer " + b)),
    )


@st.composite
def requests(
    draw: st.DrawFn,
    method: str,
    path: str,
    bodies: st.SearchStrategy[bytes | None],
    good: Sequence[str] = ("client", "admin"),
    *,
    keyed: bool = False,
) -> Req:
    """A request with a generated ``Authorization`` (always one of the ``good`` keys if
    ``keyed``) and, one time in ten, another content type."""
    key, auth = draw(auths(good, keyed=keyed))
    body = draw(bodies)
    content_type = b"application/json"
    if draw(st.integers(0, 9)) == 0:  # one in ten: another content type, or none
        content_type = draw(st.sampled_from(CONTENT_TYPES))
    return Req(method, path, body, content_type, auth=auth, key=key)


def body_bytes(
    valid: st.SearchStrategy[dict[str, Any]], paths: Sequence[tuple[Any, ...]]
) -> st.SearchStrategy[bytes | None]:
    """Valid bodies, mutated ones and raw bytes."""
    return st.one_of(
        valid.map(dumps),
        valid.map(dumps),
        mutated(valid, paths).map(dumps),
        mutated(valid, paths).map(dumps),
        raw_bodies(valid),
    )


def run_examples(n: int, strategy: st.SearchStrategy[Any], send: Any) -> None:
    """``send(example)`` for ``n`` examples of ``strategy`` (more if some are rejected)."""

    @settings(HYPOTHESIS, max_examples=n)
    @given(example=strategy)
    def run(example: Any) -> None:
        send(example)

    run()
