"""The README's runnable example runs, on a manual clock instead of waiting."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import pytest

import batchcore_together.testing
from batchcore.testing import ManualClock

README = Path(__file__).parents[1] / "README.md"
_BLOCK = re.compile(r"<!-- readme-test: run -->\s*```python\n(.*?)```", re.DOTALL)


def test_the_readme_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    [example] = _BLOCK.findall(README.read_text("utf-8"))
    clock = ManualClock(start=1_767_225_600.0)
    # The example polls with time.sleep on the real clock; here both are one manual clock.
    monkeypatch.setattr(
        batchcore_together.testing,
        "sandbox",
        functools.partial(batchcore_together.testing.sandbox, clock=clock),
    )
    monkeypatch.setattr(time, "sleep", clock.sleep)
    exec(compile(example, "README.md example", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == [
        f"prime-{n} succeeded Echo: Name a prime above {n}" for n in (10, 100, 1000)
    ]
