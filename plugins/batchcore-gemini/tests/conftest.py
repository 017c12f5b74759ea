"""Fixtures: the emulator on a manual clock, and providers pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batchcore.testing import ManualClock, SleepRecorder
from batchcore_gemini.provider import GeminiBatchProvider
from batchcore_gemini.testing import GeminiEmulator

MODEL = "gemini-2.5-flash"


@pytest.fixture(autouse=True)
def _no_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key, base URL or API switches must never reach these tests.
    for name in (
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[GeminiEmulator]:
    with GeminiEmulator(clock=clock) as running:
        yield running


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_provider(
    emulator: GeminiEmulator, clock: ManualClock, sleeps: SleepRecorder
) -> Iterator[Callable[..., GeminiBatchProvider]]:
    """Build providers pointed at the emulator, on the manual clock, recording their sleeps.

    A sleep advances the clock instead of waiting, so waits that end at a time (the settle
    window of a submit whose answer was lost) pass at once."""
    made: list[GeminiBatchProvider] = []

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        clock.sleep(seconds)

    def make(**config: Any) -> GeminiBatchProvider:
        settings = {"base_url": emulator.url, "api_key": emulator.api_key, **config}
        provider = GeminiBatchProvider(config={k: v for k, v in settings.items() if v is not None})
        provider.clock = clock.now
        provider.sleep = sleep
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., GeminiBatchProvider]) -> GeminiBatchProvider:
    return make_provider()
