"""The collection run: every prompt to every LLM of the pool, graded, written as it finishes.

Each LLM has ``concurrency`` workers taking its prompts in turn; a semaphore per upstream (the
judge's too) bounds the calls in flight. A pair goes: answer (asked, or read back from the
answers journal) -> answers journal -> grade (reference grader, judge, or none) -> one row of the
output. See :mod:`mixllm.collect.journal` for the files and for resuming, and
:mod:`mixllm.collect.calls` for the spending cap and the retries.

A pair that fails (a non-retryable error, or retries spent) is not written: it is listed in the
summary and in ``OUT.errors.jsonl``, and the next run tries it again (an answer that was received
is kept in the journal, so only its grading is tried again). Once a call is refused by the cap, or
on :meth:`Run.interrupt` (Ctrl-C), no call is started any more; the calls in flight finish.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixllm.collect.calls import Budget, CallFailedError, CallPolicy, StoppedError, call_llm
from mixllm.collect.grading import Graded, Grading, JudgeLog
from mixllm.collect.journal import Journal, Resumed
from mixllm.collect.pool import Pool
from mixllm.collect.prompts import JUDGE, NO_GRADE, PromptRow
from mixllm.errors import ConfigError

__all__ = ["CollectSpec", "Progress", "Run", "Summary", "collect"]

#: ``progress(rows done, pairs in all, USD spent)``
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class CollectSpec:
    """How to collect: call policy, concurrency per upstream, spending cap and grading."""

    policy: CallPolicy = field(default_factory=CallPolicy)
    concurrency: int = 4
    max_usd: float | None = None
    grading: Grading = field(default_factory=Grading)

    def __post_init__(self) -> None:
        p = self.policy
        for name, value, low in (
            ("--concurrency", self.concurrency, 1), ("--max-tokens", p.max_tokens, 1),
            ("--retries", p.retries, 0),
        ):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} {value!r}; expected an integer >= {low}")
        cap = self.max_usd
        if cap is not None and (isinstance(cap, bool) or not 0 <= cap < float("inf")):
            raise ConfigError(f"--max-usd {cap!r}; expected a number of USD >= 0")


@dataclass
class Summary:
    """What a run did and what is left."""

    out: Path
    pairs: int
    done_before: int
    written: int = 0
    from_journal: int = 0
    skipped: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    spent_before_usd: float = 0.0
    spent_usd: float = 0.0
    judge_usd: float = 0.0
    max_usd: float | None = None
    stopped_by_budget: bool = False
    interrupted: bool = False

    @property
    def left(self) -> int:
        """Pairs still to write."""
        return self.pairs - self.done_before - self.written

    def lines(self) -> list[str]:
        """The summary, as lines for the terminal."""
        done = self.done_before + self.written
        out = [
            f"wrote {self.written} rows to {self.out} ({done} of {self.pairs} pairs done"
            + (f"; {self.from_journal} graded from answers already received)" if self.from_journal
               else ")"),
            f"spent ${self.spent_usd - self.spent_before_usd:.6f} in this run, "
            f"${self.spent_usd:.6f} in all (judge ${self.judge_usd:.6f})",
        ]  # fmt: skip
        if self.skipped:
            out.append(f"{self.skipped} pairs have no recorded response to replay (left out)")
        if self.failed:
            first = self.failed[0]
            out.append(
                f"{len(self.failed)} pairs failed (listed in {self.out.name}.errors.jsonl; a "
                f"rerun tries them again); first: query {first['query_id']!r}, LLM "
                f"{first['llm']!r}: {first['error']}"
            )
        if self.stopped_by_budget:
            out.append(
                f"stopped at --max-usd ${self.max_usd:g}: ${self.spent_usd:.6f} spent, "
                f"{self.left} pairs left; rerun with a higher --max-usd to continue"
            )
        if self.interrupted:
            out.append(f"interrupted: {self.left} pairs left; rerun the same command to continue")
        return out


class Run:
    """One collection run over ``rows`` × the pool's LLMs, writing to ``out``."""

    def __init__(
        self, rows: Sequence[PromptRow], pool: Pool, out: str | Path, spec: CollectSpec,
        *, progress: Progress | None = None,
    ) -> None:  # fmt: skip
        grading = spec.grading
        grading.check_rows(list(rows))
        if grading.pairwise is not None and grading.pairwise not in pool.answerers:
            raise ConfigError(
                f"--pairwise {grading.pairwise!r} is not an LLM of this run; "
                f"expected one of {list(pool.llms)}"
            )
        self.rows, self.pool, self.spec, self.grading = list(rows), pool, spec, grading
        self.journal = Journal(out)
        self._progress = progress
        self.state: Resumed = Resumed()
        self.budget = Budget(spec.max_usd)
        self.limits: dict[str, asyncio.Semaphore] = {}
        self._refs: dict[str, asyncio.Future[str | None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.summary = Summary(Path(out), 0, 0, max_usd=spec.max_usd)

    def interrupt(self) -> None:
        """Start no more calls (the first Ctrl-C); a second one cancels the calls in flight."""
        if self.summary.interrupted:
            for task in self._tasks:
                task.cancel()
        self.summary.interrupted = True
        self.budget.closed = True

    async def run(self) -> Summary:
        """Collect; returns the summary (also when stopped by the cap or interrupted)."""
        self.state = self.journal.resume({r.query_id: r.prompt for r in self.rows})
        self.budget.spent = self.summary.spent_before_usd = self.state.spent_usd
        self.summary.judge_usd = self.state.judge_spent_usd
        self.journal.start_errors()
        names = {*self.pool.llms, *([] if self.grading.judge is None else [self.grading.judge.llm])}
        self.limits = {n: asyncio.Semaphore(self.spec.concurrency) for n in names}
        queues = self._plan()
        self._tell()
        try:
            self._tasks = [
                asyncio.create_task(self._worker(llm, queue))
                for llm, queue in queues.items()
                for _ in range(min(self.spec.concurrency, max(len(queue), 1)))
            ]
            done, pending = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if failed:
                self.budget.closed = True
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                raise failed[0].exception()  # type: ignore[misc]
        finally:
            self.journal.close()
            self._finish()
        return self.summary

    def _plan(self) -> dict[str, deque[PromptRow]]:
        queues: dict[str, deque[PromptRow]] = {m: deque() for m in self.pool.llms}
        can = self.pool.answerable
        ref = self.grading.pairwise
        for row in self.rows:
            for llm in self.pool.llms:
                pair = (row.query_id, llm)
                if pair in self.state.rows:
                    self.summary.pairs += 1
                    self.summary.done_before += 1
                elif pair in self.state.answers or can is None or can(row.prompt, llm):
                    self.summary.pairs += 1
                    queues[llm].append(row)
                else:
                    self.summary.skipped += 1
            if ref is not None:  # the reference LLM's answer, for pairwise judging
                future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
                known = self.state.answer_text((row.query_id, ref))
                if known is not None or not (can is None or can(row.prompt, ref)):
                    future.set_result(known)  # else its worker sets it
                self._refs[row.query_id] = future
        return queues

    def _finish(self) -> None:
        s = self.summary
        s.spent_usd = self.budget.spent
        s.stopped_by_budget = self.budget.refused
        for future in self._refs.values():
            if not future.done():
                future.set_result(None)

    def _tell(self) -> None:
        if self._progress is not None:
            s = self.summary
            self._progress(s.done_before + s.written, s.pairs, self.budget.spent)

    async def _worker(self, llm: str, queue: deque[PromptRow]) -> None:
        while queue:
            row = queue.popleft()
            try:
                if not self.budget.closed:
                    await self._pair(row, llm)
            finally:
                self._ref_done(row, llm, None)

    def _ref_done(self, row: PromptRow, llm: str, text: str | None) -> None:
        if llm == self.grading.pairwise:
            future = self._refs[row.query_id]
            if not future.done():
                future.set_result(text)

    def _fail(self, row: PromptRow, llm: str, stage: str, exc: Exception, attempts: int) -> None:
        record = {
            "query_id": row.query_id, "llm": llm, "stage": stage, "error": str(exc),
            "status": getattr(exc, "status", None), "attempts": attempts,
        }  # fmt: skip
        self.summary.failed.append(record)
        self.journal.write(self.journal.errors, record)

    async def _pair(self, row: PromptRow, llm: str) -> None:
        pair = (row.query_id, llm)
        answer = self.state.answers.get(pair)
        if answer is None:
            member = self.pool.answerers[llm]
            try:
                call = await call_llm(
                    member.backend, member.price, row.prompt, policy=self.spec.policy,
                    budget=self.budget, limit=self.limits[llm],
                )  # fmt: skip
            except StoppedError:
                return
            except CallFailedError as exc:
                self._fail(row, llm, "answer", exc, exc.attempts)
                return
            answer = {
                "query_id": row.query_id, "llm": llm, "prompt": row.prompt,
                "response": call.result.text, "prompt_tokens": call.prompt_tokens,
                "output_tokens": call.output_tokens, "cost_usd": call.cost_usd,
                "latency_s": round(call.latency_s, 6), "attempts": call.attempts,
            }  # fmt: skip
            self.journal.write(self.journal.answers, answer)
        else:
            self.summary.from_journal += 1
        text = str(answer.get("response") or "")
        self._ref_done(row, llm, text)
        graded = await self._grade(row, llm, text)
        if graded is None:
            return
        keys = ("prompt_tokens", "output_tokens", "latency_s", "response")
        record: dict[str, Any] = {
            "query_id": row.query_id, "prompt": row.prompt, "llm": llm,
            "quality": graded.quality, "cost_usd": answer["cost_usd"],
            **{k: answer.get(k) for k in keys}, "grader": graded.grader,
        }  # fmt: skip
        if row.task is not None:
            record["task"] = row.task
        self.journal.write(self.journal.out, record)
        self.summary.written += 1
        self._tell()

    async def _grade(self, row: PromptRow, llm: str, text: str) -> Graded | None:
        kind = self.grading.grader_of(row)
        if kind == NO_GRADE:
            return Graded(None, NO_GRADE)
        if kind != JUDGE:
            return await self.grading.grade_reference(row, text)
        judge = self.grading.judge
        assert judge is not None
        label = self.grading.judge_label
        baseline = None
        if self.grading.pairwise is not None:
            if llm == self.grading.pairwise:
                return Graded(0.5, label)  # a tie with itself, without asking
            baseline = await self._refs[row.query_id]
            if baseline is None:
                if not self.budget.closed:
                    error = ConfigError(f"no answer from {self.grading.pairwise!r} to compare")
                    self._fail(row, llm, "judge", error, 0)
                return None
        earlier = self.state.judgements.get((row.query_id, llm, judge.llm))
        if earlier is not None and earlier.get("grader") == label:
            return Graded(earlier.get("quality"), label)
        return await self._judge(row, llm, text, baseline, label)

    async def _judge(
        self, row: PromptRow, llm: str, text: str, baseline: str | None, label: str
    ) -> Graded | None:
        assert self.grading.judge is not None
        judge = self.grading.judge.llm
        log, judgement = JudgeLog(), None
        try:
            graded, judgement = await self.grading.judge_answer(
                row, llm, text, baseline=baseline, policy=self.spec.policy,
                budget=self.budget, limit=self.limits[judge], log=log,
            )  # fmt: skip
            return graded
        except StoppedError:
            return None
        except CallFailedError as exc:
            self._fail(row, llm, "judge", exc, exc.attempts)
            return None
        finally:
            self.summary.judge_usd += log.cost_usd
            if log.calls or judgement is not None:
                self.journal.write(self.journal.judge, _judge_record(row, llm, judge, label, log,
                                                                     judgement))  # fmt: skip


def _judge_record(
    row: PromptRow, llm: str, judge: str, label: str, log: JudgeLog, judgement: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "query_id": row.query_id, "llm": llm, "judge": judge, "grader": label,
        "complete": judgement is not None, "quality": None, "cost_usd": log.cost_usd,
        "prompt_tokens": log.prompt_tokens, "output_tokens": log.output_tokens,
        "calls": log.calls, "http_attempts": log.http_attempts, "replies": log.replies,
    }  # fmt: skip
    if judgement is not None:
        record["quality"] = judgement.quality
        record["verdict" if label.startswith("pairwise:") else "score"] = judgement.score
        record["attempts"] = judgement.attempts
    return record


def collect(
    rows: Sequence[PromptRow], pool: Pool, out: str | Path, spec: CollectSpec | None = None,
    *, progress: Progress | None = None, on_interrupt: Callable[[], None] | None = None,
) -> Summary:  # fmt: skip
    """Send every row's prompt to every LLM of ``pool``, grade the answers and append the rows
    to ``out`` (resuming what is there); returns the :class:`Summary`.

    In the main thread, the first Ctrl-C stops starting calls (``on_interrupt`` is told) and the
    run ends once the calls in flight finish; a second one cancels them. The pool's backends
    are closed at the end.
    """
    run = Run(rows, pool, out, spec or CollectSpec(), progress=progress)

    def sigint() -> None:
        if on_interrupt is not None and not run.summary.interrupted:
            on_interrupt()
        run.interrupt()

    async def main() -> Summary:
        loop = asyncio.get_running_loop()
        handles = threading.current_thread() is threading.main_thread()
        if handles:
            loop.add_signal_handler(signal.SIGINT, sigint)
        try:
            return await run.run()
        finally:
            if handles:
                loop.remove_signal_handler(signal.SIGINT)
            await pool.aclose()
            judge = run.grading.judge
            if judge is not None and judge.llm not in {*pool.answerers, *pool.judges}:
                await judge.backend.aclose()  # an LLM of the pool left out of this run

    return asyncio.run(main())
