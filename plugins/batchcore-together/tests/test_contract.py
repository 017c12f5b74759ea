"""batchcore's conformance kit, run on the Together provider against the emulator."""

from __future__ import annotations

import pytest
from together_support import MODEL

from batchcore.testing import ManualClock, ProviderContractTests
from batchcore_together.provider import TogetherBatchProvider
from batchcore_together.testing import TogetherEmulator


class TestTogetherContract(ProviderContractTests):
    @pytest.fixture
    def provider(self, emulator: TogetherEmulator, clock: ManualClock) -> TogetherBatchProvider:
        provider = TogetherBatchProvider(
            config={"base_url": emulator.url + "/v1", "api_key": emulator.api_key}
        )
        # The vendor's clock and ours agree in real life: make the provider's the emulator's.
        provider.clock = clock.now
        return provider

    @pytest.fixture
    def backend(self, emulator: TogetherEmulator) -> TogetherEmulator:
        return emulator

    @pytest.fixture
    def model(self) -> str:
        return MODEL
