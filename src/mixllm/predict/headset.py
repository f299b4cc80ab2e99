"""One head per LLM: :class:`HeadSet` predicts all LLMs at once and saves them without pickle.

Heads of the same form are predicted together (see :meth:`~mixllm.predict.heads.Head.batch`).
The state is JSON-able parameters plus arrays named ``h<j>.<name>``; an array equal to one
already stored (kNN heads fitted on the same queries share their embeddings) is saved once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mixllm.errors import PersistError
from mixllm.predict.heads import (
    FORMS,
    Arrays,
    GroupPredict,
    Head,
    JSONValue,
    KNNHead,
    array_digest,
)

__all__ = ["HeadSet"]

FloatArray = NDArray[np.float64]


class HeadSet:
    """One head per LLM (a list: LLMs are added and removed without touching the others).

    :meth:`predict` batches heads of the same form; the batched functions are built on first
    use after a change.
    """

    def __init__(self, heads: Sequence[Head] = ()) -> None:
        self.heads: list[Head] = []
        self._banks: dict[str, NDArray[np.float32]] = {}
        self._compiled: list[tuple[list[int], GroupPredict]] | None = None
        for head in heads:
            self.append(head)

    def __len__(self) -> int:
        return len(self.heads)

    def append(self, head: Head) -> None:
        """Add a head; kNN heads on the same training rows share one embedding array."""
        if isinstance(head, KNNHead):
            bank = self._banks.setdefault(array_digest(head.embeddings), head.embeddings)
            head = KNNHead(bank, head.targets, head.k)
        self.heads.append(head)
        self._compiled = None

    def pop(self, j: int) -> Head:
        self._compiled = None
        return self.heads.pop(j)

    def predict(self, x: FloatArray) -> FloatArray:
        """Shape (n, len(self)): column j is head j's prediction."""
        compiled = self._compiled if self._compiled is not None else self._compile()
        if len(compiled) == 1:  # one form (the usual case): its columns are already in order
            return compiled[0][1](x)
        out = np.zeros((len(x), len(self.heads)))
        for idx, run in compiled:
            out[:, idx] = run(x)
        return out

    def _compile(self) -> list[tuple[list[int], GroupPredict]]:
        """One batched function per form (rebuilt after :meth:`append` or :meth:`pop`)."""
        forms: dict[type[Head], list[int]] = {}
        for j, h in enumerate(self.heads):
            forms.setdefault(type(h), []).append(j)
        self._compiled = [
            (idx, form.batch([self.heads[j] for j in idx])) for form, idx in forms.items()
        ]
        return self._compiled

    def get_state(self) -> tuple[list[JSONValue], Arrays]:
        """Per-head parameters and arrays named ``h<j>.<name>``; an array equal to one already
        stored is saved once, and the head's ``shared`` parameter maps its name to that key."""
        params: list[JSONValue] = []
        arrays: Arrays = {}
        seen: dict[str, str] = {}
        for j, head in enumerate(self.heads):
            p, arrs = head.get_state()
            shared: dict[str, JSONValue] = {}
            for name, a in arrs.items():
                key, digest = f"h{j}.{name}", array_digest(a)
                if digest in seen:
                    shared[name] = seen[digest]
                else:
                    seen[digest] = key
                    arrays[key] = a
            params.append({**p, "shared": shared})
        return params, arrays

    @classmethod
    def from_state(cls, params: Sequence[JSONValue], arrays: Mapping[str, Any]) -> HeadSet:
        """The heads saved by :meth:`get_state`; unknown forms raise ``PersistError``."""
        heads: list[Head] = []
        for j, p in enumerate(params):
            if not isinstance(p, dict) or p.get("form") not in FORMS:
                form = p.get("form") if isinstance(p, dict) else p
                raise PersistError(f"head {j}: unknown form {form!r}; known: {sorted(FORMS)}")
            shared = p.get("shared", {})
            if not isinstance(shared, dict):
                raise PersistError(f"head {j}: 'shared' is {shared!r}, expected a mapping")
            prefix = f"h{j}."
            own = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            try:
                own.update({name: arrays[str(key)] for name, key in shared.items()})
                heads.append(FORMS[str(p["form"])].from_state(p, own))
            except (KeyError, ValueError, TypeError) as exc:
                raise PersistError(f"head {j} ({p['form']}): bad state: {exc!r}") from None
        return cls(heads)
