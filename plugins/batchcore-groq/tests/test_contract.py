"""batchcore's conformance kit, run on the Groq provider against the Groq emulator."""

from __future__ import annotations

import pytest
from groq_support import API_KEY, MODEL

from batchcore.testing import ProviderContractTests
from batchcore_groq.provider import GroqBatchProvider
from batchcore_groq.testing import API_PATH, GroqEmulator


class TestGroqContract(ProviderContractTests):
    @pytest.fixture
    def provider(self, emulator: GroqEmulator) -> GroqBatchProvider:
        return GroqBatchProvider(config={"base_url": emulator.url + API_PATH, "api_key": API_KEY})

    @pytest.fixture
    def backend(self, emulator: GroqEmulator) -> GroqEmulator:
        return emulator

    @pytest.fixture
    def model(self) -> str:
        return MODEL


class TestGroqContractWithoutEchoedMetadata(ProviderContractTests):
    """The same contract if Groq stopped echoing batch metadata: a lost create is then found
    by the file it was made from."""

    @pytest.fixture
    def provider(self, emulator: GroqEmulator) -> GroqBatchProvider:
        return GroqBatchProvider(
            config={
                "base_url": emulator.url + API_PATH,
                "api_key": API_KEY,
                "completion_window": "7d",
            }
        )

    @pytest.fixture
    def backend(self, emulator: GroqEmulator) -> GroqEmulator:
        emulator.echo_metadata = False
        return emulator

    @pytest.fixture
    def model(self) -> str:
        return "openai/gpt-oss-120b"
