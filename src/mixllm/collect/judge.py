"""The recorded judge: a fake judge LLM that replays a dataset's qualities through the judge path.

``mixllm collect --replay DATA --judge recorded`` grades every replayed answer with this judge.
It goes through the same path as a real judge LLM: :func:`mixllm.grade.judge_answer` renders the
judge prompt from the template and sends it through the ``ask`` function of the run (which counts
the call and its cost), the judge replies, and the reply is parsed. For each (prompt, LLM) the run
binds the judge to what it grades (:meth:`RecordedJudge.bind`); the bound judge replies
``[[N]]`` with ``N = round(1 + 9 × recorded quality)`` only when the text it receives is the
judge prompt of that answer (rendered again here with :func:`mixllm.grade.judge_prompt`), so a
run whose plumbing loses the answer or the prompt gets unparseable replies and unknown qualities.
A quality of 0 or 1 comes back exactly (``(N - 1) / 9``); others to within 1/18.

In pairwise mode the bound judge renders the pairwise prompt in both orders to tell which answer
is ``A`` and prefers the one with the higher recorded quality (a tie when they are equal).

The recorded row of a prompt is the first row of the dataset with that prompt, as
:class:`~mixllm.serve.replay.ReplayBackend` answers from it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mixllm.data.dataset import Dataset
from mixllm.errors import BackendError
from mixllm.serve.capabilities import Capabilities
from mixllm.serve.chat import ChatResult, Chunk, Messages, Params, text_chunks

__all__ = ["RECORDED", "BoundRecordedJudge", "RecordedJudge"]

#: The name of the recorded judge in ``--judge``.
RECORDED = "recorded"


@dataclass(frozen=True)
class _Graded:
    answer: str
    quality: float | None


class RecordedJudge:
    """A judge LLM that knows the recorded quality of every (prompt, LLM) of ``dataset``.

    Unbound it cannot judge (a non-retryable :class:`BackendError`): the run calls :meth:`bind`
    for each answer it grades.
    """

    llm = RECORDED

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.capabilities = Capabilities()
        self._rows: dict[str, int] | None = None

    def row(self, prompt: str) -> int | None:
        """The dataset row of ``prompt`` (its first), or ``None``."""
        if self._rows is None:
            pairs = reversed(list(enumerate(self.dataset.prompts)))
            self._rows = {str(p).strip(): i for i, p in pairs}
        return self._rows.get(prompt.strip())

    def quality(self, prompt: str, llm: str) -> float | None:
        """The recorded quality of ``llm``'s answer to ``prompt`` (``None``: unknown)."""
        row = self.row(prompt)
        if row is None or llm not in self.dataset.llms:
            return None
        value = float(self.dataset.quality[row, self.dataset.llm_index(llm)])
        return value if math.isfinite(value) else None

    def bind(
        self,
        *,
        template: str,
        prompt: str,
        llm: str,
        answer: str,
        reference: str | None = None,
        baseline: tuple[str, str] | None = None,
    ) -> BoundRecordedJudge:
        """The judge of ``llm``'s ``answer`` to ``prompt`` (against ``baseline`` = (LLM, its
        answer) in pairwise mode), for judge prompts rendered from ``template``."""
        other = None
        if baseline is not None:
            other = _Graded(baseline[1], self.quality(prompt, baseline[0]))
        return BoundRecordedJudge(
            template, prompt, reference, _Graded(answer, self.quality(prompt, llm)), other
        )

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        raise BackendError(
            "the recorded judge answers only for a bound (prompt, LLM)", retryable=False
        )

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[Chunk]:
        result = await self.complete(messages, params, prompt=prompt)
        for chunk in text_chunks(result.text or ""):
            yield chunk

    async def aclose(self) -> None:
        """Nothing to release."""


class BoundRecordedJudge:
    """The recorded judge for one answer (see :class:`RecordedJudge`)."""

    llm = RECORDED

    def __init__(
        self,
        template: str,
        prompt: str,
        reference: str | None,
        candidate: _Graded,
        baseline: _Graded | None,
    ) -> None:
        self.capabilities = Capabilities()
        self._template, self._prompt, self._reference = template, prompt, reference
        self._candidate, self._baseline = candidate, baseline

    def reply(self, text: str) -> str:
        """The judge's reply to the judge prompt ``text``."""
        if self._baseline is None:
            return self._score_reply(text)
        return self._pair_reply(text)

    def _score_reply(self, text: str) -> str:
        from mixllm.grade import judge_prompt

        expected = judge_prompt(
            self._template,
            prompt=self._prompt,
            answer=self._candidate.answer,
            reference=self._reference,
        )
        if text != expected:
            return "This is not the judge prompt of the answer I was asked about."
        q = self._candidate.quality
        if q is None:
            return "There is no recorded quality for this answer."
        return f"Recorded quality {q:g}. Rating: [[{round(1 + 9 * q)}]]"

    def _pair_reply(self, text: str) -> str:
        from mixllm.grade import NO_REFERENCE

        assert self._baseline is not None
        cand, base = self._candidate, self._baseline
        ref = self._reference if self._reference and self._reference.strip() else NO_REFERENCE
        orders = [
            self._template.format(prompt=self._prompt, answer_a=a, answer_b=b, reference=ref)
            for a, b in ((cand.answer, base.answer), (base.answer, cand.answer))
        ]
        if text not in orders:
            return "This is not the judge prompt of the answers I was asked about."
        if cand.quality is None or base.quality is None:
            return "There is no recorded quality for one of the answers."
        if cand.quality == base.quality:
            return "Both answers are recorded as equally good: [[C]]"
        cand_is_a = text == orders[0]  # identical answers render alike: then A
        better_is_a = (cand.quality > base.quality) == cand_is_a
        return f"Recorded verdict: [[{'A' if better_is_a else 'B'}]]"

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        """The reply to the judge prompt (``prompt``, the text the run sent)."""
        text = self.reply(prompt)
        return ChatResult(text, None, None, upstream_model=RECORDED)

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[Chunk]:
        for chunk in text_chunks(self.reply(prompt)):
            yield chunk

    async def aclose(self) -> None:
        """Nothing to release."""
