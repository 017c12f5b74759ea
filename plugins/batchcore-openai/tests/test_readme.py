"""The README's runnable examples run, on a manual clock instead of waiting."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import pytest

import batchcore_openai.testing
from batchcore.testing import ManualClock

README = Path(__file__).parents[1] / "README.md"
_BLOCK = re.compile(r"<!-- readme-test: run -->\s*```python\n(.*?)```", re.DOTALL)


def _examples() -> list[str]:
    return _BLOCK.findall(README.read_text("utf-8"))


def test_the_readme_has_runnable_examples() -> None:
    assert len(_examples()) == 3


@pytest.mark.parametrize("index", [0, 1, 2])
def test_readme_example_runs(
    index: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock(start=1_767_225_600.0)
    # The sandbox demo polls with time.sleep on the real clock; here both are one manual clock.
    monkeypatch.setattr(
        batchcore_openai.testing,
        "sandbox",
        functools.partial(batchcore_openai.testing.sandbox, clock=clock),
    )
    monkeypatch.setattr(time, "sleep", clock.sleep)
    exec(compile(_examples()[index], f"README.md example {index + 1}", "exec"), {})
    if index == 0:
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 5
        assert all(" succeeded Echo: Name a prime above " in line for line in lines)
