"""Fixtures: a Groq emulator on a manual clock, and providers pointed at it that share that
clock and record their waits instead of sleeping (each wait moves the clock on)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from groq_support import API_KEY, Factory

from batchcore.testing import ManualClock, SleepRecorder
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import API_PATH, GroqEmulator


@pytest.fixture(autouse=True)
def _no_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the configuration they set."""
    for name in (
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_CUSTOM_HEADERS",
        "BATCHCORE_SANDBOX",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _temporary_files_in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Payload files that a test does not discard land in its own tmp_path, not the system's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[GroqEmulator]:
    with GroqEmulator(clock=clock, api_key=API_KEY) as running:
        yield running


@pytest.fixture
def sleeps(clock: ManualClock) -> SleepRecorder:
    return SleepRecorder(clock)


@pytest.fixture
def make_provider(
    emulator: GroqEmulator, sleeps: SleepRecorder, clock: ManualClock
) -> Iterator[Factory]:
    built: list[GroqBatchProvider] = []

    def build(**config: Any) -> GroqBatchProvider:
        settings = {"base_url": emulator.url + API_PATH, "api_key": API_KEY, **config}
        provider = GroqBatchProvider(config=settings)
        provider.sleep, provider.clock = sleeps, clock.now
        built.append(provider)
        return provider

    yield build
    for provider in built:
        provider.close()


@pytest.fixture
def provider(make_provider: Factory) -> GroqBatchProvider:
    return make_provider()
