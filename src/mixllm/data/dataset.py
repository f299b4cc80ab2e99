"""The :class:`Dataset`: recorded outcomes of LLMs on queries, immutable.

Outcomes are a long table (one row per query × LLM: quality, cost, tokens, latency); it is held
as dense per-query × per-LLM arrays because every router reads it that way. A missing outcome is
``NaN`` (never a zero). Use :meth:`Dataset.from_outcomes` to build one from long rows and
:meth:`Dataset.outcomes` to read it back as long rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import DataError
from mixllm.types import LLM, resolve_llm

__all__ = ["Dataset", "Outcome"]

FloatArray = NDArray[np.float64]
ObjArray = NDArray[np.object_]


@dataclass(frozen=True)
class Outcome:
    """One row of the long table: how ``llm`` did on query ``query_id``."""

    query_id: str
    prompt: str
    llm: str
    quality: float | None
    cost_usd: float | None
    prompt_tokens: float | None = None
    output_tokens: float | None = None
    latency_s: float | None = None
    task: str | None = None
    response: str | None = None
    domain: str | None = None


def _frozen(a: NDArray[np.generic]) -> NDArray[np.generic]:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _label(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _full(n: int, k: int | None = None) -> FloatArray:
    return np.full((n,) if k is None else (n, k), np.nan, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Recorded outcomes: ``quality[i, j]`` is how ``llms[j]`` did on query ``query_ids[i]``.

    Parameters
    ----------
    query_ids, prompts, tasks:
        Per-query arrays (length n). ``tasks`` holds a label or ``None``.
    llms:
        LLM names (length L), in column order.
    quality, cost_usd, output_tokens, latency_s:
        Arrays of shape (n, L); ``NaN`` marks an unknown value.
    prompt_tokens:
        Per-query prompt token counts (length n), ``NaN`` where unknown.
    prices:
        Per-LLM :class:`~mixllm.types.LLM` records with prices, where known.
    responses:
        Optional (n, L) array of answer texts.
    domains:
        Optional per-query domain labels (length n, a label or ``None``), finer than the task
        (e.g. RouterDC's ``cluster_id`` as ``<task>/c<id>``); what
        ``MixLLMPredictor(tags="domain")`` learns its domains from. ``None``: no query has one.

    >>> ds = Dataset.from_outcomes([
    ...     Outcome("q1", "2+2?", "small", 0.0, 0.001),
    ...     Outcome("q1", "2+2?", "big", 1.0, 0.01),
    ... ])
    >>> ds.llms, ds.quality.tolist()
    (('small', 'big'), [[0.0, 1.0]])
    """

    query_ids: ObjArray
    prompts: ObjArray
    llms: tuple[str, ...]
    quality: FloatArray
    cost_usd: FloatArray
    prompt_tokens: FloatArray
    output_tokens: FloatArray
    latency_s: FloatArray
    tasks: ObjArray
    name: str = "dataset"
    prices: Mapping[str, LLM] = field(default_factory=dict)
    responses: ObjArray | None = None
    domains: ObjArray | None = None

    def __post_init__(self) -> None:
        n, k = len(self.query_ids), len(self.llms)
        for attr in ("query_ids", "prompts", "tasks", "prompt_tokens"):
            if len(getattr(self, attr)) != n:
                raise DataError(
                    f"{self.name}: {attr} has length {len(getattr(self, attr))}, expected {n}"
                )
        if self.domains is not None and len(self.domains) != n:
            raise DataError(f"{self.name}: domains has length {len(self.domains)}, expected {n}")
        grids = ["quality", "cost_usd", "output_tokens", "latency_s"]
        if self.responses is not None:
            grids.append("responses")
        for attr in grids:
            shape = np.shape(getattr(self, attr))
            if shape != (n, k):
                raise DataError(f"{self.name}: {attr} has shape {shape}, expected {(n, k)}")
        if len(set(self.llms)) != k:
            dupes = sorted({m for m in self.llms if self.llms.count(m) > 1})
            raise DataError(f"{self.name}: duplicate LLM names {dupes}")
        ids = [str(q) for q in self.query_ids]
        if len(set(ids)) != n:
            seen: set[str] = set()
            dupes = sorted({q for q in ids if q in seen or seen.add(q)})  # type: ignore[func-returns-value]
            raise DataError(f"{self.name}: duplicate query ids {dupes[:5]}")
        q = np.asarray(self.quality, dtype=np.float64)
        bad = np.argwhere((q < 0) | (q > 1))
        if len(bad):
            i, j = bad[0]
            raise DataError(
                f"{self.name}: quality {float(q[i, j])!r} for query {ids[i]!r}, "
                f"LLM {self.llms[j]!r} is outside [0, 1]"
            )
        for attr in ("cost_usd", "output_tokens", "latency_s", "prompt_tokens"):
            v = np.asarray(getattr(self, attr), dtype=np.float64)
            neg = np.argwhere(v < 0)
            if len(neg):
                where = tuple(neg[0])
                raise DataError(
                    f"{self.name}: {attr} {float(v[where])!r} for query {ids[where[0]]!r} "
                    "is negative; expected a number >= 0"
                )
            object.__setattr__(self, attr, _frozen(v))
        object.__setattr__(self, "quality", _frozen(q))
        object.__setattr__(self, "query_ids", _frozen(np.array(ids, dtype=object)))
        for attr in ("prompts", "tasks", "responses", "domains"):
            val = getattr(self, attr)
            if val is not None:
                object.__setattr__(self, attr, _frozen(np.asarray(val, dtype=object)))
        object.__setattr__(self, "llms", tuple(str(m) for m in self.llms))
        object.__setattr__(self, "prices", dict(self.prices))

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_outcomes(
        cls,
        rows: Iterable[Outcome],
        *,
        name: str = "dataset",
        prices: Mapping[str, LLM] | None = None,
    ) -> Dataset:
        """Build a dataset from long rows; queries and LLMs keep their first-seen order."""
        rows = list(rows)
        if not rows:
            raise DataError(f"{name}: no outcomes (the table is empty)")
        qindex: dict[str, int] = {}
        lindex: dict[str, int] = {}
        for r in rows:
            qindex.setdefault(r.query_id, len(qindex))
            lindex.setdefault(r.llm, len(lindex))
        n, k = len(qindex), len(lindex)
        prompts: list[str | None] = [None] * n
        tasks: list[str | None] = [None] * n
        domains: list[str | None] = [None] * n
        ptok = _full(n)
        grids = {a: _full(n, k) for a in ("quality", "cost_usd", "output_tokens", "latency_s")}
        responses = np.full((n, k), None, dtype=object)
        seen: set[tuple[int, int]] = set()
        for r in rows:
            i, j = qindex[r.query_id], lindex[r.llm]
            if (i, j) in seen:
                raise DataError(
                    f"{name}: duplicate outcome for query {r.query_id!r} and LLM {r.llm!r}"
                )
            seen.add((i, j))
            if prompts[i] is None:
                prompts[i] = r.prompt
            elif prompts[i] != r.prompt:
                raise DataError(f"{name}: query {r.query_id!r} has two different prompts")
            tasks[i] = tasks[i] or r.task
            domains[i] = domains[i] or r.domain
            if r.prompt_tokens is not None:
                ptok[i] = r.prompt_tokens
            for attr, grid in grids.items():
                val = getattr(r, attr)
                if val is not None:
                    grid[i, j] = float(val)
            responses[i, j] = r.response
        has_resp = any(r.response is not None for r in rows)
        return cls(
            query_ids=np.array(list(qindex), dtype=object),
            prompts=np.array(prompts, dtype=object),
            llms=tuple(lindex),
            prompt_tokens=ptok,
            tasks=np.array(tasks, dtype=object),
            name=name,
            prices=dict(prices or {}),
            responses=responses if has_resp else None,
            domains=np.array(domains, dtype=object) if any(domains) else None,
            **grids,
        )

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def n_llms(self) -> int:
        return len(self.llms)

    @property
    def has_tasks(self) -> bool:
        """True when every query has a task label."""
        return len(self) > 0 and all(t is not None and t != "" for t in self.tasks)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(sorted({str(t) for t in self.tasks if t is not None and t != ""}))

    @property
    def domain_names(self) -> tuple[str, ...]:
        """The distinct domain labels, sorted (empty when no query has one)."""
        found = () if self.domains is None else self.domains
        return tuple(sorted({str(d) for d in found if d is not None and d != ""}))

    def llm_index(self, name: str) -> int:
        """The column of LLM ``name``: its full name or an unambiguous short one
        (``mixtral-8x7b-chat`` for ``mistralai/mixtral-8x7b-chat``; see :func:`resolve_llm`)."""
        return self.llms.index(resolve_llm(name, self.llms))

    def llm(self, name: str) -> LLM:
        """The LLM record (with prices where known) for ``name`` (full or short name)."""
        full = self.llms[self.llm_index(name)]
        return self.prices.get(full, LLM(full))

    def require_quality(self, purpose: str = "routing") -> Dataset:
        """This dataset, or a :class:`DataError` when it has no quality label at all (a
        router fitted on it would send everything to the cheapest LLM)."""
        if len(self) and np.isnan(self.quality).all():
            raise DataError(
                f"{self.name}: no quality labels at all ({len(self)} queries x {self.n_llms} "
                f"LLMs, every quality blank); {purpose} needs a quality in [0, 1] for some "
                "queries and LLMs: add a 'quality' column (docs/data-format.md), or grade the "
                "answers with `mixllm collect`"
            )
        return self

    def outcomes(self) -> Iterator[Outcome]:
        """The long table, one :class:`Outcome` per query × LLM."""

        def opt(v: float) -> float | None:
            return None if np.isnan(v) else float(v)

        for i, qid in enumerate(self.query_ids):
            for j, llm in enumerate(self.llms):
                yield Outcome(
                    query_id=str(qid),
                    prompt=str(self.prompts[i]),
                    llm=llm,
                    quality=opt(self.quality[i, j]),
                    cost_usd=opt(self.cost_usd[i, j]),
                    prompt_tokens=opt(self.prompt_tokens[i]),
                    output_tokens=opt(self.output_tokens[i, j]),
                    latency_s=opt(self.latency_s[i, j]),
                    task=None if self.tasks[i] is None else str(self.tasks[i]),
                    response=None if self.responses is None else self.responses[i, j],
                    domain=None if self.domains is None else _label(self.domains[i]),
                )

    # -- new datasets -------------------------------------------------------------------------
    def subset(
        self, index: Sequence[int] | NDArray[np.integer], *, name: str | None = None
    ) -> Dataset:
        """A new dataset with the queries at ``index`` (in that order)."""
        idx = np.asarray(index, dtype=np.int64)
        return Dataset(
            query_ids=self.query_ids[idx],
            prompts=self.prompts[idx],
            llms=self.llms,
            quality=self.quality[idx],
            cost_usd=self.cost_usd[idx],
            prompt_tokens=self.prompt_tokens[idx],
            output_tokens=self.output_tokens[idx],
            latency_s=self.latency_s[idx],
            tasks=self.tasks[idx],
            name=name or self.name,
            prices=self.prices,
            responses=None if self.responses is None else self.responses[idx],
            domains=None if self.domains is None else self.domains[idx],
        )

    def select_llms(self, names: Sequence[str]) -> Dataset:
        """A new dataset with only the LLMs ``names`` (in that order)."""
        cols = np.array([self.llm_index(m) for m in names], dtype=np.int64)
        names = [self.llms[c] for c in cols]
        return Dataset(
            query_ids=self.query_ids,
            prompts=self.prompts,
            llms=tuple(names),
            quality=self.quality[:, cols],
            cost_usd=self.cost_usd[:, cols],
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens[:, cols],
            latency_s=self.latency_s[:, cols],
            tasks=self.tasks,
            name=self.name,
            prices={m: p for m, p in self.prices.items() if m in names},
            responses=None if self.responses is None else self.responses[:, cols],
            domains=self.domains,
        )

    def with_prices(self, prices: Mapping[str, LLM]) -> Dataset:
        """A new dataset whose LLM price records are ``prices`` (merged over the current ones)."""
        merged = {**self.prices, **{m: p for m, p in prices.items() if m in self.llms}}
        return replace(self, prices=merged)

    def with_tokens(self, prompt_tokens: FloatArray, output_tokens: FloatArray) -> Dataset:
        """A new dataset with the given token counts."""
        return replace(self, prompt_tokens=prompt_tokens, output_tokens=output_tokens)
