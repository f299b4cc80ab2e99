"""Learning from feedback in the gateway: each feedback stored durably before it is
acknowledged, then learned; checkpoints that record which feedback they hold, so that a
restart resumes from the last one plus the feedback stored after it
(:func:`~mixllm.serve.restore.restore_router`).

The stored feedback is a log, learned strictly in its sequence order. On a shared store
(:mod:`mixllm.serve.replicas`) several replicas append to it, and each one follows it: a
background thread waits for new rows (:meth:`Learning.follow`) and learns them in order, so
every replica learns every feedback once, whichever replica received it, and checkpoints go
into the database, written by one replica at a time.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from mixllm.errors import PersistError, UnknownDecisionError
from mixllm.router import Router
from mixllm.serve.metrics import Metrics
from mixllm.serve.replicas import pack_router, restored_seq
from mixllm.serve.restore import last_seq
from mixllm.serve.settings import ApiKey, Settings
from mixllm.serve.store import KEEP_CHECKPOINTS, Store
from mixllm.types import Decision, Feedback

__all__ = ["Learning"]

logger = logging.getLogger("mixllm.serve.gateway")

_OUTCOMES = 10_000
"""Recent feedback whose outcome (applied or not) is kept for the thread that received it."""


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
        restored = restored_seq(router)
        self.shared = restored is not None
        """Whether the store is shared with other replicas (the router was restored by
        :func:`~mixllm.serve.replicas.open_shared_state`): the log is followed, and
        checkpoints go into the database."""
        self._applied_seq = last_seq(store) if restored is None else restored
        self._since_checkpoint = 0
        self._outcomes: OrderedDict[int, bool] = OrderedDict()  # recent seq -> applied
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None

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
        seq = self.store.record_feedback(decision_id, feedback)  # durable: acknowledged
        if seq is None:
            self.metrics.feedback.labels("duplicate").inc()
            return "duplicate"
        applied = self.catch_up(seq)
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
        seq = self.store.record_shadow(
            decision, shadow_of=shadow_of, feedback=feedback, cost_usd=cost_usd,
            outcome=outcome, prompt=prompt, output_tokens=output_tokens, latency_s=latency_s,
        )  # fmt: skip
        if seq is None or feedback is None:
            return False
        return self.catch_up(seq)

    def catch_up(self, seq: int | None = None) -> bool:
        """Learn, in sequence order, every stored feedback after the last one learned (with
        its decision as stored); whether feedback #``seq`` was applied (``False`` when
        ``seq`` is ``None``). Takes a checkpoint when one is due."""
        with self._lock:
            due = False
            for position, decision, feedback in self.store.replay_since(self._applied_seq):
                self._outcomes[position] = self.router.learn_one(decision, feedback)
                while len(self._outcomes) > _OUTCOMES:
                    self._outcomes.popitem(last=False)
                self._applied_seq = position
                self._since_checkpoint += 1
                due = due or self._since_checkpoint >= self.settings.checkpoint_every
            applied = False if seq is None else self._outcomes.get(seq, False)
        if due:
            self.checkpoint()
        return applied

    @property
    def applied_seq(self) -> int:
        """The sequence number of the last feedback learned."""
        return self._applied_seq

    def follow(self, *, poll_s: float = 1.0) -> None:
        """Learn the feedback that other replicas store, as it comes, until :meth:`stop` (run
        in a thread by :meth:`start`). A store that cannot be read is retried every second:
        routing goes on from the last state meanwhile."""
        failing = False
        while not self._stop.is_set():
            try:
                if self.store.wait_feedback(self._applied_seq, timeout_s=poll_s):
                    self.catch_up()
                if failing:
                    logger.warning("the shared store is back: following its feedback again")
                failing = False
            except PersistError as exc:
                if not failing:
                    logger.warning("cannot follow the shared store's feedback: %s", exc)
                failing = True
                self._stop.wait(1.0)

    def start(self) -> None:
        """Follow the shared store's feedback in a background thread (nothing for a store
        that is not shared)."""
        if self.shared and self._follower is None:
            self._stop.clear()
            self._follower = threading.Thread(target=self.follow, name="mixllm-follow", daemon=True)
            self._follower.start()

    def stop(self) -> None:
        """Stop following (waits for the thread)."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=10.0)
            self._follower = None

    def checkpoint(self) -> Path | None:
        """Save the router and record which feedback it includes; ``None`` without a state
        folder. Older checkpoints beyond the last two are deleted. On a shared store the
        checkpoint goes into the database, written by the replica holding its lock (``None``
        on the others)."""
        if self.shared:
            self._checkpoint_shared()
            return None
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

    def _checkpoint_shared(self) -> None:
        """The router, packed, into the shared store with the log position it holds."""
        with self.store.checkpoint_lock() as held:
            if not held:  # another replica writes the checkpoints
                with self._lock:
                    self._since_checkpoint = 0
                return
            with self._lock:
                data, seq = pack_router(self.router), self._applied_seq
                self._since_checkpoint = 0
            self.store.record_checkpoint_data(data, seq)
        logger.info("checkpoint in the shared store (feedback up to #%d)", seq)
