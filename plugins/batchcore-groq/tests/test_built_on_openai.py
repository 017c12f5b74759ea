"""The plugin builds on batchcore-openai through its public hooks only: no private member of
the OpenAI provider or emulator is overridden, and no private module of it is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import batchcore_groq
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import GroqEmulator

PACKAGE = Path(batchcore_groq.__file__).parent


@pytest.mark.parametrize("subclass", [GroqBatchProvider, GroqEmulator])
def test_no_private_member_is_overridden(subclass: type) -> None:
    private = [
        name
        for name in vars(subclass)
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
    ]
    assert private == []


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_nothing_private_of_batchcore_openai_is_imported(module: Path) -> None:
    imported: list[str] = []  # dotted names: modules, and what is imported from them
    for node in ast.walk(ast.parse(module.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported += [f"{node.module}.{alias.name}" for alias in node.names]
    from_openai = [name.split(".") for name in imported if name.startswith("batchcore_openai")]
    assert [parts for parts in from_openai if any(p.startswith("_") for p in parts[1:])] == []
