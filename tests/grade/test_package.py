"""The package API of mixllm.grade: what it exports and what importing it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mixllm.grade

API = {
    "GRADERS",
    "grade",
    "check_grader",
    "run_code_tests",
    "CodeRun",
    "DEFAULT_JUDGE_TEMPLATE",
    "PAIRWISE_TEMPLATE",
    "load_template",
    "judge_prompt",
    "parse_score",
    "score_to_quality",
    "parse_verdict",
    "pairwise_quality",
    "Judgement",
    "judge_answer",
    "judge_pair",
}


def test_exports() -> None:
    assert set(mixllm.grade.__all__) >= API
    assert mixllm.grade.__doc__
    for name in mixllm.grade.__all__:
        assert getattr(mixllm.grade, name).__doc__, f"{name} has no docstring"
    assert mixllm.grade.GRADERS == ("auto", "choice", "number", "exact", "normalised", "code")


def test_grading_needs_only_the_standard_library() -> None:
    """mixllm.grade loads and grades with numpy & co. unimportable (mixllm's own __init__,
    which needs numpy, is bypassed)."""
    src = Path(mixllm.grade.__file__).resolve().parents[1]
    code = f"""
import importlib.abc, sys, types

class NoHeavy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {{"numpy", "scipy", "sklearn", "pandas", "torch"}}:
            raise ImportError(name)
        return None

sys.meta_path.insert(0, NoHeavy())
package = types.ModuleType("mixllm")
package.__path__ = [{str(src)!r}]
sys.modules["mixllm"] = package
from mixllm.grade import grade
assert grade("The answer is (B).", "B") == 1.0
assert grade("def f():\\n    return 1", "assert f() == 1", "code") == 1.0
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
