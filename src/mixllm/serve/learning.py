"""Learning from feedback in the gateway: each feedback stored durably before it is
acknowledged, then learned; checkpoints that record which feedback they hold, so that a
restart resumes from the last one plus the feedback stored after it
(:func:`~mixllm.serve.restore.restore_router`)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

from mixllm.errors import UnknownDecisionError
from mixllm.router import Router
from mixllm.serve.metrics import Metrics
from mixllm.serve.restore import last_seq
from mixllm.serve.settings import ApiKey, Settings
from mixllm.serve.store import KEEP_CHECKPOINTS, Store
from mixllm.types import Decision, Feedback

__all__ = ["Learning"]

logger = logging.getLogger("mixllm.serve.gateway")


class Learning:
    """Feedback and checkpoints of a served router; ``state_dir`` holds the checkpoints (none
    without it). Feedback is applied and checkpoints taken in turn, under one lock."""

    def __init__(
        self,
        router: Router,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        *,
        state_dir: Path | None = None,
    ) -> None:
        self.router, self.store, self.settings, self.metrics = router, store, settings, metrics
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._applied_seq = last_seq(store)
        self._since_checkpoint = 0

    def feedback(self, decision_id: str, feedback: Feedback, key: ApiKey | None = None) -> str:
        """Store ``feedback`` durably, then learn from it: ``"applied"``, ``"duplicate"``
        (already stored: nothing changes) or ``"recorded"`` (stored, nothing to learn: its
        LLM has left the pool). Only the key that made the decision may send it (another
        key's decision is unknown to it, as is one past the retention). Runs in a worker
        thread."""
        owner = None if key is None else key.name
        decision = self.store.get_decision(decision_id, key_id=owner)
        if decision is None:
            raise UnknownDecisionError(
                f"unknown response id {decision_id!r}; expected the id of a recent response "
                "to this key"
            )
        with self._lock:
            seq = self.store.record_feedback(decision_id, feedback)
            if seq is None:
                self.metrics.feedback.labels("duplicate").inc()
                return "duplicate"
            applied, due = self._learn(seq, decision, feedback)
        if due and self.state_dir is not None:
            self.checkpoint()
        outcome = "applied" if applied else "recorded"
        self.metrics.feedback.labels(outcome).inc()
        return outcome

    def shadow(
        self,
        decision: Decision,
        feedback: Feedback | None,
        *,
        shadow_of: str,
        cost_usd: float,
        served: bool = False,
        prompt: str | None = None,
        output_tokens: float | None = None,
        latency_s: float | None = None,
    ) -> bool:
        """Store a shadow call (:meth:`Store.record_shadow <mixllm.serve.store.Store.
        record_shadow>`) and learn its ``feedback`` like a client's (so a restart learns it
        again); ``None`` feedback (an unknown quality) is stored, not learned. With ``served``,
        ``feedback`` is a grade of the served answer (``decision.llm`` the LLM that answered):
        stored as outcome ``"served"`` with that answer's charged cost (when the feedback has
        none) and length, under its own decision id, so the client's own feedback on
        ``shadow_of`` still applies. Whether the router learned from it. Runs in a worker
        thread."""
        outcome = "unknown_quality" if feedback is None else "learned"
        if served and feedback is not None:
            outcome = "served"
            charged, tokens = self.store.answer_of(shadow_of)
            if feedback.cost_usd is None and charged is not None:
                feedback = replace(feedback, cost_usd=charged)
            output_tokens = tokens if output_tokens is None else output_tokens
        with self._lock:
            seq = self.store.record_shadow(
                decision, shadow_of=shadow_of, feedback=feedback, cost_usd=cost_usd,
                outcome=outcome, prompt=prompt, output_tokens=output_tokens, latency_s=latency_s,
            )  # fmt: skip
            if seq is None or feedback is None:
                return False
            stored = self.store.get_decision(decision.decision_id) or decision  # as replayed
            applied, due = self._learn(seq, stored, feedback)
        if due and self.state_dir is not None:
            self.checkpoint()
        return applied

    def _learn(self, seq: int, decision: Decision, feedback: Feedback) -> tuple[bool, bool]:
        """Learn stored feedback #``seq`` (under the lock): whether it was applied, and
        whether a checkpoint is due."""
        self.router.remember([decision.decision_id])
        applied = self.router.learn_one(decision, feedback)
        self._applied_seq = max(self._applied_seq, seq)
        self._since_checkpoint += 1
        return applied, self._since_checkpoint >= self.settings.checkpoint_every

    def checkpoint(self) -> Path | None:
        """Save the router and record which feedback it includes; ``None`` without a state
        folder. Older checkpoints beyond the last two are deleted."""
        if self.state_dir is None:
            return None
        with self._lock:
            folder = self.state_dir / "checkpoints"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"ckpt-{time.time_ns()}"  # names sort by age
            self.router.save(path)
            self.store.record_checkpoint(str(path), self._applied_seq)
            self._since_checkpoint = 0
        for old in sorted(folder.glob("ckpt-*"))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("checkpoint %s (feedback up to #%d)", path.name, self._applied_seq)
        return path
