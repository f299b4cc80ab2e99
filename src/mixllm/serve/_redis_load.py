"""Load shared by several gateway replicas through Redis (see :mod:`~mixllm.serve._redis`).

Each replica keeps its own counts and measurements (a :class:`~mixllm.policy.LoadTracker`)
and publishes them in a hash of its own, ``<prefix>load:<replica id>``, one field per LLM
(in flight, the averaged service seconds, how many measurements that average stands for,
and the moments of the tokens → seconds fit). A background thread writes the whole hash
again at most every 10 ms after a change and at least every ``heartbeat_s`` (2 s), each
time renewing its expiry (``heartbeat_ttl_s``, 10 s): a replica that dies stops renewing
it, so its requests in flight stop counting at most 10 s later. A replica that stops
cleanly deletes it at once. The set ``<prefix>replicas`` names the replicas to look for.

What a replica routes with is its own state plus the other live replicas' hashes, read at
most every ``cache_s`` (0.1 s, so routing costs at most one Redis round trip per 100 ms):
in-flight counts add up; service times are averaged weighted by how many measurements
each stands for; the fits' moments add up, so the pooled fit is the least-squares line of
every replica's measurements, each replica's decaying with its own traffic.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mixllm.errors import ConfigError
from mixllm.policy import LoadTracker
from mixllm.policy.load import _ServiceFit
from mixllm.serve._redis import RedisLink

__all__ = ["SharedLoadTracker"]

logger = logging.getLogger(__name__)
_MIN_PUSH_S = 0.01  # at most 100 writes a second of a replica's load, however busy it is


@dataclass
class _Others:
    """What the other live replicas published about one LLM, added up."""

    in_flight: int = 0
    service_sum: float = 0.0  # Σ measurements × averaged seconds
    service_n: float = 0.0  # Σ measurements
    fit: list[float] = field(default_factory=lambda: [0.0] * 5)


class SharedLoadTracker(LoadTracker):
    """A :class:`~mixllm.policy.LoadTracker` whose waits count every live replica's requests in
    flight and whose service times pool every replica's measurements; the Router uses it
    unchanged. Call :meth:`close` when the replica stops.

    Parameters
    ----------
    link
        The replica's :class:`RedisLink`.
    heartbeat_ttl_s
        How long the replica's published load outlives its last heartbeat.
    heartbeat_s
        How often it is published when nothing changes (``heartbeat_ttl_s / 5`` by default).
    cache_s
        How long the other replicas' load is reused before it is read again.
    **kwargs
        As :class:`~mixllm.policy.LoadTracker`'s.
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        heartbeat_ttl_s: float = 10.0,
        heartbeat_s: float | None = None,
        cache_s: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        beat = heartbeat_ttl_s / 5 if heartbeat_s is None else heartbeat_s
        if not 0 < beat < heartbeat_ttl_s or not cache_s >= 0:
            raise ConfigError(
                f"heartbeat_s={beat!r}, heartbeat_ttl_s={heartbeat_ttl_s!r}, cache_s={cache_s!r};"
                " expected 0 < heartbeat_s < heartbeat_ttl_s and cache_s >= 0"
            )
        self.link = link
        self.heartbeat_ttl_s = float(heartbeat_ttl_s)
        self.heartbeat_s = float(beat)
        self.cache_s = float(cache_s)
        self._key = link.key("load", link.replica_id)
        self._measured: dict[str, float] = {}  # LLM -> how many measurements service_s stands for
        self._others: dict[str, _Others] = {}
        self._read_at = -math.inf
        self._reading = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"mixllm-redis-{link.replica_id[:8]}", daemon=True
        )
        link.on_back.append(self._wake.set)  # publish again at once into a restarted Redis
        self._thread.start()

    # -- this replica's changes ------------------------------------------------------------------
    def started(self, llm: str) -> None:
        super().started(llm)
        self._wake.set()

    def finished(
        self, llm: str, *, latency_s: float | None = None, output_tokens: float | None = None
    ) -> None:
        super().finished(llm, latency_s=latency_s, output_tokens=output_tokens)
        if latency_s is not None and math.isfinite(latency_s) and latency_s >= 0:
            with self._lock:  # the weight of the smoothed average: 1, 1.8, 2.4 ... → 1/smoothing
                self._measured[llm] = (1 - self.smoothing) * self._measured.get(llm, 0.0) + 1
        self._wake.set()

    def served(self, llm: str, *, service_s: float, output_tokens: float) -> None:
        super().served(llm, service_s=service_s, output_tokens=output_tokens)
        self._wake.set()

    # -- what routing sees -----------------------------------------------------------------------
    def in_flight(self, llm: str) -> int:
        """Requests in flight to ``llm`` on every live replica."""
        self._refresh()
        other = self._others.get(llm)
        return self.local_in_flight(llm) + (other.in_flight if other else 0)

    def wait_s(self, llms: Sequence[str]) -> Any:
        self._refresh()
        return super().wait_s(llms)

    def _wait(self, llm: str) -> float:  # under self._lock
        state, other = self._llms.get(llm), self._others.get(llm)
        if state is not None and state.override_s is not None:
            return state.override_s
        if state is None and other is None:
            return 0.0
        mine = 0 if state is None else state.in_flight
        total = mine + (other.in_flight if other else 0)
        slots = self.concurrency.get(llm, self.default_concurrency)
        queued = max(0, total - slots + 1)
        if queued == 0:
            return 0.0
        n, s = (other.service_n, other.service_sum) if other else (0.0, 0.0)
        if state is not None and state.service_s is not None:
            weight = self._measured.get(llm, 1.0)
            n, s = n + weight, s + weight * state.service_s
        service = s / n if n > 0 else self.default_service_s
        return queued * service / slots

    def _fits(self, llms: Sequence[str]) -> list[_ServiceFit | None]:
        self._refresh()
        mine = super()._fits(llms)
        pooled: list[_ServiceFit | None] = []
        for llm, fit in zip(llms, mine, strict=True):
            other = self._others.get(llm)
            if other is None or other.fit[0] <= 0:
                pooled.append(fit)
                continue
            both = _ServiceFit(*other.fit)
            if fit is not None:
                for name in ("weight", "x", "y", "xx", "xy"):
                    setattr(both, name, getattr(both, name) + getattr(fit, name))
            pooled.append(both)
        return pooled

    # -- Redis -----------------------------------------------------------------------------------
    def sync(self) -> bool:
        """Publish this replica's load and read the others' now; whether Redis answered."""
        pushed = self.link.call(self._push) is not None
        self._read_at = -math.inf
        self._refresh()
        return pushed and self.link.up

    def close(self, *, forget: bool = True) -> None:
        """Stop publishing; ``forget`` deletes the published load at once (a clean stop),
        otherwise it expires after ``heartbeat_ttl_s`` as a killed replica's would."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        if self._wake.set in self.link.on_back:
            self.link.on_back.remove(self._wake.set)
        self._thread.join(timeout=5.0)
        if forget:
            replicas, key, rid = self.link.key("replicas"), self._key, self.link.replica_id
            self.link.call(lambda c: c.pipeline().delete(key).srem(replicas, rid).execute())

    def _state(self) -> dict[str, str]:
        with self._lock:
            fields = {"~at": repr(time.time())}
            for llm, st in self._llms.items():
                fit = st.fit
                moments = None if fit is None else [fit.weight, fit.x, fit.y, fit.xx, fit.xy]
                entry = {"n": st.in_flight, "s": st.service_s, "f": moments}
                fields[llm] = json.dumps({**entry, "c": self._measured.get(llm, 1.0)})
            return fields

    def _push(self, client: Any) -> bool:
        pipe = client.pipeline(transaction=True)
        pipe.hset(self._key, mapping=self._state())
        pipe.pexpire(self._key, int(self.heartbeat_ttl_s * 1000))
        pipe.sadd(self.link.key("replicas"), self.link.replica_id)
        pipe.execute()
        return True

    def _beat(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.link.call(self._push)
            if self._stop.wait(_MIN_PUSH_S):
                break
            self._wake.wait(self.heartbeat_s)

    def _refresh(self) -> None:
        if time.monotonic() - self._read_at < self.cache_s:
            return
        if not self._reading.acquire(blocking=False):
            return  # another thread is reading: route with the view it replaces
        try:
            self._read_at = time.monotonic()
            others = self.link.call(self._read)
            self._others = {} if others is None else others
        finally:
            self._reading.release()

    def _read(self, client: Any) -> dict[str, _Others]:
        replicas = self.link.key("replicas")
        ids = sorted(set(client.smembers(replicas)) - {self.link.replica_id})
        pipe = client.pipeline(transaction=False)
        for rid in ids:
            pipe.hgetall(self.link.key("load", rid))
        rows: list[Mapping[str, str]] = pipe.execute() if ids else []
        gone = [rid for rid, row in zip(ids, rows, strict=True) if not row]
        if gone:  # expired: a replica that stopped heartbeating
            client.srem(replicas, *gone)
        return _add_up(rows)


def _add_up(rows: Sequence[Mapping[str, str]]) -> dict[str, _Others]:
    others: dict[str, _Others] = {}
    for row in rows:
        for llm, raw in row.items():
            if llm.startswith("~"):
                continue
            try:
                st = json.loads(raw)
                entry = others.setdefault(llm, _Others())
                entry.in_flight += max(0, int(st["n"]))
                if st["s"] is not None:
                    entry.service_n += float(st["c"])
                    entry.service_sum += float(st["c"]) * float(st["s"])
                if st["f"] is not None:
                    entry.fit = [a + float(b) for a, b in zip(entry.fit, st["f"], strict=True)]
            except (ValueError, KeyError, TypeError):
                logger.warning("ignoring a malformed load entry for %r in Redis: %r", llm, raw)
    return others
