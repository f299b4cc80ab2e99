"""The replay backends: answers from the responses a dataset recorded, and a judge that rates
an answer by the quality the dataset recorded for it (offline demos, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import AsyncIterator

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.embed.base import Embedder
from mixllm.errors import BackendError, ConfigError
from mixllm.predict.neighbours import unit_rows
from mixllm.serve.capabilities import Capabilities
from mixllm.serve.chat import ChatResult, Chunk, Messages, Params, Usage, text_chunks

__all__ = ["RECORDED_JUDGE", "RecordedJudge", "ReplayBackend"]


class ReplayBackend:
    """Answers with the responses that ``llm`` gave in ``dataset`` (offline demos and tests).

    The prompt's own recorded response when the prompt is in the dataset; otherwise, with an
    ``embedder``, the response to the most similar recorded prompt (cosine); otherwise a
    non-retryable :class:`BackendError`. No recorded response by ``llm`` is a retryable error,
    so the gateway falls back to another LLM. ``latency_s`` is waited before each answer.
    :meth:`answer_headers` says which recorded prompt an answer comes from (the gateway sends
    it as ``x-mixllm-replay``).

    >>> from mixllm.data import Outcome
    >>> ds = Dataset.from_outcomes([Outcome("q1", "2+2?", "small", 1.0, 0.001, response="4")])
    >>> asyncio.run(ReplayBackend("small", ds).complete([], {}, prompt="2+2?")).text
    '4'
    """

    def __init__(
        self,
        llm: str,
        dataset: Dataset,
        *,
        embedder: Embedder | None = None,
        latency_s: float = 0.0,
    ) -> None:
        self._col = dataset.llm_index(llm)
        if dataset.responses is None:
            raise ConfigError(f"dataset {dataset.name!r} has no recorded responses to replay")
        if not latency_s >= 0:
            raise ConfigError(f"latency_s must be a number >= 0, got {latency_s!r}")
        self.llm, self.dataset, self.embedder = llm, dataset, embedder
        self.latency_s = float(latency_s)
        self.capabilities = Capabilities()
        self._rows: dict[str, int] | None = None  # prompt -> first row, built on first use
        self._vectors: tuple[list[int], NDArray[np.float64]] | None = None
        self._last: tuple[str, tuple[int, bool, float]] | None = None  # the last prompt found

    def _response(self, row: int) -> str | None:
        assert self.dataset.responses is not None
        text = self.dataset.responses[row, self._col]
        return text if isinstance(text, str) and text else None

    def _find(self, prompt: str) -> tuple[int, bool, float]:
        """(dataset row to answer from, whether it holds the prompt itself, cosine similarity
        of its prompt to ``prompt``)."""
        last = self._last
        if last is not None and last[0] == prompt:
            return last[1]
        found = self._search(prompt)
        self._last = prompt, found
        return found

    def _search(self, prompt: str) -> tuple[int, bool, float]:
        if self._rows is None:
            pairs = reversed(list(enumerate(self.dataset.prompts)))
            self._rows = {str(p).strip(): i for i, p in pairs}
        if (row := self._rows.get(prompt.strip())) is not None:
            return row, True, 1.0
        if self.embedder is None:
            raise BackendError(
                f"prompt {prompt[:60]!r} is not in the replay data of {self.dataset.name!r} "
                "(give ReplayBackend an embedder to answer with the nearest recorded prompt)",
                retryable=False,
            )
        if self._vectors is None:
            rows = [i for i in range(len(self.dataset)) if self._response(i) is not None]
            if not rows:
                name = self.dataset.name
                raise BackendError(
                    f"no recorded responses by {self.llm!r} in {name!r}", retryable=True
                )
            texts = [str(self.dataset.prompts[i]) for i in rows]
            self._vectors = rows, unit_rows(self.embedder.embed(texts))
        rows, vectors = self._vectors
        similarity = vectors @ unit_rows(self.embedder.embed([prompt]))[0]
        best = int(np.argmax(similarity))
        return rows[best], False, float(similarity[best])

    def answer_headers(self, prompt: str) -> dict[str, str]:
        """``x-mixllm-replay``: whether the answer to ``prompt`` is the one recorded for that
        very prompt or for the nearest recorded prompt (with its cosine similarity), and the
        recorded query's id.

        >>> from mixllm.data import Outcome
        >>> ds = Dataset.from_outcomes([Outcome("q1", "2+2?", "small", 1.0, 0.001, response="4")])
        >>> ReplayBackend("small", ds).answer_headers("2+2?")
        {'x-mixllm-replay': 'recorded answer to this prompt; query=q1'}
        """
        try:
            row, exact, similarity = self._find(prompt)
        except BackendError:
            return {}
        query = str(self.dataset.query_ids[row]).encode("ascii", "backslashreplace").decode()
        if exact:
            return {"x-mixllm-replay": f"recorded answer to this prompt; query={query}"}
        return {
            "x-mixllm-replay": f"recorded answer to the nearest recorded prompt; "
            f"similarity={similarity:.3f}; query={query}"
        }

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        """The recorded answer for ``prompt`` (the text the gateway routed on)."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        row, exact, _ = self._find(prompt)
        text = self._response(row)
        if text is None:
            raise BackendError(
                f"no recorded response by {self.llm!r} to query "
                f"{self.dataset.query_ids[row]!r} in {self.dataset.name!r}",
                retryable=True,
            )
        p_tok = float(self.dataset.prompt_tokens[row])
        c_tok = float(self.dataset.output_tokens[row, self._col])
        return ChatResult(
            text=text,
            prompt_tokens=round(p_tok) if exact and np.isfinite(p_tok) else None,
            completion_tokens=round(c_tok) if np.isfinite(c_tok) else None,
            upstream_model=f"replay:{self.llm}",
        )

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[Chunk]:
        """The recorded answer in chunks of a few words, with its usage when known."""
        result = await self.complete(messages, params, prompt=prompt)
        p_tok, c_tok = result.prompt_tokens, result.completion_tokens
        usage = None if p_tok is None or c_tok is None else Usage(p_tok, c_tok)
        for chunk in text_chunks(result.text or "", usage=usage):
            yield chunk

    async def aclose(self) -> None:
        """Nothing to release."""


#: The LLM name of :class:`RecordedJudge`; ``mixllm serve --replay DATA`` adds one when
#: ``[shadow] judge`` names it.
RECORDED_JUDGE = "recorded-judge"


class RecordedJudge:
    """A judge LLM for replayed data: it rates the answer in a judge prompt (rendered from
    ``template``, by default :data:`mixllm.grade.DEFAULT_JUDGE_TEMPLATE`) by the quality that
    ``dataset`` recorded for it, replying ``"... [[N]]"`` with N = round(1 + 9 × quality).

    The judged answer is found by reading the question and the answer back out of the judge
    prompt and matching them with a recorded prompt and one of its recorded responses (the
    answer a :class:`ReplayBackend` gives). Without a match, or without a recorded quality,
    the reply has no ``[[N]]`` (an unparseable verdict). ``calls`` counts the calls.

    >>> from mixllm.data import Outcome
    >>> ds = Dataset.from_outcomes([Outcome("q1", "2+2?", "small", 1.0, 0.001, response="4"),
    ...                             Outcome("q1", "2+2?", "big", 0.0, 0.01, response="5")])
    >>> judge = RecordedJudge(ds, template="Q: {prompt}\\nA: {answer}\\nRef: {reference}")
    >>> asyncio.run(judge.complete([], {}, prompt="Q: 2+2?\\nA: 5\\nRef: 4")).text
    'Recorded quality 0.00. Rating: [[1]]'
    >>> asyncio.run(judge.complete([], {}, prompt="Q: 2+2?\\nA: four\\nRef: 4")).text
    'This answer is not in the recorded data.'
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        llm: str = RECORDED_JUDGE,
        template: str | None = None,
        latency_s: float = 0.0,
    ) -> None:
        if dataset.responses is None:
            raise ConfigError(f"dataset {dataset.name!r} has no recorded responses to judge")
        if not latency_s >= 0:
            raise ConfigError(f"latency_s must be a number >= 0, got {latency_s!r}")
        self.llm, self.dataset, self.latency_s = llm, dataset, float(latency_s)
        self.template = template
        self.capabilities = Capabilities()
        self.calls = 0
        self._pattern: re.Pattern[str] | None = None
        self._rows: dict[str, list[int]] | None = None

    def quality(self, judge_prompt: str) -> float | None:
        """The recorded quality of the answer rated in ``judge_prompt`` (``None``: no match)."""
        if self._pattern is None:
            self._pattern = _template_pattern(self._template())
        match = self._pattern.fullmatch(judge_prompt)
        if match is None:
            return None
        if self._rows is None:
            self._rows = {}
            for i, p in enumerate(self.dataset.prompts):
                self._rows.setdefault(str(p).strip(), []).append(i)
        assert self.dataset.responses is not None
        answer = match.group("answer").strip()
        found = [
            float(self.dataset.quality[row, col])
            for row in self._rows.get(match.group("prompt").strip(), [])
            for col, text in enumerate(self.dataset.responses[row])
            if isinstance(text, str) and text.strip() == answer
            and np.isfinite(self.dataset.quality[row, col])
        ]  # fmt: skip
        return float(np.mean(found)) if found else None

    def _template(self) -> str:
        if self.template is None:
            from mixllm.grade import DEFAULT_JUDGE_TEMPLATE

            self.template = DEFAULT_JUDGE_TEMPLATE
        return self.template

    async def complete(self, messages: Messages, params: Params, *, prompt: str) -> ChatResult:
        """A verdict on the judge prompt ``prompt``; usage is left to the caller to count."""
        self.calls += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        quality = self.quality(prompt)
        if quality is None:
            text = "This answer is not in the recorded data."
        else:
            score = min(max(round(1 + 9 * quality), 1), 10)
            text = f"Recorded quality {quality:.2f}. Rating: [[{score}]]"
        return ChatResult(text=text, prompt_tokens=None, completion_tokens=None,
                          upstream_model=f"replay:{self.llm}")  # fmt: skip

    async def stream(
        self, messages: Messages, params: Params, *, prompt: str
    ) -> AsyncIterator[Chunk]:
        """The verdict in chunks."""
        result = await self.complete(messages, params, prompt=prompt)
        for chunk in text_chunks(result.text or ""):
            yield chunk

    async def aclose(self) -> None:
        """Nothing to release."""


def _template_pattern(template: str) -> re.Pattern[str]:
    """A pattern that reads a template's fields back out of a text rendered from it (a field
    used twice must hold the same text both times)."""
    parts: list[str] = []
    seen: set[str] = set()
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is None:
            continue
        if field in seen:
            parts.append(f"(?P={field})")
        else:
            seen.add(field)
            parts.append(f"(?P<{field}>.*?)")
    if not {"prompt", "answer"} <= seen:
        raise ConfigError(
            f"judge template fields {sorted(seen)}; expected at least {{prompt}} and {{answer}}"
        )
    return re.compile("".join(parts), re.DOTALL)
