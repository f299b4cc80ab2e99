"""Prometheus metrics of one gateway (its own registry: two apps in a process never mix)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics", "metric_total"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """Requests, decisions per LLM, fallbacks, latencies, spend, shadow calls, pacing;
    ``render()`` for ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mixllm_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
            registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            "mixllm_decisions", "Routing decisions by chosen LLM", ["llm"], registry=r
        )
        self.answers = Counter(
            "mixllm_answers", "Answers by the LLM that gave them", ["llm"], registry=r
        )
        self.fallbacks = Counter(
            "mixllm_fallbacks", "Failed attempts that moved on to the next LLM", ["llm"],
            registry=r,
        )  # fmt: skip
        self.upstream_latency = Histogram(
            "mixllm_upstream_latency_seconds", "Upstream answer latency by LLM", ["llm"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.request_latency = Histogram(
            "mixllm_request_latency_seconds", "Whole request latency by endpoint", ["endpoint"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.spend = Counter(
            "mixllm_spend_usd", "Estimated spend in USD by LLM", ["llm"], registry=r
        )
        self.feedback = Counter(
            "mixllm_feedback", "Feedback received, by outcome", ["outcome"], registry=r
        )
        self.in_flight = Gauge(
            "mixllm_in_flight", "Upstream requests in flight by LLM", ["llm"], registry=r
        )
        self.shadow_requests = Counter(
            "mixllm_shadow_requests", "Shadow calls by LLM, outcome (learned, unknown_quality, "
            "over_budget, dropped, failed, no_candidate) and answer graded (shadow, served)",
            ["llm", "outcome", "answer"], registry=r,
        )  # fmt: skip
        self.shadow_spend = Counter(
            "mixllm_shadow_spend_usd", "Shadow spend in USD by kind (answer, judge)", ["kind"],
            registry=r,
        )  # fmt: skip
        self.shadow_spend_today = Gauge(
            "mixllm_shadow_spend_today_usd", "Shadow spend of the current UTC day in USD "
            "(reservations in flight included)", registry=r,
        )  # fmt: skip

        self.pacing_lam = Gauge(
            "mixllm_pacing_lambda", "λ each pacing scope routes with now", ["scope"], registry=r
        )
        self.pacing_rate = Gauge(
            "mixllm_pacing_spend_rate_usd_per_hour", "Spend rate of each pacing scope over its "
            "recent window (USD per hour)", ["scope"], registry=r,
        )  # fmt: skip
        self.pacing_spend = Gauge(
            "mixllm_pacing_period_spend_usd", "Spend of each pacing scope's current period in "
            "USD (holds of calls in flight included)", ["scope"], registry=r,
        )  # fmt: skip
        self.pacing_budget = Gauge(
            "mixllm_pacing_budget_usd", "Budget of each pacing scope per period in USD",
            ["scope"], registry=r,
        )  # fmt: skip
        self.pacing_refused = Counter(
            "mixllm_pacing_refused", "Requests refused because a pacing budget was spent",
            ["scope"], registry=r,
        )  # fmt: skip

        self.feedback_learned = Gauge(
            "mixllm_feedback_learned", "Sequence number of the last stored feedback this "
            "gateway has learned (equal on replicas in step)", registry=r,
        )  # fmt: skip
        self.kept_writes = Gauge(
            "mixllm_store_kept_writes", "Writes kept in memory while the shared store is "
            "away, written when it is back", registry=r,
        )  # fmt: skip
        self.redis_up = Gauge(
            "mixllm_redis_up", "1 while the shared Redis answers, 0 while this replica counts "
            "alone", registry=r,
        )  # fmt: skip

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def metric_total(text: str, name: str, **labels: str) -> float:
    r"""The sum of the samples named ``name`` (``..._total`` for a counter) whose labels include
    ``labels``, in a Prometheus text exposition such as ``GET /metrics`` returns.

    >>> text = 'hits_total{llm="a",outcome="ok"} 2.0\nhits_total{llm="b",outcome="ok"} 3.0\n'
    >>> metric_total(text, "hits_total"), metric_total(text, "hits_total", llm="b")
    (5.0, 3.0)
    """
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
