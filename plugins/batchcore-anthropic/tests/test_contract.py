"""The batchcore conformance kit, run against the emulator."""

from __future__ import annotations

import pytest

from batchcore.testing import ProviderContractTests
from batchcore_anthropic.provider import AnthropicBatchProvider
from batchcore_anthropic.testing import AnthropicEmulator


class TestAnthropicContract(ProviderContractTests):
    @pytest.fixture
    def provider(self, emulator: AnthropicEmulator) -> AnthropicBatchProvider:
        return AnthropicBatchProvider(
            config={"base_url": emulator.url, "api_key": emulator.api_key}
        )

    @pytest.fixture
    def backend(self, emulator: AnthropicEmulator) -> AnthropicEmulator:
        return emulator

    @pytest.fixture
    def model(self) -> str:
        return "claude-haiku-4-5"
