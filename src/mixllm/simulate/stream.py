"""Run a stream of recorded queries through a router in simulated time.

Each query arrives (:mod:`~mixllm.simulate.arrivals`), the router sees every LLM's current
waiting time through its :class:`~mixllm.policy.LoadTracker` (fed by the
:class:`~mixllm.simulate.queues.Queues`, as the gateway feeds it from live traffic) and chooses;
the request queues at the chosen LLM, is answered with the recorded outcome of that LLM on that
query, or fails (quality 0, no cost) if it would have waited past τ. Feedback on an answer
reaches the router when the answer is complete (plus an optional delay): nothing is learned from
the future. LLMs can join or leave at given points of the stream.

The run is deterministic for a seed: the arrival times, the user's noise and every tie are
seeded, and the router is given query ids, so the same inputs give the same steps.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from mixllm.data import Dataset
from mixllm.errors import ConfigError
from mixllm.policy import LoadTracker
from mixllm.router import Router
from mixllm.simulate.arrivals import Arrivals, FixedRate
from mixllm.simulate.queues import Queues, Service
from mixllm.simulate.users import ThresholdUser
from mixllm.types import LLM, Decision, Feedback

__all__ = ["FeedbackKind", "PoolEvent", "Step", "StreamConfig", "run_stream"]

FeedbackKind = Literal["none", "refined", "binary"]
FEEDBACK_KINDS: tuple[str, ...] = ("none", "refined", "binary")


@dataclass(frozen=True)
class PoolEvent:
    """Before query number ``at``: add ``add`` (an LLM with no data; ``seed`` outcomes optional)
    or remove the LLM named ``remove``."""

    at: int
    add: LLM | None = None
    remove: str | None = None
    seed: Dataset | None = None

    def __post_init__(self) -> None:
        if (self.add is None) == (self.remove is None):
            raise ConfigError(f"pool event at {self.at}: expected exactly one of add or remove")
        if self.at < 0:
            raise ConfigError(f"pool event at={self.at!r}; expected a query index >= 0")


@dataclass(frozen=True)
class StreamConfig:
    """How the stream runs.

    ``tau_s`` is the environment's limit: a query that would wait longer fails. ``feedback``:
    ``"refined"`` reports the measured quality and cost, ``"binary"`` the simulated user's thumbs
    up/down, ``"none"`` nothing (an offline-only router). ``services`` per LLM (``default_service``
    for the others). ``waits``: ``"exact"`` tells the router each LLM's true waiting time before
    every decision; ``"observed"`` feeds its :class:`~mixllm.policy.LoadTracker` only what a
    gateway sees: a request started, a request finished after so many seconds (the tracker then
    estimates waits from in-flight counts, the LLMs' slots and the measured latencies). Either
    way the tracker hears each answer's length with its time (service time when exact, latency
    when observed) when it finishes, and learns how long answers take per output token.
    """

    lam: float = 1.0
    arrivals: Arrivals = field(default_factory=FixedRate)
    tau_s: float = 30.0
    feedback: FeedbackKind = "refined"
    feedback_delay_s: float = 0.0
    services: Mapping[str, Service] = field(default_factory=dict)
    default_service: Service = field(default_factory=Service)
    user: ThresholdUser = field(default_factory=ThresholdUser)
    events: Sequence[PoolEvent] = ()
    waits: Literal["exact", "observed"] = "exact"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.waits not in ("exact", "observed"):
            raise ConfigError(f"waits={self.waits!r}; expected 'exact' or 'observed'")
        if self.feedback not in FEEDBACK_KINDS:
            raise ConfigError(f"feedback={self.feedback!r}; expected one of {FEEDBACK_KINDS}")
        if not (self.tau_s > 0):
            raise ConfigError(f"tau_s={self.tau_s!r}; expected a number of seconds > 0")
        if not (self.feedback_delay_s >= 0 and math.isfinite(self.feedback_delay_s)):
            raise ConfigError(f"feedback_delay_s={self.feedback_delay_s!r}; expected >= 0")


@dataclass(frozen=True)
class Step:
    """One query of the stream: what was chosen and what came of it."""

    index: int
    query_id: str
    arrival_s: float
    llm: str
    wait_s: float
    timed_out: bool
    quality: float
    cost_usd: float
    reward: bool
    best_utility: float
    utility: float

    @property
    def regret(self) -> float:
        """The oracle's ``quality − λ·cost`` on this query minus the chosen LLM's."""
        return self.best_utility - self.utility


def _service(config: StreamConfig, llm: str) -> Service:
    return config.services.get(llm, config.default_service)


def _output_tokens(stream: Dataset) -> NDArray[np.float64]:
    """Recorded output tokens, a missing cell filled with its LLM's mean (200 if none)."""
    tok = np.asarray(stream.output_tokens, dtype=np.float64)
    known = np.isfinite(tok)
    n = known.sum(axis=0)
    means = np.where(n > 0, np.where(known, tok, 0.0).sum(axis=0) / np.maximum(n, 1), 200.0)
    out: NDArray[np.float64] = np.where(known, tok, means[None, :])
    return out


def run_stream(
    router: Router,
    stream: Dataset,
    config: StreamConfig,
    *,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """Route every query of ``stream`` in order of arrival; learn from feedback as it arrives.

    ``stream`` holds the recorded outcome of every LLM that may be chosen (including LLMs that
    join later). The router is changed in place (online learning, pool events) and gets a
    :class:`~mixllm.policy.LoadTracker` if it has none.
    """
    n = len(stream)
    wanted = set(router.llms) | {e.add.name for e in config.events if e.add is not None}
    missing = sorted(wanted - set(stream.llms))
    if missing:
        raise ConfigError(
            f"{stream.name}: no recorded outcomes for LLMs {missing} that the stream may "
            f"route to; it has {list(stream.llms)}"
        )
    times = config.arrivals.times(n, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    tracker = router.load_tracker
    if tracker is None:
        slots = {m: _service(config, m).concurrency for m in stream.llms}
        tracker = LoadTracker(concurrency=slots)
        router.set_params(load_tracker=tracker)
    # Requests being served: (end, i, llm, latency, service seconds, output tokens).
    running: list[tuple[float, int, str, float, float, float]] = []
    queues = Queues({m: _service(config, m) for m in router.llms})
    quality = np.nan_to_num(np.asarray(stream.quality, dtype=np.float64), nan=0.0)
    cost = np.asarray(stream.cost_usd, dtype=np.float64)
    tokens = _output_tokens(stream)
    column = {m: j for j, m in enumerate(stream.llms)}
    events = sorted(config.events, key=lambda e: e.at)
    pending: list[tuple[float, int, Decision, Feedback]] = []
    steps: list[Step] = []
    lam = config.lam
    for i in range(n):
        now = float(times[i])
        while pending and pending[0][0] <= now:
            _, _, decision, feedback = heapq.heappop(pending)
            router.learn_one(decision, feedback)
        while events and events[0].at <= i:
            _apply_event(router, queues, events.pop(0), config)
        live = [column[m] for m in router.llms]
        if config.waits == "exact":
            queues.feed(tracker, now)
        while running and running[0][0] <= now:
            _, _, llm, latency, service_s, out = heapq.heappop(running)
            if config.waits == "observed":
                tracker.finished(llm, latency_s=latency, output_tokens=out)
            else:  # the waits are set exactly; the service time still teaches tokens → seconds
                tracker.served(llm, service_s=service_s, output_tokens=out)
        qid = str(stream.query_ids[i])
        decision = router.route(str(stream.prompts[i]), lam=lam, query_id=qid)
        j = column[decision.llm]
        served = queues.submit(decision.llm, now, output_tokens=tokens[i, j], tau_s=config.tau_s)
        if not served.timed_out:
            if config.waits == "observed":
                tracker.started(decision.llm)
            latency = served.wait_s + served.service_s
            end = (now + latency, i, decision.llm, latency, served.service_s, float(tokens[i, j]))
            heapq.heappush(running, end)
        q = 0.0 if served.timed_out else float(quality[i, j])
        c = 0.0 if served.timed_out else float(np.nan_to_num(cost[i, j]))
        reward = config.user.reward(
            quality=q, wait_s=served.wait_s, timed_out=served.timed_out, rng=rng
        )
        utility = quality[i, live] - lam * np.nan_to_num(cost[i, live])
        step = Step(
            index=i,
            query_id=qid,
            arrival_s=now,
            llm=decision.llm,
            wait_s=served.wait_s,
            timed_out=served.timed_out,
            quality=q,
            cost_usd=c,
            reward=reward,
            best_utility=float(utility.max()),
            utility=q - lam * c,
        )
        steps.append(step)
        if on_step is not None:
            on_step(step)
        answer = _feedback(config.feedback, q, c, reward, served.timed_out)
        if answer is not None:
            done = now + served.wait_s + (0.0 if served.timed_out else served.service_s)
            heapq.heappush(pending, (done + config.feedback_delay_s, i, decision, answer))
    return steps


def _feedback(
    kind: FeedbackKind, quality: float, cost: float, reward: bool, timed_out: bool
) -> Feedback | None:
    if kind == "none":
        return None
    if kind == "binary":
        return Feedback(reward=reward)
    # A query dropped for waiting says nothing about the LLM's answers.
    return None if timed_out else Feedback(quality=quality, cost_usd=cost)


def _apply_event(router: Router, queues: Queues, event: PoolEvent, config: StreamConfig) -> None:
    if event.add is not None:
        router.add_llm(event.add, dataset=event.seed)
        queues.add_llm(event.add.name, _service(config, event.add.name))
    elif event.remove is not None:
        router.remove_llm(event.remove)
        queues.remove_llm(event.remove)
