"""``mixllm.data`` exports its API and imports no optional dependency at import time."""

from __future__ import annotations

import ast
from pathlib import Path

import mixllm.data

OPTIONAL = {"pandas", "pyarrow", "huggingface_hub", "bpe_openai", "tiktoken", "httpx"}
SOURCE = Path(mixllm.data.__file__).parent


def test_all_names_exist() -> None:
    assert mixllm.data.__doc__
    for name in mixllm.data.__all__:
        assert hasattr(mixllm.data, name), name


def test_optional_dependencies_are_imported_inside_functions() -> None:
    for path in sorted(SOURCE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only (TYPE_CHECKING blocks are fine)
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            heavy = {n.split(".")[0] for n in names} & OPTIONAL
            assert not heavy, f"{path.name} imports {heavy} at module level"
