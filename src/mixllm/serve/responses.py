"""Chat answers as the client receives them: the upstream's JSON relayed as it was sent (tool
calls, refusals, logprobs, finish reasons, usage with its details, system fingerprint, ...),
with the gateway's ``id``, the answering LLM as ``model``, a ``mixllm`` field that explains
the decision, and the ``x-mixllm-*`` headers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from mixllm.data.tokens import count_tokens
from mixllm.errors import BackendError
from mixllm.serve.billing import Plan
from mixllm.serve.chat import Chunk
from mixllm.serve.gateway import Answer
from mixllm.serve.streaming import OpenStream

__all__ = ["completion", "explain", "headers", "sse"]

logger = logging.getLogger("mixllm.serve.app")


def explain(answer: Answer, plan: Plan) -> dict[str, Any]:
    """The ``mixllm`` field: the decision, its predictions and scores, and each attempt."""
    d = answer.decision
    return {
        "decision_id": d.decision_id,
        "llm": answer.llm,
        "routed_to": d.llm,
        "runner_up": d.runner_up,
        "lam": d.lam,
        "predicted_quality": d.predicted_quality.get(d.llm),
        "predicted_cost_usd": d.predicted_cost_usd.get(d.llm),
        "predicted_wait_s": d.predicted_wait_s.get(d.llm, 0.0),
        "scores": dict(d.scores),
        "session": plan.session,
        "stayed_in_session": plan.stayed,
        "max_tokens": plan.answer_tokens,
        "reserved_usd": plan.reserved_usd,
        "charged_usd": answer.charged_usd,
        "attempts": [
            {
                "llm": a.llm,
                "ok": a.ok,
                "error": a.error,
                "status": a.status,
                "seconds": round(a.seconds, 4),
            }
            for a in answer.attempts
        ],
    }


def headers(answer: Answer, plan: Plan, backend: object = None) -> dict[str, str]:
    """The ``x-mixllm-*`` headers of an answer, with those of the ``backend`` that answered
    when it has an ``answer_headers(prompt)`` method (a replay says what it replayed)."""
    d = answer.decision
    extra = getattr(backend, "answer_headers", None)
    return {
        **(extra(plan.prompt) if callable(extra) else {}),
        "x-mixllm-llm": answer.llm,
        "x-mixllm-decision-id": d.decision_id,
        "x-mixllm-routed-to": d.llm,
        "x-mixllm-runner-up": d.runner_up or "",
        "x-mixllm-predicted-quality": f"{d.predicted_quality.get(d.llm, float('nan')):.4f}",
        "x-mixllm-predicted-cost-usd": f"{d.predicted_cost_usd.get(d.llm, float('nan')):.8f}",
        "x-mixllm-predicted-wait-s": f"{d.predicted_wait_s.get(d.llm, 0.0):.3f}",
        "x-mixllm-fallbacks": str(sum(not a.ok for a in answer.attempts)),
        "x-mixllm-session": plan.session,
    }


def completion(answer: Answer, plan: Plan) -> dict[str, Any]:
    """The ``chat.completion`` body: the upstream's, as sent, or one built from the answer."""
    result = answer.result
    assert result is not None
    if result.body is not None:
        body = dict(result.body)
    else:
        usage = None
        if result.prompt_tokens is not None and result.completion_tokens is not None:
            usage = {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            }
        message = {"role": "assistant", "content": result.text}
        choice = {"index": 0, "message": message, "finish_reason": result.finish_reason}
        body = {"choices": [choice], "usage": usage}
    body.update(
        id=f"chatcmpl-{answer.decision.decision_id}", object="chat.completion", model=answer.llm
    )
    body.setdefault("created", int(time.time()))
    body["mixllm"] = explain(answer, plan)
    return body


async def sse(
    answer: Answer, plan: Plan, stream: OpenStream, *, include_usage: bool
) -> AsyncIterator[bytes]:
    """OpenAI's chunk stream, relayed: every upstream chunk with the gateway's ``id`` and the
    LLM as ``model`` (the first also carries the ``mixllm`` field), the usage chunk when the
    client asked for it (counted by the gateway if the upstream sent none), then ``[DONE]``.
    A failure after the first chunk ends the stream with an error event (no fallback
    mid-answer)."""
    base = {
        "id": f"chatcmpl-{answer.decision.decision_id}",
        "object": "chat.completion.chunk",
        "model": answer.llm,
    }
    created = int(time.time())
    first = True
    sent_usage = False

    def event(chunk: Chunk) -> bytes | None:
        nonlocal first, sent_usage
        body = {**chunk, **base}
        body.setdefault("created", created)
        if body.get("usage") is not None and not isinstance(body["usage"], dict):
            body.pop("usage")  # unreadable upstream usage: not relayed (counted if asked for)
            if not body.get("choices"):
                return None
        if body.get("usage") is not None:
            if include_usage:
                sent_usage = True
            elif body.get("choices"):
                body.pop("usage")
            else:
                return None  # the usage chunk the gateway asked for itself
        if first:
            body["mixllm"] = explain(answer, plan)
            first = False
        return f"data: {json.dumps(body)}\n\n".encode()

    try:
        # the chunks read before the first answer (the role, then the first text) go out in
        # one write: two small writes would wait on each other (Nagle), delaying the text
        yield b"".join(data for chunk in stream.head if (data := event(chunk)) is not None)
        async for chunk in stream.chunks():
            if (data := event(chunk)) is not None:
                yield data
    except BackendError as exc:
        logger.warning("stream from %s broke after it started: %s", answer.llm, exc)
        error = {"error": {"message": str(exc), "type": "upstream_error", "code": 502}}
        yield f"data: {json.dumps(error)}\n\n".encode()
        return
    finally:
        stream.close()
    if include_usage and not sent_usage:
        prompt = round(plan.prompt_tokens)
        done = int(count_tokens([stream.text()])[0]) if stream.text() else 0
        usage = {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}
        yield event({"choices": [], "usage": usage}) or b""
    yield b"data: [DONE]\n\n"
