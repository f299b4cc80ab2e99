"""The pool of LLMs that answer (and the judges that grade) for ``mixllm collect``.

A pool file is TOML with ``[[upstreams]]`` tables exactly like the gateway's (each built by
:func:`~mixllm.serve.backends.make_backend`), which must carry their prices here, and optional
``[[judges]]`` tables of the same shape for judge LLMs that do not answer. The gateway's other
tables (``[server]``, ``[[keys]]``, ``[profiles]``) may be present and are ignored, so one
``mixllm.toml`` serves both.

>>> pool = pool_from_text('''
... [[upstreams]]
... llm = "small"
... base_url = "http://127.0.0.1:8000/v1"
... model = "m"
... price_in_per_mtok = 0.2
... price_out_per_mtok = 0.6
... ''', environ={})
>>> pool.llms, pool.answerers["small"].price.price_out_per_mtok
(('small',), 0.6)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from mixllm.collect.judge import RECORDED, RecordedJudge
from mixllm.data.dataset import Dataset
from mixllm.errors import ConfigError
from mixllm.serve.backends import Backend, make_backend
from mixllm.serve.replay import ReplayBackend
from mixllm.types import LLM

__all__ = ["Member", "Pool", "load_pool", "pool_from_text", "replay_pool"]

_PRICES = ("price_in_per_mtok", "price_out_per_mtok")
_GATEWAY_TABLES = {"server", "keys", "profiles"}


@dataclass(frozen=True)
class Member:
    """One LLM reachable for collection: its backend and its prices (USD per million tokens)."""

    llm: str
    backend: Backend
    price: LLM


@dataclass
class Pool:
    """The LLMs that answer (``answerers``, in file order) and the extra judge LLMs.

    ``answerable(prompt, llm)``, when set, says which pairs can be answered at all (a replay
    answers only the prompts it recorded); the others are left out of a run.
    """

    answerers: dict[str, Member]
    judges: dict[str, Member] = field(default_factory=dict)
    answerable: Callable[[str, str], bool] | None = None

    @property
    def llms(self) -> tuple[str, ...]:
        return tuple(self.answerers)

    def select(self, names: Sequence[str] | None) -> Pool:
        """The pool with only the answering LLMs ``names`` (``None``: all); ConfigError naming
        an unknown one and listing the pool."""
        if names is None:
            return self
        unknown = [n for n in names if n not in self.answerers]
        if unknown or not names:
            raise ConfigError(
                f"--llms: unknown LLM(s) {unknown or list(names)}; the pool has {list(self.llms)}"
            )
        chosen = {n: self.answerers[n] for n in dict.fromkeys(names)}
        return Pool(chosen, self.judges, self.answerable)

    def judge(self, name: str) -> Member:
        """The judge LLM ``name``: an answering LLM or one of ``[[judges]]``."""
        found = self.answerers.get(name) or self.judges.get(name)
        if found is None:
            known = sorted({*self.answerers, *self.judges})
            raise ConfigError(f"--judge: unknown LLM {name!r}; known: {known}")
        return found

    async def aclose(self) -> None:
        """Close every backend."""
        for m in (*self.answerers.values(), *self.judges.values()):
            await m.backend.aclose()


def load_pool(path: str | Path, *, environ: Mapping[str, str]) -> Pool:
    """The pool described by a TOML file (see the module's docstring)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read pool config {str(file)!r}: {exc}") from exc
    return pool_from_text(text, environ=environ, source=str(file))


def pool_from_text(text: str, *, environ: Mapping[str, str], source: str = "<config>") -> Pool:
    """The pool described by TOML text; ``environ`` holds the API keys it names."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - {"upstreams", "judges", *_GATEWAY_TABLES})
    if unknown:
        raise ConfigError(
            f"{source}: unknown tables {unknown}; expected [[upstreams]] and optionally [[judges]]"
        )
    answerers = _members(data.get("upstreams", []), "upstreams", environ, source)
    judges = _members(data.get("judges", []), "judges", environ, source)
    if not answerers:
        raise ConfigError(f"{source}: no [[upstreams]]; expected at least one LLM to ask")
    both = sorted(set(answerers) & set(judges))
    if both:
        raise ConfigError(f"{source}: {both} are both [[upstreams]] and [[judges]]; name each once")
    return Pool(answerers, judges)


def _members(tables: Any, kind: str, environ: Mapping[str, str], source: str) -> dict[str, Member]:
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{source}: {kind} = {tables!r}; expected [[{kind}]] tables")
    members: dict[str, Member] = {}
    for table in tables:
        name = table.get("llm")
        missing = [p for p in _PRICES if p not in table]
        if missing:
            raise ConfigError(
                f"{source} [[{kind}]] {name!r}: missing {missing}; mixllm collect needs the "
                "prices (USD per million tokens) of every LLM it calls"
            )
        backend = make_backend(table, environ=environ)  # checks the keys and the prices
        if backend.llm in members:
            raise ConfigError(f"{source}: [[{kind}]] {backend.llm!r} appears twice")
        price = LLM(backend.llm, float(table[_PRICES[0]]), float(table[_PRICES[1]]))
        members[backend.llm] = Member(backend.llm, backend, price)
    return members


def replay_pool(ds: Dataset, *, latency_s: float = 0.0) -> Pool:
    """Every LLM of ``ds`` answering from its recorded responses, at the dataset's prices, and
    the ``recorded`` judge (:class:`~mixllm.collect.judge.RecordedJudge`, free). Pairs without
    a recorded response are not answerable."""
    answerers = {
        m: Member(m, ReplayBackend(m, ds, latency_s=latency_s), _priced(ds, m)) for m in ds.llms
    }
    recorded = RecordedJudge(ds)
    judge = Member(RECORDED, recorded, LLM(RECORDED))
    responses = ds.responses
    assert responses is not None  # ReplayBackend checked

    def answerable(prompt: str, llm: str) -> bool:
        row = recorded.row(prompt)
        text = None if row is None else responses[row, ds.llm_index(llm)]
        return isinstance(text, str) and bool(text)

    return Pool(answerers, {RECORDED: judge}, answerable)


def _priced(ds: Dataset, name: str) -> LLM:
    price = ds.llm(name)
    if name not in ds.prices:
        raise ConfigError(
            f"--replay {ds.name!r}: no prices for LLM {name!r} (the data has no token counts "
            "to fit them to); expected data with costs and token counts"
        )
    return price
