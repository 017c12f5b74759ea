"""Fixtures: an OpenAI emulator on a manual clock, and providers pointed at it that share that
clock and record their waits instead of sleeping (each wait moves the clock on)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_support import API_KEY

from batchcore.testing import ManualClock, SleepRecorder
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator


@pytest.fixture(autouse=True)
def _no_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the configuration they set."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_AD_TOKEN",
        "OPENAI_API_VERSION",
        "OPENAI_CUSTOM_HEADERS",
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
def emulator(clock: ManualClock) -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(clock=clock, api_key=API_KEY) as running:
        yield running


@pytest.fixture
def azure_emulator(clock: ManualClock) -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(
        clock=clock, api_key=API_KEY, azure=True, deployments=["batch-gpt4o"]
    ) as running:
        yield running


@pytest.fixture
def sleeps(clock: ManualClock) -> SleepRecorder:
    return SleepRecorder(clock)


@pytest.fixture
def make_provider(
    emulator: OpenAIEmulator, sleeps: SleepRecorder, clock: ManualClock
) -> Iterator[Callable[..., OpenAIBatchProvider]]:
    built: list[OpenAIBatchProvider] = []

    def build(**config: Any) -> OpenAIBatchProvider:
        settings = {"base_url": emulator.url + "/v1", "api_key": API_KEY, **config}
        provider = OpenAIBatchProvider(config=settings)
        provider.sleep, provider.clock = sleeps, clock.now
        built.append(provider)
        return provider

    yield build
    for provider in built:
        provider.close()


@pytest.fixture
def provider(make_provider: Callable[..., OpenAIBatchProvider]) -> OpenAIBatchProvider:
    return make_provider()


@pytest.fixture
def make_azure_provider(
    azure_emulator: OpenAIEmulator, sleeps: SleepRecorder, clock: ManualClock
) -> Iterator[Callable[..., AzureOpenAIBatchProvider]]:
    built: list[AzureOpenAIBatchProvider] = []

    def build(**config: Any) -> AzureOpenAIBatchProvider:
        settings = {
            "azure_endpoint": azure_emulator.url,
            "api_key": API_KEY,
            "deployments": ["batch-gpt4o"],
            **config,
        }
        provider = AzureOpenAIBatchProvider(config=settings)
        provider.sleep, provider.clock = sleeps, clock.now
        built.append(provider)
        return provider

    yield build
    for provider in built:
        provider.close()
