"""Reading recorded answers: a final answer per task, and features of answers for scorers.

Routers that read an LLM's answer before deciding (:mod:`mixllm.policy.cascade`) compare
answers of several LLMs and score how reliable one looks. Both need the *final answer* out of
free text, which depends on the task (:func:`task_kind`):

- ``"choice"`` (arc-challenge, winogrande, mmlu, hellaswag and MMLU's subjects): an option
  letter, ``"A"``..``"E"``, from ``"C"``, ``"(B) house"``, ``"The answer is D."``...;
- ``"number"`` (gsm8k): the number after ``####``, else after "answer is", else the last number
  in the text, without thousands separators or a trailing ``.0``;
- ``"code"`` (mbpp, humaneval): the first code block (or the text from the first ``def``),
  normalised by parsing it (comments, blank lines and formatting do not count); ``None`` where
  it does not parse, so two answers agree only on the same program;
- ``"free"`` (anything else): ``None``, no agreement is possible.

>>> extract_answer("The answer is (B).", "winogrande")
'B'
>>> extract_answer("She sells 9 eggs for $2 each: 9 * 2 = 18.\\n#### 18", "gsm8k")
'18'
>>> extract_answer("```python\\ndef f(x):  # doubled\\n    return 2*x\\n```", "mbpp") == (
...     extract_answer("def f(x):\\n\\n    return 2 * x", "mbpp"))
True
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mixllm.data.dataset import Dataset
from mixllm.policy.batch import LacksDataError

__all__ = [
    "FEATURE_NAMES",
    "answer_features",
    "code_block",
    "extract_all",
    "extract_answer",
    "require_responses",
    "task_kind",
    "vote",
]

FloatArray = NDArray[np.float64]
ObjArray = NDArray[np.object_]

_CHOICE_TASKS = ("arc", "winogrande", "mmlu", "hellaswag", "openbookqa", "commonsense", "piqa")
_NUMBER_TASKS = ("gsm8k", "math", "svamp", "asdiv")
_CODE_TASKS = ("mbpp", "humaneval", "code")
#: MMLU's subjects (RouteLLM labels its MMLU queries by subject) are multiple choice too.
_MMLU_SUBJECT = re.compile(r"^[a-z_]+$")


_FREE_TASKS = ("mt-bench", "mt_bench", "consensus_summary")


def task_kind(task: object) -> str:
    """What a final answer looks like on ``task``: ``"choice"``, ``"number"``, ``"code"`` or
    ``"free"`` (see the module docstring).

    >>> [task_kind(t) for t in ("arc-challenge", "gsm8k", "mbpp", "mt-bench", None)]
    ['choice', 'number', 'code', 'free', 'free']
    >>> task_kind("high_school_physics")  # an MMLU subject
    'choice'
    """
    if not isinstance(task, str) or not task:
        return "free"
    name = task.lower()
    if name in _FREE_TASKS:
        return "free"
    if any(name.startswith(t) for t in _NUMBER_TASKS):
        return "number"
    if any(name.startswith(t) for t in _CODE_TASKS):
        return "code"
    if any(name.startswith(t) for t in _CHOICE_TASKS) or _MMLU_SUBJECT.match(name):
        return "choice"
    return "free"


_LETTER_ALONE = re.compile(r"^\W*\(?([A-E])\)?(?:[\s).:,\]]|$)")
_LETTER_SAID = re.compile(
    r"(?i:answer|choice|option)\s*(?i:is|would be)?\s*:?\s*\(?\*{0,2}([A-E])\b"
)
_LETTER_BRACKET = re.compile(r"\(([A-E])\)|\b([A-E])\)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _choice(text: str) -> str | None:
    text = text.strip()
    if len(text) == 1 and text.upper() in "ABCDE":
        return text.upper()
    head = _LETTER_ALONE.match(text)
    if head:
        return head.group(1).upper()
    said = _LETTER_SAID.search(text)
    if said:
        return said.group(1).upper()
    bracket = _LETTER_BRACKET.findall(text)
    letters = {a or b for a, b in bracket}
    return letters.pop() if len(letters) == 1 else None


def _number(text: str) -> str | None:
    tail = text.split("####")[-1] if "####" in text else None
    said = re.split(r"answer is|answer:", text, flags=re.IGNORECASE)
    for part in (tail, said[-1] if len(said) > 1 else None, text):
        if part is None:
            continue
        found = _NUMBER.findall(part)
        if found:
            pick = found[0] if part is not text else found[-1]
            value = pick.replace(",", "").rstrip(".")
            if "." in value:
                value = value.rstrip("0").rstrip(".")
            return value or None
    return None


_FENCE = re.compile(r"```[a-zA-Z0-9_+-]*\s*\n(.*?)(?:```|$)", re.DOTALL)
_TAGGED = re.compile(r"\[PYTHON\](.*?)(?:\[/PYTHON\]|$)", re.DOTALL)


def code_block(text: str) -> str | None:
    """The first fenced (or ``[PYTHON]``-tagged) code block of ``text`` that defines a function
    (else its first block), else the text from its first ``def``/``import`` line, else
    ``None``."""
    for pattern in (_FENCE, _TAGGED):
        blocks = [str(b).replace("\r\n", "\n") for b in pattern.findall(text) if b.strip()]
        if blocks:
            return next((b for b in blocks if "def " in b), blocks[0])
    lines = text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        if re.match(r"\s*(def|import|from|class)\s", line):
            return "\n".join(lines[i:])
    return None


def _code(text: str) -> str | None:
    block = code_block(text)
    if block is None:
        return None
    try:
        tree = ast.parse(block)
    except (SyntaxError, ValueError):
        return None
    return ast.dump(tree, annotate_fields=False)


def extract_answer(response: object, task: object) -> str | None:
    """The final answer of ``response`` on ``task`` in a form two answers can be compared in,
    or ``None`` where none can be read (see the module docstring).

    >>> extract_answer("C\\n", "arc-challenge"), extract_answer("I do", "winogrande")
    ('C', None)
    >>> extract_answer("so 1,250.00 dollars in all", "gsm8k")
    '1250'
    """
    if not isinstance(response, str) or not response.strip():
        return None
    kind = task_kind(task)
    if kind == "choice":
        return _choice(response)
    if kind == "number":
        return _number(response)
    if kind == "code":
        return _code(response)
    return None


def extract_all(responses: ObjArray, tasks: ObjArray) -> ObjArray:
    """:func:`extract_answer` of each response (any shape (n,) or (n, k)), row ``i`` read as
    task ``tasks[i]``."""
    out = np.full(responses.shape, None, dtype=object)
    for index, response in np.ndenumerate(responses):
        out[index] = extract_answer(response, tasks[index[0]])
    return out


def vote(answers: Sequence[str | None]) -> tuple[str | None, int]:
    """The most frequent non-``None`` answer and its count (ties: the first seen);
    ``(None, 0)`` when no answer was read.

    >>> vote(["A", "B", "B", None]), vote([None, None])
    (('B', 2), (None, 0))
    """
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    if not counts:
        return None, 0
    best = max(counts, key=lambda a: counts[a])  # max keeps the first of equal counts
    return best, counts[best]


_HEDGE = re.compile(
    r"not sure|cannot|can't|unable|sorry|i don't know|as an ai|unclear|not enough information"
    r"|ambiguous|it depends|neither|none of the",
    re.IGNORECASE,
)

#: Names of the columns :func:`answer_features` gives per answer, then per set of answers.
FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "read",
    "terse",
    "hedge",
    "has_code",
    "agree_share",
)


def answer_features(responses: ObjArray, answers: ObjArray, tasks: ObjArray) -> FloatArray:
    """Features of the answers of ``k`` LLMs to ``n`` queries (``responses``, ``answers``: (n, k)
    texts and their :func:`extract_answer`): per LLM the columns of :data:`FEATURE_NAMES`
    (log length, whether a final answer was read, whether the text *is* the answer, hedging
    words, whether it holds code, the share of the other ``k - 1`` answers equal to it), then
    the largest vote share and the number of distinct answers over ``k``; shape
    (n, 6k + 2).

    >>> resp = np.array([["B", "B\\n"], ["I cannot tell", "A"]], dtype=object)
    >>> tasks = np.array(["winogrande"] * 2, dtype=object)
    >>> f = answer_features(resp, extract_all(resp, tasks), tasks)
    >>> f.shape, float(f[0, 5]), float(f[1, 3]), f[0, -2:].tolist()
    ((2, 14), 1.0, 1.0, [1.0, 0.5])
    """
    n, k = responses.shape
    out = np.zeros((n, 6 * k + 2), dtype=np.float64)
    for i in range(n):
        row = [answers[i, j] for j in range(k)]
        for j in range(k):
            text = responses[i, j] if isinstance(responses[i, j], str) else ""
            a = row[j]
            base = 6 * j
            out[i, base] = np.log1p(len(text))
            out[i, base + 1] = a is not None
            out[i, base + 2] = a is not None and len(text.strip()) <= len(a) + 2
            out[i, base + 3] = _HEDGE.search(text) is not None
            out[i, base + 4] = task_kind(tasks[i]) == "code" and code_block(text) is not None
            if k > 1 and a is not None:
                out[i, base + 5] = sum(b == a for b in row) - 1
                out[i, base + 5] /= k - 1
        _, count = vote(row)
        out[i, -2] = count / k
        out[i, -1] = len({a for a in row if a is not None}) / k
    return out


def require_responses(ds: Dataset, llms: Sequence[str], policy: str) -> ObjArray:
    """The recorded answers of ``llms`` in ``ds`` (n, len(llms)), or
    :class:`~mixllm.policy.batch.LacksDataError` naming the data set, the policy and the LLMs
    whose answers are missing (a policy that reads answers cannot run without them)."""
    if ds.responses is None:
        raise LacksDataError(
            f"{ds.name}: no recorded answers (responses); {policy} reads the answers of "
            f"{list(llms)} before deciding"
        )
    cols = [ds.llm_index(m) for m in llms]
    got = ds.responses[:, cols]
    empty = [m for m, j in zip(llms, range(len(cols)), strict=True) if all(
        r is None for r in got[:, j])]  # fmt: skip
    if empty:
        raise LacksDataError(
            f"{ds.name}: no recorded answers of {empty}; {policy} reads them before deciding"
        )
    return np.asarray(got, dtype=object)
