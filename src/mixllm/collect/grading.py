"""How a collection run grades an answer: a reference grader, the LLM judge (by score or
pairwise against a reference LLM's answer), or nothing.

For each row, the grader is the row's ``grader`` field, else the run's (``--grader``, default
``auto``):

- ``none``: the quality stays unknown (``null``);
- ``judge``: the judge LLM grades the answer (``--judge`` is then required);
- any grader of :data:`mixllm.grade.GRADERS`: :func:`mixllm.grade.grade` against the row's
  ``reference``; a row without a reference goes to the judge when there is one, and stays
  unknown otherwise.

With ``--pairwise REF``, the judge compares the answer with REF's answer to the same prompt, in
both orders (:func:`mixllm.grade.judge_pair`); REF's own rows get 0.5 (a tie with itself) without
a judge call. An unparseable judge reply is asked again once; then the quality is unknown, never 0.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from mixllm.collect.calls import Budget, CallPolicy, call_llm
from mixllm.collect.judge import RecordedJudge
from mixllm.collect.pool import Member
from mixllm.collect.prompts import JUDGE, NO_GRADE, PromptRow
from mixllm.errors import ConfigError

__all__ = ["Graded", "Grading", "JudgeLog"]


@dataclass(frozen=True)
class Graded:
    """The quality of one answer (``None``: unknown) and what produced it."""

    quality: float | None
    grader: str


@dataclass
class JudgeLog:
    """The judge calls made for one answer: their cost and usage, for the judge file."""

    cost_usd: float = 0.0
    prompt_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    http_attempts: int = 0
    replies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Grading:
    """The grading plan of a run."""

    grader: str = "auto"
    judge: Member | None = None
    template: str | None = None
    pairwise: str | None = None
    code_timeout_s: float = 10.0  # the code grader's limit per answer (then the row scores 0)

    def __post_init__(self) -> None:
        t = self.code_timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 3600:
            raise ConfigError(f"--code-timeout {t!r}; expected seconds in (0, 3600]")
        if self.pairwise is not None and self.judge is None:
            raise ConfigError(f"--pairwise {self.pairwise!r} needs a judge: give --judge LLM")
        if self.grader == JUDGE and self.judge is None:
            raise ConfigError("--grader judge needs a judge: give --judge LLM")

    @property
    def judge_label(self) -> str:
        assert self.judge is not None
        if self.pairwise is not None:
            return f"pairwise:{self.judge.llm} vs {self.pairwise}"
        return f"judge:{self.judge.llm}"

    def grader_of(self, row: PromptRow) -> str:
        """``"none"``, ``"judge"`` or a reference grader's name, for ``row``."""
        name = row.grader or self.grader
        if name == NO_GRADE:
            return NO_GRADE
        if name == JUDGE or row.reference is None:
            return JUDGE if self.judge is not None else NO_GRADE
        return name

    def check_rows(self, rows: list[PromptRow]) -> None:
        """ConfigError naming the first row that asks for a judge when there is none."""
        if self.judge is None:
            for r in rows:
                if r.grader == JUDGE:
                    raise ConfigError(
                        f"query {r.query_id!r} asks for grader 'judge'; give --judge LLM"
                    )

    def template_text(self) -> str:
        from mixllm.grade import DEFAULT_JUDGE_TEMPLATE, PAIRWISE_TEMPLATE

        if self.template is not None:
            return self.template
        return PAIRWISE_TEMPLATE if self.pairwise is not None else DEFAULT_JUDGE_TEMPLATE

    async def grade_reference(self, row: PromptRow, answer: str) -> Graded:
        """Grade against the row's reference (in a thread: the code grader runs a process)."""
        from mixllm.grade import grade

        name = self.grader_of(row)
        assert row.reference is not None and name not in (JUDGE, NO_GRADE)
        quality = await asyncio.to_thread(
            grade, answer, row.reference, name, timeout_s=self.code_timeout_s
        )
        return Graded(float(quality), name)

    async def judge_answer(
        self,
        row: PromptRow,
        llm: str,
        answer: str,
        *,
        baseline: str | None,
        policy: CallPolicy,
        budget: Budget,
        limit: asyncio.Semaphore,
        log: JudgeLog,
    ) -> tuple[Graded, Any]:
        """Judge ``answer`` (against ``baseline``, the reference LLM's answer, in pairwise
        mode): the quality and the :class:`mixllm.grade.Judgement`. Each judge call goes
        through :func:`~mixllm.collect.calls.call_llm` (budget, retries) and into ``log``."""
        from mixllm.grade import judge_answer, judge_pair

        assert self.judge is not None
        template = self.template_text()
        backend = self.judge.backend
        if isinstance(backend, RecordedJudge):
            pair = None if baseline is None or self.pairwise is None else (self.pairwise, baseline)
            backend = backend.bind(
                template=template, prompt=row.prompt, llm=llm, answer=answer,
                reference=row.reference, baseline=pair,
            )  # fmt: skip
        price = self.judge.price

        async def ask(text: str) -> str:
            call = await call_llm(backend, price, text, policy=policy, budget=budget, limit=limit)
            log.cost_usd += call.cost_usd
            log.prompt_tokens += call.prompt_tokens
            log.output_tokens += call.output_tokens
            log.calls += 1
            log.http_attempts += call.attempts
            log.replies.append(call.text)
            return call.text

        if self.pairwise is not None:
            assert baseline is not None
            judgement = await judge_pair(
                ask, template=template, prompt=row.prompt, answer=answer, baseline=baseline,
                reference=row.reference,
            )  # fmt: skip
        else:
            judgement = await judge_answer(
                ask, template=template, prompt=row.prompt, answer=answer, reference=row.reference
            )
        return Graded(judgement.quality, self.judge_label), judgement
