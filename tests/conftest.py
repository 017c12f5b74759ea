"""Core test configuration. Core tests never import anything under plugins/."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _temp_files_in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Payload files a test forgets land in its own tmp_path, not the system temp dir."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
