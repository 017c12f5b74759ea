"""Fixtures: a Together emulator on a manual clock, providers pointed at it that share that
clock (their sleeps advance it instead of waiting), and the schemas the emulator checks."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from together_support import MakeProvider

from batchcore.testing import ManualClock, SleepRecorder
from batchcore_together._emulation import spec_document
from batchcore_together.provider import TogetherBatchProvider
from batchcore_together.testing import TogetherEmulator


@pytest.fixture
def spec_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = spec_document()["components"]["schemas"]
    return schemas


@pytest.fixture(autouse=True)
def _no_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key or base URL must never reach these tests.
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    monkeypatch.delenv("TOGETHER_BASE_URL", raising=False)
    monkeypatch.delenv("BATCHCORE_SANDBOX", raising=False)


@pytest.fixture(autouse=True)
def _temporary_files_in_tmp_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Payload files a test does not discard land in its own tmp_path, not the system's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[TogetherEmulator]:
    with TogetherEmulator(clock=clock) as running:
        yield running


@pytest.fixture
def sleeps(clock: ManualClock) -> SleepRecorder:
    """The waits providers asked for; each one moves the clock on."""
    return SleepRecorder(clock)


@pytest.fixture
def make_provider(
    emulator: TogetherEmulator, clock: ManualClock, sleeps: SleepRecorder
) -> Iterator[MakeProvider]:
    made: list[TogetherBatchProvider] = []

    def make(**config: Any) -> TogetherBatchProvider:
        settings = {"base_url": emulator.url + "/v1", "api_key": emulator.api_key, **config}
        provider = TogetherBatchProvider(config=settings)
        provider.clock, provider.sleep = clock.now, sleeps
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: MakeProvider) -> TogetherBatchProvider:
    return make_provider()
