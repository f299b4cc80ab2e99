"""Streams of queries through a router: arrivals, per-LLM queues with waits and τ, simulated
users. Everything is driven by simulated time and seeded, so the same seed gives the same run.
"""

from __future__ import annotations

from mixllm.simulate.arrivals import Arrivals, Bursts, FixedRate, Poisson, parse_arrivals
from mixllm.simulate.queues import Queues, Served, Service
from mixllm.simulate.users import ThresholdUser

__all__ = [
    "Arrivals",
    "Bursts",
    "FixedRate",
    "Poisson",
    "Queues",
    "Served",
    "Service",
    "ThresholdUser",
    "parse_arrivals",
]
