"""Fixtures: the emulator on a manual clock, providers pointed at it, and the spec's validator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batchcore.testing import ManualClock, SleepRecorder
from batchcore_anthropic._emulation import spec_document, spec_validator
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator


def assert_valid(name: str, instance: Any) -> None:
    """Fail with what makes *instance* break schema *name* of Anthropic's spec, strictly (no
    field the schema does not name), as the emulator checks what it receives."""
    problems = spec_validator().problems(name, instance, limit=10)
    assert not problems, f"{name}: " + "; ".join(map(str, problems))


@pytest.fixture
def spec() -> Callable[[str, Any], None]:
    """``spec("MessageBatch", obj)`` asserts *obj* matches the named schema of the spec."""
    return assert_valid


@pytest.fixture
def spec_defs() -> dict[str, Any]:
    """The spec's component schemas, by name."""
    schemas: dict[str, Any] = spec_document()["components"]["schemas"]
    return schemas


@pytest.fixture(autouse=True)
def _no_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key or base URL must never reach these tests.
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_767_225_600.0)  # 2026-01-01T00:00:00Z


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator(clock=clock) as running:
        yield running


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_provider(
    emulator: AnthropicEmulator, clock: ManualClock, sleeps: SleepRecorder
) -> Iterator[Callable[..., AnthropicBatchProvider]]:
    """Build providers pointed at the emulator, on the manual clock, recording their sleeps.

    A sleep advances the clock instead of waiting, so waits that end at a time (the settle
    window of a submit whose answer was lost) pass at once. *cls* builds a subclass."""
    made: list[AnthropicBatchProvider] = []

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        clock.sleep(seconds)

    def make(
        cls: type[AnthropicBatchProvider] = AnthropicBatchProvider, **config: Any
    ) -> AnthropicBatchProvider:
        settings = {"base_url": emulator.url, "api_key": emulator.api_key, **config}
        provider = cls(config={k: v for k, v in settings.items() if v is not None})
        provider.clock = clock.now
        provider.sleep = sleep
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., AnthropicBatchProvider]) -> AnthropicBatchProvider:
    return make_provider()
