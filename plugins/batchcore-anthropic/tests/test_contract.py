"""The batchcore conformance kit, run against the emulator."""

from __future__ import annotations

import pytest

from batchcore.testing import ManualClock, ProviderContractTests
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator


class TestAnthropicContract(ProviderContractTests):
    @pytest.fixture
    def provider(self, emulator: AnthropicEmulator, clock: ManualClock) -> AnthropicBatchProvider:
        provider = AnthropicBatchProvider(
            config={"base_url": emulator.url, "api_key": emulator.api_key}
        )
        # The kit's clock starts from the provider's: make that the emulator's time, as the
        # vendor's and ours agree in real life (a lost create is looked for from that time).
        provider.clock = clock.now
        return provider

    @pytest.fixture
    def backend(self, emulator: AnthropicEmulator) -> AnthropicEmulator:
        return emulator

    @pytest.fixture
    def model(self) -> str:
        return "claude-haiku-4-5"
