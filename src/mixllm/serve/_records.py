"""Checks of the store's inputs, and decisions and feedback to and from table rows (JSON for
the mappings, float32 bytes for embeddings, NULL for NaN)."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import ConfigError, DataError
from mixllm.types import Decision, Feedback

__all__: list[str] = []  # private to mixllm.serve.store


def _check_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name}={value!r}; expected a non-empty string")


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{name}={value!r}; expected a string")


def _check_seq(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name}={value!r}; expected a feedback seq (an integer >= 0)")


def _number(name: str, value: object, expected: str, *, minimum: float = -math.inf) -> float:
    """``value`` as a float when it is a finite real number >= ``minimum``; else ConfigError."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and number >= minimum:
            return number
    raise ConfigError(f"{name}={value!r}; expected {expected}")


def _usd(name: str, value: object) -> float:
    return _number(name, value, "a finite number of USD >= 0", minimum=0.0)


def _time(now: float | None, clock: Callable[[], float] | None = None) -> float:
    """``now`` checked, or else the clock's time (Unix seconds; ``time.time`` by default)."""
    if now is not None:
        return _number("now", now, "a finite Unix time in seconds")
    return _number("clock()", time.time() if clock is None else clock(), "a finite Unix time")


def _redact(url: str) -> str:
    """``url`` without its password, to be shown in messages and logs.

    >>> _redact("postgresql://app:s3cret@db.example:5432/mixllm?sslmode=require&password=x")
    'postgresql://app@db.example:5432/mixllm?sslmode=require'
    """
    parts = urlsplit(url)
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a port that is not a number
        host, port = parts.hostname or "", None
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host
    if port is not None:
        netloc += f":{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _check_session(session_id: object) -> None:
    if session_id is not None and (not isinstance(session_id, str) or not session_id):
        raise ConfigError(f"session_id={session_id!r}; expected None or a non-empty string")


def _decision_row(
    decision: Decision,
    *,
    key_id: str,
    request_model: str,
    session_id: str | None,
    created_at: float,
    prompt: str | None = None,
) -> dict[str, object]:
    """The decisions-table row of ``decision`` (as named parameters), validated; ``prompt`` is
    the text routed on (``None``: not kept)."""
    _check_id("decision_id", decision.decision_id)
    if prompt is not None:
        _check_text("prompt", prompt)
    _check_id("llm", decision.llm)
    texts = {"query_id": decision.query_id, "key_id": key_id, "request_model": request_model}
    for name, text in texts.items():
        if not isinstance(text, str):
            raise ConfigError(f"{name}={text!r}; expected a string")
    _check_session(session_id)
    tokens: object = decision.prompt_tokens
    if isinstance(tokens, (float, np.floating)) and math.isnan(tokens):
        tokens = None  # unknown
    else:
        tokens = _number("prompt_tokens", tokens, "a number >= 0 or NaN", minimum=0.0)
    embedding, dim = _encode_embedding(decision.embedding)
    return {
        "decision_id": decision.decision_id,
        "created_at": created_at,
        **texts,
        "session_id": session_id,
        "llm": decision.llm,
        "lam": _number("lam", decision.lam, "a finite number"),
        "prompt_tokens": tokens,
        "scores": _encode_mapping("scores", decision.scores),
        "predicted_quality": _encode_mapping("predicted_quality", decision.predicted_quality),
        "predicted_cost_usd": _encode_mapping("predicted_cost_usd", decision.predicted_cost_usd),
        "predicted_wait_s": _encode_mapping("predicted_wait_s", decision.predicted_wait_s),
        "embedding": embedding,
        "embedding_dim": dim,
        "prompt": prompt,
    }


def _encode_mapping(name: str, mapping: Mapping[str, float]) -> str:
    try:
        if all(isinstance(key, str) for key in mapping):
            return json.dumps({key: float(value) for key, value in mapping.items()})
    except (TypeError, ValueError, AttributeError):
        pass
    raise ConfigError(f"decision {name}={mapping!r}; expected a mapping of LLM name to number")


def _encode_embedding(embedding: object) -> tuple[bytes | None, int | None]:
    if embedding is None:
        return None, None
    array = np.asarray(embedding)
    if array.ndim != 1 or array.dtype.kind not in "iuf":
        raise ConfigError(
            f"decision embedding of shape {array.shape} and dtype {array.dtype}; "
            "expected a 1-D float32 vector"
        )
    return np.ascontiguousarray(array, dtype="<f4").tobytes(), int(array.shape[0])


def _decision_from_row(row: sqlite3.Row) -> Decision:
    did = str(row["decision_id"])
    blob, dim = row["embedding"], row["embedding_dim"]
    embedding: NDArray[np.float32] | None = None
    if blob is not None or dim is not None:
        if blob is None or dim is None or len(blob) != 4 * dim:
            raise DataError(
                f"decision {did!r}: embedding of {0 if blob is None else len(blob)} bytes "
                f"with embedding_dim={dim!r}; expected 4 bytes per dimension"
            )
        embedding = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    tokens = row["prompt_tokens"]
    return Decision(
        query_id=str(row["query_id"]),
        llm=str(row["llm"]),
        lam=float(row["lam"]),
        scores=_decode_mapping(did, row, "scores"),
        predicted_quality=_decode_mapping(did, row, "predicted_quality"),
        predicted_cost_usd=_decode_mapping(did, row, "predicted_cost_usd"),
        embedding=embedding,
        decision_id=did,
        predicted_wait_s=_decode_mapping(did, row, "predicted_wait_s"),
        prompt_tokens=math.nan if tokens is None else float(tokens),
    )


def _feedback_from_row(row: sqlite3.Row, prefix: str = "") -> Feedback:
    """The feedback in ``row``'s columns ``quality``, ``cost_usd`` and ``reward`` (each name
    after ``prefix``)."""
    reward = row[prefix + "reward"]
    quality, cost = row[prefix + "quality"], row[prefix + "cost_usd"]
    return Feedback(quality, cost, None if reward is None else reward == 1)


def _decode_mapping(decision_id: str, row: sqlite3.Row, name: str) -> dict[str, float]:
    try:
        value = json.loads(row[name])
        if isinstance(value, dict):
            return {str(key): float(number) for key, number in value.items()}
    except (TypeError, ValueError):  # JSONDecodeError is a ValueError
        pass
    raise DataError(
        f"decision {decision_id!r}: column {name}={row[name]!r}; expected a JSON object of numbers"
    )
