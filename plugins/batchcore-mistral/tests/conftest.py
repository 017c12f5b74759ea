"""Fixtures: the emulator on a manual clock, providers pointed at it, and the spec's validator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from batchcore.plugin import BatchRequest
from batchcore.testing import ManualClock, SleepRecorder
from batchcore_mistral._emulation import spec_validator
from batchcore_mistral.provider import MistralBatchProvider
from batchcore_mistral.testing import MistralEmulator

MODEL = "mistral-small-latest"
EMBED_MODEL = "mistral-embed"
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def assert_valid(schema: str, instance: Any) -> None:
    """Fail with what makes *instance* break *schema* of Mistral's spec, strictly (no field the
    schema does not name), as the emulator checks what it receives."""
    problems = spec_validator().problems(schema, instance, limit=10)
    assert not problems, f"{schema}: " + "; ".join(map(str, problems))


def chat(custom_id: str, text: str = "Say hello", **params: Any) -> BatchRequest:
    """A small chat request for :data:`MODEL`."""
    return BatchRequest.from_dict(
        {
            "custom_id": custom_id,
            "model": MODEL,
            "messages": [{"role": "user", "content": text}],
            "params": {"max_tokens": 16, **params},
        }
    )


@pytest.fixture(autouse=True)
def _no_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real key must never reach these tests.
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def emulator(clock: ManualClock) -> Iterator[MistralEmulator]:
    with MistralEmulator(clock=clock) as running:
        yield running


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_provider(
    emulator: MistralEmulator, clock: ManualClock, sleeps: SleepRecorder
) -> Iterator[Callable[..., MistralBatchProvider]]:
    """Build providers pointed at the emulator, on the manual clock, recording their sleeps
    (a sleep advances the clock instead of waiting)."""
    made: list[MistralBatchProvider] = []

    def sleep(seconds: float) -> None:
        sleeps(seconds)
        clock.sleep(seconds)

    def make(**config: Any) -> MistralBatchProvider:
        settings = {"base_url": emulator.url, "api_key": emulator.api_key, **config}
        provider = MistralBatchProvider(config={k: v for k, v in settings.items() if v is not None})
        provider.clock = clock.now
        provider.sleep = sleep
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., MistralBatchProvider]) -> MistralBatchProvider:
    return make_provider()
