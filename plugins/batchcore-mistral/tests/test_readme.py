"""The README's runnable example runs, and says what it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
_BLOCK = re.compile(r"<!-- readme-test: run -->\s*```python\n(.*?)```", re.DOTALL)


def test_the_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    [example] = _BLOCK.findall(README.read_text("utf-8"))
    exec(compile(example, "README.md example", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "q10 succeeded Echo: Name a prime above 10",
        "q20 succeeded Echo: Name a prime above 20",
        "q30 succeeded Echo: Name a prime above 30",
    ]


def test_the_readme_names_every_state_and_config_key() -> None:
    from batchcore_mistral.provider import MistralBatchProvider

    text = README.read_text("utf-8")
    for word in (
        "QUEUED",
        "RUNNING",
        "SUCCESS",
        "FAILED",
        "TIMEOUT_EXCEEDED",
        "CANCELLATION_REQUESTED",
        "CANCELLED",
    ):
        assert f"`{word}`" in text
    for key in MistralBatchProvider.CONFIG_KEYS:
        assert f"`{key}`" in text
