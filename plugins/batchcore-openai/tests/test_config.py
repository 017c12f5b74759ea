"""Configuration, environment variables, the lazy SDK client and the entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest
from openai_support import API_KEY, chat

import batchcore
from batchcore.errors import ConfigurationError
from batchcore.models import BatchState
from batchcore_openai.provider import AzureOpenAIBatchProvider, OpenAIBatchProvider
from batchcore_openai.testing import OpenAIEmulator


def test_environment_variables_as_the_sdk_reads_them(
    monkeypatch: pytest.MonkeyPatch, emulator: OpenAIEmulator
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.url + "/v1")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    provider = OpenAIBatchProvider()
    assert provider.api_key is not None and provider.api_key.reveal() == API_KEY
    assert provider.base_url == emulator.url + "/v1"
    [payload] = provider.prepare_payloads([chat("a")])
    handle = provider.submit(payload)
    assert provider.poll_status(handle).state is BatchState.VALIDATING
    assert provider._sdk().organization == "org-from-env"
    provider.close()


def test_config_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-000000")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    provider = OpenAIBatchProvider(
        config={
            "api_key": API_KEY,
            "base_url": "http://127.0.0.1:2/v1",
            "organization": "org-1",
            "project": "proj-1",
            "timeout": "12.5",
            "max_retries": 4,
        }
    )
    assert provider.api_key is not None and provider.api_key.reveal() == API_KEY
    assert provider.base_url == "http://127.0.0.1:2/v1"
    assert (provider.timeout, provider.max_retries) == (12.5, 4)
    client = provider._sdk()
    assert (client.organization, client.project) == ("org-1", "proj-1")
    assert client.max_retries == 0  # retries are batchcore's
    assert client.timeout == 12.5
    provider.close()


def test_defaults() -> None:
    provider = OpenAIBatchProvider()
    assert provider.base_url == "https://api.openai.com/v1"
    assert provider.api_key is None


def test_unknown_config_keys_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="'azure_endpoint'"):
        OpenAIBatchProvider(config={"azure_endpoint": "https://x.openai.azure.com"})
    with pytest.raises(ConfigurationError, match="'organization'"):
        AzureOpenAIBatchProvider(config={"organization": "org"})


def test_the_client_is_built_on_the_first_call_only(emulator: OpenAIEmulator) -> None:
    provider = OpenAIBatchProvider(config={"base_url": emulator.url + "/v1", "api_key": API_KEY})
    provider.prepare_payloads([chat("a")])
    assert provider._client is None
    with provider:
        [payload] = provider.prepare_payloads([chat("b")])
        provider.submit(payload)
        assert provider._client is not None
    assert provider._client is None  # closed on leaving the block


def test_the_key_never_shows() -> None:
    openai_provider = OpenAIBatchProvider(config={"api_key": API_KEY})
    azure = AzureOpenAIBatchProvider(
        config={"api_key": API_KEY, "azure_endpoint": "https://r.openai.azure.com"}
    )
    for provider in (openai_provider, azure):
        assert API_KEY not in repr(provider) + str(provider) + repr(dict(provider.config))
    assert "https://r.openai.azure.com" in repr(azure)


def test_azure_environment_variables(
    monkeypatch: pytest.MonkeyPatch, azure_emulator: OpenAIEmulator
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure_emulator.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-azure-000")
    provider = AzureOpenAIBatchProvider(config={"deployments": ["batch-gpt4o"]})
    assert provider.api_key is not None and provider.api_key.reveal() == API_KEY
    [payload] = provider.prepare_payloads([chat("a", model="batch-gpt4o")])
    handle = provider.submit(payload)
    assert provider.poll_status(handle).raw_status == "Validating"
    provider.close()


def test_azure_with_a_full_base_url(azure_emulator: OpenAIEmulator) -> None:
    provider = AzureOpenAIBatchProvider(
        config={
            "base_url": azure_emulator.url + "/openai/v1/",
            "api_key": API_KEY,
            "deployments": "batch-gpt4o",
        }
    )
    [payload] = provider.prepare_payloads([chat("a", model="batch-gpt4o")])
    assert provider.submit(payload).provider == "azure-openai"
    provider.close()


def test_the_registry_offers_both_providers() -> None:
    registry = batchcore.BatchProviderRegistry()
    assert {"openai", "azure-openai"} <= set(registry.list())
    assert registry.get("openai") is OpenAIBatchProvider
    assert registry.get("azure-openai") is AzureOpenAIBatchProvider
    assert OpenAIBatchProvider.SANDBOX == "batchcore_openai.testing:sandbox"


def test_importing_the_package_imports_no_sdk() -> None:
    code = (
        "import sys, batchcore_openai, batchcore_openai.plugin; "
        "print(any(m == 'openai' or m.startswith('openai.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import batchcore_openai

    assert batchcore_openai.OpenAIBatchProvider is OpenAIBatchProvider
    with pytest.raises(AttributeError):
        batchcore_openai.NoSuchThing  # noqa: B018


# -- what changes an answer (result reuse) --------------------------------------------------


def test_openai_declares_no_answer_changing_config() -> None:
    assert frozenset() == OpenAIBatchProvider.ANSWER_CONFIG_KEYS
    request = chat("a")
    base = OpenAIBatchProvider(config={"api_key": API_KEY}).fingerprint(request)
    other = OpenAIBatchProvider(config={"api_key": "sk-other", "organization": "org-2"})
    assert other.fingerprint(request) == base  # who pays changes no answer


def test_azure_fingerprints_its_resource_and_api_version() -> None:
    assert {"azure_endpoint", "api_version"} == AzureOpenAIBatchProvider.ANSWER_CONFIG_KEYS
    request = chat("a", model="batch-gpt4o")

    def fingerprint(**config: str) -> bytes:
        settings = {"deployments": ["batch-gpt4o"], **config}
        return AzureOpenAIBatchProvider(config=settings).fingerprint(request)

    east = fingerprint(azure_endpoint="https://east.openai.azure.com")
    assert fingerprint(azure_endpoint="https://west.openai.azure.com") != east
    assert (
        fingerprint(azure_endpoint="https://east.openai.azure.com", api_version="2024-10-21")
        != east
    )
    assert (
        fingerprint(azure_endpoint="https://east.openai.azure.com", completion_window="24h") == east
    )


def test_azure_fingerprints_a_resource_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = chat("a", model="batch-gpt4o")
    prints = set()
    for endpoint in ("https://east.openai.azure.com", "https://west.openai.azure.com"):
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", endpoint)
        provider = AzureOpenAIBatchProvider(config={"deployments": ["batch-gpt4o"]})
        prints.add(provider.fingerprint(request))
    assert len(prints) == 2
