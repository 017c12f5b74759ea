"""The README's quickstart runs, against the emulator on a manual clock instead of waiting."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from batchcore.testing import ManualClock
from batchcore_gemini.testing import GeminiEmulator

README = Path(__file__).parents[1] / "README.md"
_BLOCK = re.compile(r"<!-- readme-test: run -->\s*```python\n(.*?)```", re.DOTALL)


def test_the_quickstart_runs(
    monkeypatch: pytest.MonkeyPatch,
    emulator: GeminiEmulator,
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    [example] = _BLOCK.findall(README.read_text("utf-8"))
    monkeypatch.setenv("GEMINI_API_KEY", emulator.api_key)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.url)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    exec(compile(example, "README.md quickstart", "exec"), {})
    lines = sorted(capsys.readouterr().out.splitlines())
    assert lines == [
        f"doc-{i} succeeded Emulated answer 1 to: Summarise document {i}" for i in range(3)
    ]
