"""Everything public is exported, and each package says what it exports (style.md rule 2)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

import mixllm

PACKAGES = [
    "mixllm",
    "mixllm.data",
    "mixllm.embed",
    "mixllm.policy",
    "mixllm.predict",
    "mixllm.evaluate",
    "mixllm.grade",
    "mixllm.collect",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_have_docs(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no docstring"
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.__all__ names {member!r}, which is missing"


def test_top_level_public_names_are_in_all() -> None:
    public = {
        n
        for n, v in vars(mixllm).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    missing = public - set(mixllm.__all__) - {"annotations"}
    assert not missing, f"public but not in mixllm.__all__: {sorted(missing)}"


def test_import_is_light() -> None:
    code = (
        "import sys, mixllm; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'model2vec', 'pandas', "
        "'matplotlib', 'fastapi', 'rich', 'huggingface_hub') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
