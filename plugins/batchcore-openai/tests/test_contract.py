"""batchcore's conformance kit, run on both providers against the emulator."""

from __future__ import annotations

import pytest
from openai_support import API_KEY, MODEL

from batchcore.testing import ProviderContractTests
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator


class TestOpenAIContract(ProviderContractTests):
    @pytest.fixture
    def provider(self, emulator: OpenAIEmulator) -> OpenAIBatchProvider:
        return OpenAIBatchProvider(config={"base_url": emulator.url + "/v1", "api_key": API_KEY})

    @pytest.fixture
    def backend(self, emulator: OpenAIEmulator) -> OpenAIEmulator:
        return emulator

    @pytest.fixture
    def model(self) -> str:
        return MODEL


class TestAzureOpenAIContract(ProviderContractTests):
    @pytest.fixture
    def provider(self, azure_emulator: OpenAIEmulator) -> AzureOpenAIBatchProvider:
        return AzureOpenAIBatchProvider(
            config={
                "azure_endpoint": azure_emulator.url,
                "api_key": API_KEY,
                "deployments": ["batch-gpt4o"],
            }
        )

    @pytest.fixture
    def backend(self, azure_emulator: OpenAIEmulator) -> OpenAIEmulator:
        return azure_emulator

    @pytest.fixture
    def model(self) -> str:
        return "batch-gpt4o"
